import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)


def tiny_model_config(kind="dsl", vocab_size=12, **kw):
    from dslm.models.config import ModelConfig

    base = dict(kind=kind, vocab_size=vocab_size, seq_len=16, hidden_size=32, n_blocks=2,
                n_heads=2, cond_dim=16, embed_dim=8)
    base.update(kw)
    return ModelConfig(**base)

# Fast tests use the tiny fallback judges; the pretrained ones (tests/test_judges.py, slow)
# clear this. Judge-score caches go to a throwaway folder, never the user's ~/.cache.
os.environ.setdefault("DSLM_NO_PRETRAINED_JUDGE", "1")
os.environ.setdefault("DSLM_CACHE", os.path.join(__import__("tempfile").mkdtemp(prefix="dslm-test-cache-")))
