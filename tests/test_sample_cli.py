"""`dslm sample` end to end through `dslm.cli.main` on tiny saved checkpoints."""

from __future__ import annotations

import json

import pytest

from conftest import char_checkpoints, tiny_model_config
from dslm.cli import main
from dslm.models import build_model
from dslm.models.checkpoint import save

ALPHABET = "abcdefghij"          # + EOS and unknown: |V| = 12


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    tok, paths = char_checkpoints(root, ("dsl", "mdlm"), ALPHABET)
    bare = build_model(tiny_model_config("mdlm", vocab_size=tok.vocab_size))
    paths["bare"] = save(bare, root / "bare")
    return paths


def read_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sample_writes_one_json_line_per_sample(ckpts, tmp_path, capsys):
    out = tmp_path / "samples.jsonl"
    code = main(["sample", "--ckpt", str(ckpts["mdlm"]), "--sampler", "remdm-loop", "--steps", "8",
                 "--num-samples", "5", "--seq-len", "12", "--batch-size", "2", "--seed", "3",
                 "--prompt", "abc", "--option", "eta=0.05", "--option", "top_p=0.8",
                 "--out", str(out)])
    assert code == 0
    rows = read_lines(out)
    assert len(rows) == 5
    for i, row in enumerate(rows):
        assert row["sampler"] == "remdm-loop" and row["steps"] == 8 and row["seed"] == 3
        assert row["index"] == i and 1 <= row["nfe"] <= 8
        assert len(row["tokens"]) == 12 and row["tokens"][:3] == [2, 3, 4]
        assert row["text"].startswith("abc")
    assert "wrote 5 samples" in capsys.readouterr().out
    again = tmp_path / "again.jsonl"
    main(["sample", "--ckpt", str(ckpts["mdlm"]), "--sampler", "remdm-loop", "--steps", "8",
          "--num-samples", "5", "--seq-len", "12", "--batch-size", "2", "--seed", "3",
          "--prompt", "abc", "--option", "eta=0.05", "--option", "top_p=0.8", "--out", str(again)])
    assert read_lines(again) == rows


def test_sample_without_tokenizer_writes_ids_and_empty_text(ckpts, tmp_path):
    out = tmp_path / "s.jsonl"
    assert main(["sample", "--ckpt", str(ckpts["bare"]), "--sampler", "mdlm", "--steps", "4",
                 "--num-samples", "2", "--out", str(out)]) == 0
    rows = read_lines(out)
    assert [r["text"] for r in rows] == ["", ""] and len(rows[0]["tokens"]) == 16


@pytest.mark.parametrize("argv,message", [
    (["--sampler", "nope", "--steps", "4"], "unknown sampler 'nope'; available:"),
    (["--sampler", "remdm-loop", "--steps", "4", "--ckpt-kind", "dsl"],
     "sampler 'remdm-loop' needs a 'mdlm' model, this is a 'dsl' model"),
    (["--sampler", "mdlm", "--steps", "0"], "--steps must be a positive integer"),
    (["--sampler", "mdlm", "--steps", "4", "--seq-len", "4", "--prompt", "abcdefg"],
     "the prompt has 7 tokens, longer than the sequence (4)"),
    (["--sampler", "mdlm", "--steps", "4", "--ckpt-kind", "bare", "--prompt", "ab"],
     "--prompt needs a tokenizer"),
    (["--sampler", "mdlm", "--steps", "4", "--option", "eta=1"], "unknown config key 'mdlm.eta'"),
])
def test_sample_errors_are_one_line(ckpts, tmp_path, capsys, argv, message):
    kind = "mdlm"
    if "--ckpt-kind" in argv:
        at = argv.index("--ckpt-kind")
        kind = argv[at + 1]
        argv = argv[:at] + argv[at + 2:]
    out = tmp_path / "x.jsonl"
    code = main(["sample", "--ckpt", str(ckpts[kind]), "--num-samples", "2", "--out", str(out)] + argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("dslm: error: ") and message in err and err.count("\n") == 1
    assert not out.exists()
