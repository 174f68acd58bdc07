"""Class 7: every number a user types is bounded and typed, and every field of a file
dslm reads (checkpoint config and metadata, samples files, metrics logs) is checked."""

import json
import shutil

import pytest
import torch

from .conftest import TINY_RUN, fails


@pytest.mark.parametrize("override,needle", [
    ("train.eps=-1", "train.eps"), ("train.eps=0", "train.eps"),
    ("train.seed=-1", "seed must be >= 0"), ("model.embed_seed=-1", "seed must be >= 0"),
    ("data.split_seed=-5", "seed must be >= 0"), ("train.lr=inf", "finite"),
    ("train.lr=.nan", "nan"), ("train.steps=1e30", "out of range"),
    ("train.num_threads=100000", "train.num_threads"), ("train.batch_size=0", "train.batch_size"),
    ("model.hidden_size=65536", "needs"),
])
def test_train_numbers(tmp_path, capsys, override, needle):
    fails(capsys, ["train", "--out", tmp_path / "r", *TINY_RUN, "train.steps=1",
                   f"data.cache_dir={tmp_path / 'c'}", override], needle)


def test_command_numbers(world, tmp_path, capsys):
    s = ["sample", "--ckpt", world["mdlm"], "--sampler", "mdlm", "--steps", 2,
         "--out", tmp_path / "s.jsonl"]
    fails(capsys, s + ["--seq-len", 0], "--seq-len")
    fails(capsys, s + ["--batch-size", 0], "--batch-size")
    fails(capsys, s + ["--seed", -1], "--seed")
    fails(capsys, s + ["--num-samples", 10 ** 12], "--num-samples")
    e = ["eval", "--samples", world["samples"], "--judge", world["ar"], "--reference",
         world["ref"], "--out", tmp_path / "m.json"]
    fails(capsys, e + ["--batch-size", 0], "--batch-size")
    fails(capsys, e + ["--num-reference", -1], "--num-reference")
    w = ["sweep", "--ckpt", world["mdlm"], "--samplers", "mdlm", "--judge", world["ar"],
         "--reference", world["ref"], "--out", tmp_path / "sw"]
    fails(capsys, w + ["--batch-size", -1], "batch_size")
    fails(capsys, w + ["--seq-len", -4], "seq_len")


def test_hub_folder_declaring_a_huge_model_is_refused_before_allocating(tmp_path, capsys):
    from safetensors.torch import save_file

    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "mdlm", "vocab_size": 2 ** 24, "hidden_dim": 2 ** 14, "n_blocks": 64,
        "n_heads": 16, "cond_dim": 128, "model_length": 1024}))
    save_file({"backbone.x": torch.zeros(1)}, str(folder / "model.safetensors"))
    fails(capsys, ["export", "--ckpt", folder, "--out", tmp_path / "x"], "refusing before allocating")


def test_checkpoint_metadata_fields(world, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(world["mdlm"], bad)
    doc = json.loads((bad / "config.json").read_text())
    doc["metadata"] = ["not", "an", "object"]
    (bad / "config.json").write_text(json.dumps(doc))
    fails(capsys, ["sample", "--ckpt", bad, "--sampler", "mdlm", "--steps", 2,
                   "--out", tmp_path / "s.jsonl"], "metadata")
    doc["metadata"] = {}
    doc["model"]["hidden_size"] = 4096                   # sizes that do not match the file
    (bad / "config.json").write_text(json.dumps(doc))
    fails(capsys, ["sample", "--ckpt", bad, "--sampler", "mdlm", "--steps", 2,
                   "--out", tmp_path / "s.jsonl"], "shape")


@pytest.mark.parametrize("record,needle", [
    ({"text": "ab", "tokens": [-1, 2]}, "token ids"),
    ({"text": "ab", "tokens": [2 ** 40]}, "token ids"),
    ({"text": "ab", "nfe": "many"}, "'nfe'"),
    ({"text": "ab", "steps": -3}, "'steps'"),
    ({"text": 5}, "'text'"),
])
def test_samples_file_fields(world, tmp_path, capsys, record, needle):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(record) + "\n")
    fails(capsys, ["eval", "--samples", path, "--judge", world["ar"], "--reference", world["ref"],
                   "--out", tmp_path / "m.json"], needle)


def test_metrics_log_garbage_is_an_error(world, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(world["run"], run)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(["{oops", *lines]) + "\n")
    fails(capsys, ["train", "--out", run, "--resume", "train.steps=3"], "metrics.jsonl line 1")
    (run / "metrics.jsonl").write_text("\n".join(['{"step": "x"}', *lines]) + "\n")
    fails(capsys, ["train", "--out", run, "--resume", "train.steps=3"], "integer 'step'")
