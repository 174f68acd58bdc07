"""Bad input through the CLI: a one-line `dslm: error: ...` naming the problem, exit 2."""

import json
import shutil

import pytest
import torch

from dslm.cli import main
from dslm.config import load
from dslm.models import checkpoint as ck
from dslm.train import RunConfig, train

TINY = ["model.hidden_size=32", "model.n_blocks=1", "model.n_heads=2", "model.cond_dim=16",
        "model.seq_len=32", "model.embed_dim=8", "data.source=synthetic", "data.tokenizer=char",
        "data.seq_len=32", "data.max_documents=200", "train.steps=1", "train.batch_size=2",
        "train.eval_every=0"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    out = {}
    for kind in ("mdlm", "dsl"):
        cfg = load(RunConfig, None, TINY + [f"model.kind={kind}", f"data.cache_dir={root / 'cache'}",
                                            f"train.out_dir={root / kind}"])
        out[kind] = train(cfg, progress=False).checkpoint
    out["root"] = root
    return out


def _fails(capsys, argv, *needles):
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    lines = err.splitlines()
    assert lines[-1].startswith("dslm: error: "), err
    assert "Traceback" not in err
    message = lines[-1].lower()
    for needle in needles:
        assert needle.lower() in message, (needle, message)
    return message


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_config_key_and_value_errors(capsys, tmp_path):
    _fails(capsys, ["train", "--out", tmp_path / "r", "train.lrr=1"], "unknown config key 'train.lrr'", "lr")
    _fails(capsys, ["train", "--out", tmp_path / "r", "model.kind=gpt"], "model.kind", "allowed")
    _fails(capsys, ["train", "--out", tmp_path / "r", "train.steps=many"], "train.steps", "integer")
    _fails(capsys, ["train", "--config", tmp_path / "missing.yaml"], "not found")


def test_data_file_errors(capsys, tmp_path, runs):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9 au lait\n\nmore text here\n".encode("latin-1"))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    base = ["train", "--out", tmp_path / "r", *TINY, f"data.cache_dir={tmp_path / 'c'}"]
    _fails(capsys, base + [f"data.source={latin}"], "utf-8")
    _fails(capsys, base + [f"data.source={empty}"], "empty")
    _fails(capsys, base + [f"data.source={tmp_path / 'nope.txt'}"], "nope.txt")


def test_sampler_and_step_errors(capsys, tmp_path, runs):
    out = tmp_path / "s.jsonl"
    _fails(capsys, ["sample", "--ckpt", runs["dsl"], "--sampler", "mdlm", "--steps", 4, "--out", out],
           "mdlm", "dsl")
    _fails(capsys, ["sample", "--ckpt", runs["mdlm"], "--sampler", "nope", "--steps", 4, "--out", out], "nope")
    for steps in (0, -3):
        _fails(capsys, ["sample", "--ckpt", runs["mdlm"], "--sampler", "mdlm", "--steps", steps,
                        "--out", out], "steps")
    _fails(capsys, ["sample", "--ckpt", runs["mdlm"], "--sampler", "mdlm", "--steps", 4, "--seq-len", 8,
                    "--prompt", "a prompt that is much longer than eight characters", "--out", out],
           "prompt")
    assert not out.exists()


def test_broken_checkpoints(capsys, tmp_path, runs):
    out = tmp_path / "s.jsonl"
    trunc = _copy(runs["mdlm"], tmp_path / "trunc")
    w = trunc / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    _fails(capsys, ["sample", "--ckpt", trunc, "--sampler", "mdlm", "--steps", 2, "--out", out],
           "truncated or corrupt")

    nan = tmp_path / "nan"
    opened = ck.open_checkpoint(runs["mdlm"])
    model = opened.model
    with torch.no_grad():
        model.backbone.output_layer.linear.weight[0, 0] = float("inf")
    ck.save(model, nan, metadata=opened.metadata,
            write_extra=lambda d: shutil.copytree(runs["mdlm"] / "tokenizer", d / "tokenizer"))
    _fails(capsys, ["sample", "--ckpt", nan, "--sampler", "mdlm", "--steps", 2, "--out", out],
           "nan or inf", "output_layer.linear.weight")

    # a tokenizer with another vocabulary than the model's
    wrong = _copy(runs["mdlm"], tmp_path / "wrongtok")
    doc = json.loads((wrong / "config.json").read_text())
    doc["metadata"]["tokenizer"] = {"kind": "gpt2", "name": "gpt2", "vocab_size": 50257}
    (wrong / "config.json").write_text(json.dumps(doc))
    _fails(capsys, ["sample", "--ckpt", wrong, "--sampler", "mdlm", "--steps", 2, "--out", out,
                    "--prompt", "hi"], "tokenizer")


def test_eval_input_errors(capsys, tmp_path, runs):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\xff\xfe not utf-8\n")
    _fails(capsys, ["eval", "--samples", bad, "--judge", runs["mdlm"], "--no-mauve",
                    "--out", tmp_path / "m.json"], "utf-8")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _fails(capsys, ["eval", "--samples", empty, "--judge", runs["mdlm"], "--no-mauve",
                    "--out", tmp_path / "m.json"], "empty")
