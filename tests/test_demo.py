"""The demo pipeline end to end on a miniature setting (synthetic corpus, tiny models)."""

import json

import pytest

from dslm.cli import main

pytestmark = pytest.mark.slow

MODEL = """model:
  kind: {kind}
  vocab_size: 0
  seq_len: 24
  hidden_size: 32
  n_blocks: 1
  n_heads: 2
  cond_dim: 16
  embed_dim: 8
data:
  source: synthetic
  tokenizer: char
  seq_len: 24
  max_documents: 300
  cache_dir: {cache}
train:
  batch_size: 4
  lr: 3.0e-3
  warmup_steps: 2
  eval_every: 0
  eval_batches: 2
  num_threads: 1
"""


def test_demo_runs_every_stage_and_resumes(tmp_path, capsys):
    configs = tmp_path / "configs"
    configs.mkdir()
    for kind in ("mdlm", "dsl", "ar"):
        (configs / f"tiny-{kind}.yaml").write_text(MODEL.format(kind=kind, cache=tmp_path / "cache"))
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--configs", str(configs), "mdlm_steps=4", "extra_steps=3",
            "ar_steps=3", "num_samples=8", "steps=[2,4]", "samplers=[mdlm,dsl-remdm-loop,roar-ar]",
            "extra_points=[hybrid:4]"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| model | sampler | T | NFE | MAUVE |" in printed
    doc = json.loads((out / "sweep" / "sweep.json").read_text())
    rows = {(p["model"].split()[0], p["sampler"], p["steps"]) for p in doc["points"].values()}
    assert rows == {("MDLM", "mdlm", 2), ("MDLM", "mdlm", 4), ("MDLM", "roar-ar", 2), ("MDLM", "roar-ar", 4),
                    ("DSL", "dsl-remdm-loop", 2), ("DSL", "dsl-remdm-loop", 4), ("DSL", "roar-ar", 2),
                    ("DSL", "roar-ar", 4), ("DSL", "hybrid", 4)}
    assert all(p["nfe"] <= p["steps"] for p in doc["points"].values())
    assert doc["ar_baseline"]["mauve"] is not None
    assert (out / "sweep" / "sweep.png").stat().st_size > 1000
    # fair comparison: both continuations ran the same number of steps from the same MDLM
    for run in ("dsl", "mdlm-control"):
        steps = [json.loads(line).get("step") for line in (out / run / "metrics.jsonl").read_text().splitlines()]
        assert max(s for s in steps if s is not None) == 3
    stages = json.loads((out / "demo.json").read_text())["stages"]
    assert set(stages) == {"mdlm", "dsl", "mdlm-control", "ar", "sweep"}
    # a second call finds every stage done and recomputes nothing
    before = (out / "sweep" / "sweep.json").read_text()
    assert main(argv) == 0
    assert json.loads((out / "sweep" / "sweep.json").read_text())["points"] == json.loads(before)["points"]
