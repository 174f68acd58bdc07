"""Class 2: cached results know what made them. A sweep point is reused only when its
fingerprint (checkpoint content, resolved sampler options, judge, reference, ...) matches;
a moved results folder still resumes; a stale data cache is rebuilt."""

import shutil

import torch

from dslm.evaluate.sweep import SweepConfig, run_sweep
from dslm.models import checkpoint as ck

from .conftest import read_json


class Counting:
    """dslm.sampling with a counter of sampling runs."""

    def __init__(self):
        import dslm.sampling as s

        self._s = s
        self.SAMPLERS = s.SAMPLERS
        self.available_samplers = s.available_samplers
        self.sampler_options = s.sampler_options
        self.calls = []

    def sample(self, model, name, *a, **k):
        self.calls.append(name)
        return self._s.sample(model, name, *a, **k)


def _cfg(world, out, mdlm, **kw):
    base = dict(models=[("m", str(mdlm))], samplers=["mdlm"], steps=[2], out=str(out),
                num_samples=6, judge=world["ar"], reference=world["ref"], device="cpu")
    base.update(kw)
    return SweepConfig(**base)


def test_changed_checkpoint_or_option_recomputes_and_moved_folder_resumes(world, tmp_path, capsys):
    mdlm = tmp_path / "mdlm"
    shutil.copytree(world["mdlm"], mdlm)
    out = tmp_path / "sweep"
    s = Counting()
    first = run_sweep(_cfg(world, out, mdlm), progress=False, sampling=s)
    assert s.calls == ["mdlm"]
    point = next(iter(first["points"].values()))
    assert point["fingerprint"] and point["made_by"]["checkpoint"].startswith("sha256:")
    assert first["environment"]["torch"] == torch.__version__

    run_sweep(_cfg(world, out, mdlm), progress=False, sampling=s)          # same: reused
    assert s.calls == ["mdlm"]

    # the checkpoint behind the label changes: recomputed, with a note naming why
    opened = ck.open_checkpoint(mdlm)
    model = opened.model
    with torch.no_grad():
        next(model.parameters()).add_(0.5)
    ck.save(model, mdlm, metadata=opened.metadata)
    capsys.readouterr()
    doc = run_sweep(_cfg(world, out, mdlm), progress=False, sampling=s)
    assert s.calls == ["mdlm", "mdlm"]
    assert "different checkpoint; recomputing" in capsys.readouterr().err
    assert next(iter(doc["points"].values()))["fingerprint"] != point["fingerprint"]

    # a sampler option changes: recomputed
    doc = run_sweep(_cfg(world, out, mdlm, sampler_options={"mdlm": {"temperature": 0.5}}),
                    progress=False, sampling=s)
    assert s.calls == ["mdlm"] * 3
    assert "different options; recomputing" in capsys.readouterr().err
    assert next(iter(doc["points"].values()))["made_by"]["options"]["temperature"] == 0.5

    # checkpoint and results folder both moved: resumes without sampling
    moved_ckpt, moved_out = tmp_path / "elsewhere" / "mdlm", tmp_path / "elsewhere" / "sweep"
    shutil.copytree(mdlm, moved_ckpt)
    shutil.copytree(out, moved_out)
    run_sweep(_cfg(world, moved_out, moved_ckpt, sampler_options={"mdlm": {"temperature": 0.5}}),
              progress=False, sampling=s)
    assert s.calls == ["mdlm"] * 3


def test_another_judge_is_refused_by_content(world, tmp_path, capsys):
    from dslm.errors import ConfigError

    out = tmp_path / "sweep"
    run_sweep(_cfg(world, out, world["mdlm"]), progress=False)
    judge = tmp_path / "judge"
    shutil.copytree(world["ar"], judge)                       # same content, another path: fine
    run_sweep(_cfg(world, out, world["mdlm"], judge=str(judge)), progress=False)
    opened = ck.open_checkpoint(judge)
    model = opened.model
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    ck.save(model, judge, metadata=opened.metadata)
    try:
        run_sweep(_cfg(world, out, world["mdlm"], judge=str(judge)), progress=False)
    except ConfigError as e:
        assert "another judge" in str(e) and "refusing" in str(e)
    else:
        raise AssertionError("a changed judge was not refused")


def test_stale_data_cache_is_rebuilt(world, tmp_path, capsys):
    from dslm.data import prepare_data
    from dslm.data.config import DataConfig

    cfg = DataConfig(source=world["corpus"], tokenizer="char", seq_len=16,
                     cache_dir=str(tmp_path / "cache"), num_proc=1)
    first = prepare_data(cfg, progress=False)
    folder = first.meta["cache_path"]
    assert prepare_data(cfg, progress=False).meta["from_cache"]
    meta = read_json(f"{folder}/meta.json")
    with open(f"{folder}/train.bin", "ab") as f:          # arrays that do not match meta.json
        f.write(b"\0" * 7)
    again = prepare_data(cfg, progress=False)
    assert not again.meta["from_cache"] and "rebuilding the data cache" in capsys.readouterr().err
    assert again.meta["train"] == meta["train"]
