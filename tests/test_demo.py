"""The demo pipeline end to end on a miniature setting (synthetic corpus, tiny models)."""

import json

import pytest

from dslm.cli import main

pytestmark = pytest.mark.slow

MODEL = """model:
  kind: {kind}
  vocab_size: 0
  preset: micro
  seq_len: 24
  n_blocks: 1
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
            "extra_points=[hybrid:4]", "seeds=2", "base_seeds=3",
            "compare=[dsl-remdm-loop:remdm-loop]", "compare_steps=[4]", "compare_samples=6",
            "extra_base_samples=4"]
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
    for run in ("dsl", "mdlm-control", "dsl-s1", "mdlm-control-s1", "dsl-b1", "mdlm-control-b1",
                "dsl-b2", "mdlm-control-b2"):
        steps = [json.loads(line).get("step") for line in (out / run / "metrics.jsonl").read_text().splitlines()]
        assert max(s for s in steps if s is not None) == 3
    timing = json.loads((out / "demo.json").read_text())
    assert set(timing["stages"]) == set(timing["cpu_stages"]) == {
        "mdlm", "mdlm-b1", "mdlm-b2", "dsl", "mdlm-control", "dsl-s1", "mdlm-control-s1", "dsl-b1",
        "mdlm-control-b1", "dsl-b2", "mdlm-control-b2", "ar", "sweep", "compare", "compare-s1",
        "compare-b1", "compare-b2", "analyze", "traces", "data", "verdicts", "mauve"}
    assert timing["workers"] == 2 and (out / "logs" / "compare-s1.log").is_file()   # CI: 2 cores
    report = (out / "report.html").read_text()
    assert "Sweep results" in report and "How a sequence forms" in report
    # the analyses: DSL and the MDLM control side by side, shown in the report
    calibration = json.loads((out / "analyze" / "calibration.json").read_text())
    assert "DSL" in json.dumps(calibration) and "MDLM control" in json.dumps(calibration)
    from dslm.report.html import analyses_section
    assert analyses_section(out) in report and 'alt="calibration"' in report
    assert sorted(p.name for p in (out / "traces").glob("*.jsonl")) == sorted(
        f"{s}.jsonl" for s in ("mdlm", "remdm-loop", "dsl-mdlm", "dsl-remdm-loop", "roar-ar",
                               "dsl-continuous", "hybrid", "ar"))
    # seeds: the continuations differ, the second base MDLM differs from the first
    run_seed = {r: json.loads((out / r / "checkpoint" / "config.json").read_text())
                ["metadata"]["run_config"]["train"]["seed"] for r in ("mdlm", "mdlm-b1", "dsl-s1", "dsl-b1")}
    assert run_seed == {"mdlm": 0, "mdlm-b1": 1, "dsl-s1": 1, "dsl-b1": 1}
    verdicts = json.loads((out / "verdicts.json").read_text())
    main_rows = verdicts["tables"]["base seed 0"]
    assert len(main_rows) == 1 and main_rows[0]["num_pairs"] == 12 and main_rows[0]["seeds"] == [0, 1]
    assert main_rows[0]["verdict"] in ("better", "tie", "worse")
    assert verdicts["tables"]["base seed 1"][0]["num_pairs"] == 4       # extra_base_samples
    reading = (out / "reading.md").read_text()
    assert f"dsl-remdm-loop vs remdm-loop: {main_rows[0]['verdict']} at T = 4" in reading
    assert "Second base MDLM (seed 1)" in reading and "Base MDLM 3 (seed 2)" in reading
    assert reading in printed
    # three base MDLMs: each base's ratio as one draw, a t-interval over them
    (across,) = verdicts["across_bases"]
    assert across["bases"] == [0, 1, 2] and len(across["ratios"]) == 3
    assert across["ratios"][0] == pytest.approx(main_rows[0]["ratio"]["estimate"])
    assert across["ratio"]["low"] <= across["ratio"]["estimate"] <= across["ratio"]["high"]
    assert "Across 3 base MDLMs (seeds 0, 1, 2" in reading
    assert "## Across base MDLM seeds" in (out / "verdicts.md").read_text()
    for seed in ("s0", "s1", "b1", "b2"):   # one comparison sweep per continuation seed
        compared = json.loads((out / "compare" / seed / "sweep.json").read_text())
        assert compared["ar_baseline"] is None and compared["settings"]["mauve"] is False
        assert all("mauve" not in p and p["gen_ppl"] > 0 for p in compared["points"].values())
    pooled = verdicts["pooled_mauve"]          # MAUVE of the seeds' samples pooled: 2 x 6 each
    assert {p["n"] for p in pooled["points"].values()} == {12}
    assert set(pooled["points"]) == {"held-out (second draw)", "dsl-remdm-loop T=4", "remdm-loop T=4"}
    assert "continuation seeds pooled" in (out / "verdicts.md").read_text()
    # a second call finds every stage done and recomputes nothing: not a point, and not
    # the files of the sweeps, the pooled MAUVE or the analyses (their times stay)
    before = (out / "sweep" / "sweep.json").read_text()
    kept = [out / "sweep" / "sweep.json", out / "sweep" / "sweep.png", out / "compare" / "s1" / "sweep.json",
            out / "mauve_pooled.json", out / "analyze" / "calibration.json",
            out / "analyze" / "self_correction.json"]
    times = [p.stat().st_mtime_ns for p in kept]
    assert main(argv) == 0
    assert json.loads((out / "sweep" / "sweep.json").read_text())["points"] == json.loads(before)["points"]
    assert [p.stat().st_mtime_ns for p in kept] == times
