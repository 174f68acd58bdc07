"""Class 3: I/O failures are one-line errors, found before long work, and finished
work is kept. Every writing command against a read-only folder, an output that names
an existing file (or folder), a name too long for the file system, and a full disk."""

import errno
import json

import pytest

from .conftest import TINY_RUN, fails, readonly


def _argv(world, command, out):
    cache = f"data.cache_dir={world['root'] / 'cache'}"
    return {
        "train": ["train", "--out", out, *TINY_RUN, "train.steps=1", cache],
        "finetune": ["finetune", "--from", world["mdlm"], "--out", out, *TINY_RUN,
                     "train.steps=1", cache],
        "sample": ["sample", "--ckpt", world["mdlm"], "--sampler", "mdlm", "--steps", 2,
                   "--num-samples", 2, "--out", out],
        "eval": ["eval", "--samples", world["samples"], "--judge", world["ar"], "--reference",
                 world["ref"], "--out", out],
        "sweep": ["sweep", "--ckpt", f"m={world['mdlm']}", "--samplers", "mdlm", "--steps", 2,
                  "--num-samples", 4, "--judge", world["ar"], "--reference", world["ref"],
                  "--out", out],
        "demo": ["demo", "--quick", "--out", out],
        "export": ["export", "--ckpt", world["mdlm"], "--out", out],
    }[command]


COMMANDS = ["train", "finetune", "sample", "eval", "sweep", "demo", "export"]
FOLDER_OUT = {"train", "finetune", "sweep", "demo", "export"}


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as loading a model or preparing data."""
    import dslm.data.prepare as prepare
    import dslm.models.checkpoint as ck

    def boom(*a, **k):
        raise AssertionError("long work started before the output was checked")

    monkeypatch.setattr(prepare, "prepare_data", boom)
    monkeypatch.setattr(ck, "read_weights", boom)


@pytest.mark.parametrize("command", COMMANDS)
def test_read_only_output(world, tmp_path, capsys, monkeypatch, no_work, command):
    ro = tmp_path / "ro"
    readonly(monkeypatch, ro)
    out = ro / ("x.json" if command not in FOLDER_OUT else "x")
    import os

    fails(capsys, _argv(world, command, out),
          "read-only file system" if os.geteuid() == 0 else "permission denied")


@pytest.mark.parametrize("command", COMMANDS)
def test_output_of_the_wrong_type(world, tmp_path, capsys, no_work, command):
    if command in FOLDER_OUT:
        out = tmp_path / "a-file"
        out.write_text("x")
        fails(capsys, _argv(world, command, out), "existing file")
        assert out.read_text() == "x"
    else:
        out = tmp_path / "a-folder"
        out.mkdir()
        fails(capsys, _argv(world, command, out), "existing folder")


@pytest.mark.parametrize("command", COMMANDS)
def test_name_too_long(world, tmp_path, capsys, no_work, command):
    fails(capsys, _argv(world, command, tmp_path / ("n" * 300)), "shorter")


def test_full_disk_in_torch_save_and_metrics(world, tmp_path, capsys, monkeypatch):
    import torch

    import dslm.train.state as state

    def unexpected_pos(*a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter "
                           "failed writing file data/0: file write failed; unexpected pos 64 vs 128")

    monkeypatch.setattr(torch, "save", unexpected_pos)
    fails(capsys, _argv(world, "train", tmp_path / "r1"), "could not write", "disk is probably full")
    monkeypatch.undo()

    real_open = open

    def full_append(path, mode="r", *a, **k):
        if str(path).endswith("metrics.jsonl") and "a" in mode:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr("builtins.open", full_append)
    fails(capsys, _argv(world, "train", tmp_path / "r2"), "metrics.jsonl", "disk is full")


def test_sample_keeps_finished_batches_when_the_disk_fills(world, tmp_path, capsys, monkeypatch):
    from dslm.evaluate import samples

    real_add = samples.PartialSamples.add

    def add(self, records):
        if self.count >= 4:
            raise samples.DSLMError("could not write: No space left on device (the disk is full)")
        return real_add(self, records)

    monkeypatch.setattr(samples.PartialSamples, "add", add)
    out = tmp_path / "s.jsonl"
    fails(capsys, ["sample", "--ckpt", world["mdlm"], "--sampler", "mdlm", "--steps", 2,
                   "--num-samples", 8, "--batch-size", 2, "--out", out], "disk is full")
    partial = tmp_path / "s.jsonl.partial"
    rows = [json.loads(line) for line in partial.read_text().splitlines()]
    assert [r["index"] for r in rows] == [0, 1, 2, 3] and not out.exists()


def test_sweep_keeps_finished_points_when_a_write_fails(world, tmp_path, capsys, monkeypatch):
    from dslm.evaluate import sweep

    real = sweep._Sweep.save
    calls = {"n": 0}

    def save(self, plot=False):
        calls["n"] += 1
        if len(self.doc["points"]) >= 2:
            raise sweep.DSLMError("no space left on device while writing sweep.json")
        return real(self, plot)

    monkeypatch.setattr(sweep._Sweep, "save", save)
    out = tmp_path / "sw"
    argv = _argv(world, "sweep", out)
    argv[argv.index("--steps") + 1] = "2,4"
    fails(capsys, argv, "no space left")
    doc = json.loads((out / "sweep.json").read_text())
    assert len(doc["points"]) == 1                     # the finished point is on disk
