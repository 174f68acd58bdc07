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
    good = ck.open_checkpoint(out).model
    x = torch.randint(0, good.config.vocab_size, (1, 8))
    before = good(x)

    import safetensors.torch as st

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(st, "save_file", full_disk)
    with pytest.raises(DSLMError, match="no space left"):
        train(_cfg(out, cache, 6), resume=True, progress=False)
    monkeypatch.undo()
    assert torch.equal(ck.open_checkpoint(out).model(x), before)          # the last good checkpoint is intact
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())


def test_crash_in_the_last_checkpoint_write_resumes_to_the_same_checkpoint(tmp_path, monkeypatch):
    """A failure while writing checkpoint/ at the final step must not leave it stale."""
    ref_out, out, cache = tmp_path / "ref", tmp_path / "run", tmp_path / "cache"
    train(_cfg(ref_out, cache, 4), progress=False)

    real_save = ck.save

    def dies_at_last_step(model, path, metadata=None, **kw):
        if metadata and metadata.get("step") == 4:
            raise OSError(errno.EIO, "killed mid-write")
        return real_save(model, path, metadata=metadata, **kw)

    monkeypatch.setattr(ck, "save", dies_at_last_step)
    with pytest.raises(OSError, match="killed mid-write"):
        train(_cfg(out, cache, 4), progress=False)
    monkeypatch.undo()
    train(_cfg(out, cache, 4), resume=True, progress=False)
    from safetensors.torch import load_file

    a = load_file(str(out / "checkpoint" / "model.safetensors"))
    b = load_file(str(ref_out / "checkpoint" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in b)
