"""Class 5: every argument and everything a command will need is checked before the
first expensive step (demo and sweep must fail before training or sampling anything)."""

import time

import pytest

from .conftest import fails


@pytest.fixture
def no_work(monkeypatch):
    import dslm.evaluate.lm as lm
    import dslm.models.checkpoint as ck
    import dslm.train.loop as loop

    def boom(*a, **k):
        raise AssertionError("expensive work started before validation finished")

    monkeypatch.setattr(loop, "_Training", boom)
    monkeypatch.setattr(ck, "read_weights", boom)
    monkeypatch.setattr(lm, "load_lm", boom)


@pytest.mark.parametrize("override,needle", [
    ("samplers=[bogus]", "unknown sampler 'bogus'"),
    ("num_samples=1", "num_samples"),
    ("extra_points=[hybrid]", "sampler:steps"),
    ("extra_points=[nope:8]", "unknown sampler 'nope'"),
    ("steps=[0]", "demo.steps"),
    ("mdlm_steps=0", "demo.mdlm_steps"),
    ("seed=-1", "seed"),
    ("configs=/nonexistent", "tiny-mdlm.yaml"),
])
def test_demo_fails_before_training(tmp_path, capsys, no_work, override, needle):
    out = tmp_path / "demo"
    began = time.perf_counter()
    fails(capsys, ["demo", "--out", out, override], needle)
    assert time.perf_counter() - began < 30
    assert not (out / "mdlm").exists()


def test_sweep_fails_before_sampling(world, tmp_path, capsys, no_work):
    base = ["sweep", "--ckpt", f"m={world['mdlm']}", "--samplers", "mdlm", "--steps", "2",
            "--num-samples", "4", "--judge", world["ar"], "--reference", world["ref"]]

    def with_(flag, value, needle):
        argv = list(base) + ["--out", tmp_path / flag.strip("-")]
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
        fails(capsys, argv, needle)

    with_("--samplers", "mdlm,bogus", "unknown sampler 'bogus'")
    with_("--num-samples", "1", "num_samples")
    with_("--steps", "2,x", "integers")
    with_("--judge", str(tmp_path / "missing-judge"), "not found")
    with_("--reference", str(tmp_path / "missing.txt"), "not found")
    with_("--reference", world["samples"].replace(".jsonl", ".csv"), ".txt/.jsonl")
    with_("--ckpt", f"m={tmp_path / 'missing'}", "not found")
    with_("--ar-baseline", str(tmp_path / "nope"), "not found")
    with_("--sampler-option", "mdlm.nonsense=1", "nonsense")
    with_("--eval-batch-size", "0", "eval_batch_size")
    with_("--seed", "-3", "seed")
    with_("--extra", "hybrid", "sampler:steps")


def test_eval_and_sample_fail_before_loading(world, tmp_path, capsys, no_work):
    fails(capsys, ["eval", "--samples", world["samples"], "--judge", world["ar"], "--reference",
                   tmp_path / "missing.txt", "--out", tmp_path / "m.json"], "not found")
    fails(capsys, ["eval", "--samples", world["samples"], "--judge", tmp_path / "nojudge",
                   "--reference", world["ref"], "--out", tmp_path / "m.json"], "not found")
    fails(capsys, ["sample", "--ckpt", world["mdlm"], "--sampler", "mdlm", "--steps", 2,
                   "--num-samples", 0, "--out", tmp_path / "s.jsonl"], "--num-samples")
    fails(capsys, ["sample", "--ckpt", world["mdlm"], "--sampler", "mdlm", "--steps", 2,
                   "--option", "bogus=1", "--out", tmp_path / "s.jsonl"], "bogus")
