"""`dslm eval` and `dslm sweep` from the command line, and reference texts from a checkpoint."""

import json

import pytest

from conftest import char_world
from dslm.cli import build_parser, main
from dslm.evaluate.reference import load_reference

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """AR and MDLM checkpoints that record a local corpus, a reference file and samples."""
    return char_world(tmp_path_factory.mktemp("cli"), ("ar", "mdlm"), n_ref=30, n_texts=20)


def test_eval_writes_metrics(setup, tmp_path):
    out = tmp_path / "metrics.json"
    rc = main(["eval", "--samples", setup["samples"], "--reference", setup["ref"],
               "--judge", setup["ar"], "--model", setup["mdlm"], "--out", str(out), "--device", "cpu"])
    assert rc == 0
    doc = json.loads(out.read_text())
    m = doc["metrics"]
    assert doc["sampler"] == "mdlm" and doc["nfe"] == 8
    assert 0.0 <= m["mauve"] <= 1.0 and m["gen_ppl"] > 1.0
    assert m["judge_tokens"] == 20 * 16 and m["entropy_tokenizer"] == "samples"
    assert m["num_samples"] == 20 and doc["settings"]["entropy_unit"] == "nats"


def test_eval_reference_from_the_checkpoints_validation_split(setup, tmp_path):
    texts = load_reference("validation", 5, seed=1, checkpoint=setup["mdlm"])
    assert len(texts) == 5 and all(len(t) == 16 for t in texts)
    assert texts == load_reference("validation", 5, seed=1, checkpoint=setup["mdlm"])
    out = tmp_path / "m.json"
    assert main(["eval", "--samples", setup["samples"], "--judge", setup["ar"],
                 "--model", setup["mdlm"], "--out", str(out), "--device", "cpu"]) == 0
    assert json.loads(out.read_text())["settings"]["num_reference"] == 20


def test_eval_errors_are_one_line(setup, tmp_path, capsys):
    rc = main(["eval", "--samples", str(tmp_path / "none.jsonl"), "--judge", setup["ar"]])
    assert rc == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"dslm: error: file not found: {tmp_path / 'none.jsonl'}"]
    rc = main(["eval", "--samples", setup["samples"], "--judge", setup["ar"], "--device", "cpu",
               "--out", str(tmp_path / "x.json")])
    assert rc == 2 and "needs a dslm checkpoint" in capsys.readouterr().err


def test_sweep_command_runs_and_reports(setup, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["sweep", "--ckpt", f"tiny={setup['mdlm']}", "--samplers", "mdlm,dsl-mdlm",
            "--steps", "2,4", "--num-samples", "10", "--seq-len", "8", "--judge", setup["ar"],
            "--reference", setup["ref"], "--device", "cpu", "--out", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| tiny | mdlm | 2 |" in printed and "tiny / dsl-mdlm" in printed
    assert (out / "sweep.png").stat().st_size > 0
    assert main(["sweep", "--ckpt", setup["mdlm"], "--samplers", "mdlm,nope", "--judge",
                 setup["ar"], "--out", str(out)]) == 2
    assert "unknown sampler 'nope'" in capsys.readouterr().err


def test_sweep_protocol_preset_and_overrides(tmp_path):
    from dslm.commands.sweep import build_config, parse_models

    args = build_parser().parse_args(["sweep", "--ckpt", "x", "--protocol", "owt",
                                      "--num-samples", "100", "--out", str(tmp_path)])
    cfg = build_config(args)
    assert cfg.num_samples == 100 and cfg.seq_len == 1024
    assert cfg.judge == cfg.featurizer == "gpt2-large"
    assert cfg.steps == [128, 256, 512, 1024] and cfg.extra_points == ["hybrid:48"]
    assert {"mdlm", "remdm-loop", "dsl-remdm-loop"} <= set(cfg.samplers)
    assert cfg.data_config.source == "hf:openwebtext" and cfg.data_config.tokenizer == "gpt2"
    plain = build_config(build_parser().parse_args(["sweep", "--ckpt", "x", "--samplers", "mdlm",
                                                    "--out", str(tmp_path)]))
    assert plain.steps == [8, 16, 32, 64, 128] and plain.num_samples == 64
    assert parse_models(["runs/dsl/checkpoint", "B=some/path"]) == [
        ("dsl", "runs/dsl/checkpoint"), ("B", "some/path")]


def test_eval_of_texts_without_token_ids_uses_the_judges_tokenisation(setup, tmp_path):
    samples = tmp_path / "texts.jsonl"
    samples.write_text("".join(json.dumps({"text": t}) + "\n" for t in ["abcabcabc", "jihgfedcba"]))
    out = tmp_path / "m.json"
    assert main(["eval", "--samples", str(samples), "--judge", setup["ar"], "--no-mauve",
                 "--device", "cpu", "--out", str(out)]) == 0
    m = json.loads(out.read_text())["metrics"]
    assert m["entropy_tokenizer"] == "ar" and "mauve" not in m
    assert m["judge_tokens"] == 19 and m["distinct_1"] == pytest.approx((3 / 9 + 1) / 2)
