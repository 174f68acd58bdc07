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
    from dslm.models.config import preset

    return preset("micro", kind=kind, vocab_size=vocab_size, **kw)

# Fast tests use the tiny fallback judges; the pretrained ones (tests/test_judges.py, slow)
# clear this. Judge-score caches go to a throwaway folder, never the user's ~/.cache.
os.environ.setdefault("DSLM_NO_PRETRAINED_JUDGE", "1")
os.environ.setdefault("DSLM_CACHE", os.path.join(__import__("tempfile").mkdtemp(prefix="dslm-test-cache-")))
