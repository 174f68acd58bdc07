"""Class 4: no command writes into, onto or above one of its own inputs."""

import shutil

import pytest

from dslm.models import checkpoint as ck

from .conftest import TINY_RUN, fails


@pytest.fixture
def run(world, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(world["run"], dst)
    return dst


def _intact(run):
    assert (run / "train_state").is_dir() and (run / "metrics.jsonl").is_file()
    assert (run / "run.yaml").is_file()
    ck.open_checkpoint(run).tokenizer()              # still loads, tokenizer included


@pytest.mark.parametrize("target", ["run", "checkpoint", "tokenizer", "inside", "above"])
def test_export_onto_each_of_its_inputs(run, capsys, target):
    out = {"run": run, "checkpoint": run / "checkpoint", "tokenizer": run / "checkpoint" / "tokenizer",
           "inside": run / "checkpoint" / "export", "above": run.parent}[target]
    fails(capsys, ["export", "--ckpt", run, "--out", out, "--overwrite"], "own input"
          if target in ("run", "checkpoint") else ("inside" if target in ("tokenizer", "inside")
                                                   else "contains"))
    _intact(run)


def test_export_through_another_spelling_of_the_source(run, tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(run)
    fails(capsys, ["export", "--ckpt", link / "checkpoint", "--out", run, "--overwrite"], "own input")
    _intact(run)


def test_sample_eval_sweep_train_outputs_onto_inputs(world, run, tmp_path, capsys):
    ck_dir = run / "checkpoint"
    fails(capsys, ["sample", "--ckpt", run, "--sampler", "mdlm", "--steps", 2, "--out",
                   ck_dir / "s.jsonl"], "inside")
    fails(capsys, ["sample", "--ckpt", run, "--sampler", "mdlm", "--steps", 2, "--out",
                   ck_dir / "model.safetensors"], "inside")
    samples = tmp_path / "s.jsonl"
    shutil.copy(world["samples"], samples)
    fails(capsys, ["eval", "--samples", samples, "--judge", world["ar"], "--reference",
                   world["ref"], "--out", samples], "samples file itself")
    fails(capsys, ["eval", "--samples", samples, "--judge", world["ar"], "--reference",
                   world["ref"], "--out", world["ref"]], "reference itself")
    for out in (run, ck_dir, run.parent):
        fails(capsys, ["sweep", "--ckpt", f"m={run}", "--samplers", "mdlm", "--steps", 2,
                       "--judge", world["ar"], "--reference", world["ref"], "--out", out],
              "checkpoint 'm'")
    fails(capsys, ["train", "--init", run, "--out", run, *TINY_RUN, "train.steps=1"], "--init checkpoint")
    fails(capsys, ["train", "--init", run, "--out", ck_dir / "more", *TINY_RUN, "train.steps=1"],
          "inside")
    fails(capsys, ["finetune", "--from", run, "--out", run.parent, *TINY_RUN, "train.steps=1"],
          "contains")
    _intact(run)
