"""A full disk during a checkpoint write fails with a clear message and keeps the last good one."""

import errno

import pytest
import torch

from dslm.config import load
from dslm.errors import DSLMError
from dslm.models import checkpoint as ck
from dslm.train import RunConfig, train


def _cfg(out, cache, steps):
    return load(RunConfig, None, [
        "model.kind=ar", "model.hidden_size=32", "model.n_blocks=1", "model.n_heads=2",
        "model.cond_dim=16", "model.seq_len=32", "data.source=synthetic", "data.tokenizer=char",
        "data.seq_len=32", "data.max_documents=200", f"data.cache_dir={cache}",
        f"train.steps={steps}", "train.batch_size=4", "train.checkpoint_every=2",
        "train.eval_every=0", f"train.out_dir={out}"])


def test_enospc_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    out, cache = tmp_path / "run", tmp_path / "cache"
    train(_cfg(out, cache, 2), progress=False)
    good = ck.load(out)
    x = torch.randint(0, good.config.vocab_size, (1, 8))
    before = good(x)

    import safetensors.torch as st

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(st, "save_file", full_disk)
    with pytest.raises(DSLMError, match="no space left"):
        train(_cfg(out, cache, 6), resume=True, progress=False)
    monkeypatch.undo()
    assert torch.equal(ck.load(out)(x), before)          # the last good checkpoint is intact
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())
