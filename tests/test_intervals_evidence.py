"""Per-point 95% intervals (gen PPL, MAUVE), the demo's seed-0 reuse and EVIDENCE.md generation."""

import json
from pathlib import Path

import numpy as np
import pytest

from dslm.evaluate import intervals
from dslm.evaluate.report import markdown_table


def test_genppl_interval_covers_the_true_perplexity_and_narrows_with_n():
    rng = np.random.default_rng(0)
    true_rate = 5.0                                   # nats per token: PPL e^5
    widths = []
    for n in (40, 400):
        tokens = rng.integers(60, 70, n).astype(float)
        nll = tokens * (true_rate + rng.normal(0, 0.3, n))
        ci = intervals.genppl_interval(nll, tokens, seed=1)
        assert ci.low < np.exp(true_rate) < ci.high
        assert ci.low < ci.estimate < ci.high
        widths.append(ci.high - ci.low)
    assert widths[1] < widths[0] / 2


def test_genppl_interval_refuses_a_single_sample():
    with pytest.raises(ValueError):
        intervals.genppl_interval([1.0], [3])


def test_mauve_interval_separates_same_from_different_distributions():
    pytest.importorskip("mauve")
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(80, 16))
    same = rng.normal(size=(80, 16))
    far = rng.normal(size=(80, 16)) + 3.0
    ci_same = intervals.mauve_interval(same, ref, estimate=0.9)
    ci_far = intervals.mauve_interval(far, ref, estimate=0.1)
    assert ci_far.high < ci_same.low
    assert 0.0 <= ci_far.low <= ci_far.high <= 1.0


def test_annotate_and_table_show_the_interval():
    nll, tokens = [300.0, 320.0, 310.0, 290.0], [64, 64, 64, 64]
    doc = {"settings": {"num_samples": 4}, "plan": ["k"],
           "points": {"k": {"key": "k", "model": "M", "sampler": "mdlm", "steps": 8, "nfe": 8,
                            "gen_ppl": float(np.exp(sum(nll) / sum(tokens))),
                            "per_sample": {"nll": nll, "tokens": tokens}}}}
    intervals.annotate(doc)
    ci = doc["points"]["k"]["gen_ppl_ci"]
    assert ci["low"] <= doc["points"]["k"]["gen_ppl"] <= ci["high"]
    assert f"({ci['low']:.1f}-{ci['high']:.1f})" in markdown_table(doc)


def test_table_reuse_only_when_the_table_holds_every_compared_point(tmp_path):
    from dslm.demo import load_demo_config
    from dslm.demo_compare import table_covers, table_reuse

    cfg = load_demo_config(flags={"out": str(tmp_path)}, overrides=[
        "compare=[dsl-mdlm:mdlm]", "compare_samples=32", "num_samples=32"])
    assert table_covers(cfg)
    (tmp_path / "sweep").mkdir()
    assert table_reuse(cfg, tmp_path) is None          # no sweep.json yet
    (tmp_path / "sweep" / "sweep.json").write_text(json.dumps({"settings": {}, "points": {}}))
    dsl_label, ctl_label, doc, folder = table_reuse(cfg, tmp_path)
    assert dsl_label.startswith("DSL") and ctl_label.startswith("MDLM") and folder == tmp_path / "sweep"
    cfg.compare = ["hybrid:mdlm"]
    assert not table_covers(cfg)                       # a sampler not in the table
    cfg.compare, cfg.compare_steps = ["dsl-mdlm:mdlm"], [64]
    assert not table_covers(cfg)                       # T not in the table
    cfg.compare_steps, cfg.compare_samples = [8], 86
    assert not table_covers(cfg)                       # fewer samples per point than compared


def _run_folder(root: Path, nelbo_end: float, verdict: str) -> Path:
    root.mkdir(parents=True)
    point = {"model": "DSL (400 MDLM + 100 DSL steps)", "sampler": "dsl-mdlm", "steps": 8,
             "gen_ppl": 1234.5, "gen_ppl_ci": {"low": 1100.0, "high": 1400.0},
             "mauve": 0.25, "mauve_ci": {"low": 0.1, "high": 0.4}}
    (root / "sweep.json").write_text(json.dumps({
        "settings": {"num_samples": 32, "judge": "smollm2-135m", "featurizer": "all-minilm-l6-v2",
                     "text_decoding": {"truncate_tokens": 64}},
        "points": {"a": point}, "reference": {"gen_ppl": 55.0, "mauve": 0.95}}))
    row = {"dsl_sampler": "dsl-mdlm", "control_sampler": "mdlm", "steps": 8, "num_pairs": 72,
           "ppl_dsl": 1234.5, "ppl_control": 1300.0, "verdict": verdict,
           "ratio": {"estimate": 0.95, "low": 0.9, "high": 1.01}}
    (root / "verdicts.json").write_text(json.dumps({"judge": "smollm2-135m",
                                                    "tables": {"base seed 0": [row]}}))
    (root / "demo.json").write_text(json.dumps({
        "stages": {"mdlm": 80.0}, "cpu_stages": {"mdlm": 150.0}, "total_seconds": 80.0,
        "total_cpu_seconds": 150.0, "cpu_count": 2,
        "recipe": {"unigram_entropy": 6.4, "nelbo": {"mdlm": [[100, 6.6], [400, nelbo_end]]}}}))
    return root


def test_evidence_markdown_is_generated_from_the_run_files(tmp_path):
    from dslm.evidence import evidence_markdown

    a = _run_folder(tmp_path / "a", 6.17, "tie")
    b = _run_folder(tmp_path / "b", 5.49, "worse")
    md = evidence_markdown([("embedded", a), ("kjv", b)])
    assert "| embedded | 6.17 | - | 6.40 | 0 / 1 / 0 of 1 |" in md
    assert "| kjv | 5.49 | - | 6.40 | 0 / 0 / 1 of 1 |" in md
    assert "1234 (1100-1400)" in md and "0.250 (0.100-0.400)" in md
    assert "**worse**" in md and "first 64 judge tokens" in md


def test_evidence_shows_the_verdict_across_base_seeds(tmp_path):
    from dslm.evidence import evidence_markdown

    a = _run_folder(tmp_path / "a", 6.17, "tie")
    verdicts = json.loads((a / "verdicts.json").read_text())
    verdicts["across_bases"] = [{
        "dsl_sampler": "dsl-mdlm", "control_sampler": "mdlm", "steps": 8, "bases": [0, 1, 2],
        "ratios": [0.95, 1.1, 1.02], "base_verdicts": ["tie", "worse", "tie"],
        "ratio": {"estimate": 1.02, "low": 0.85, "high": 1.22, "level": 0.95}, "verdict": "tie"}]
    (a / "verdicts.json").write_text(json.dumps(verdicts))
    demo = json.loads((a / "demo.json").read_text())
    demo["wall_before"], demo["wall_seconds"] = 900.0, 1300.0      # finished by a second invocation
    (a / "demo.json").write_text(json.dumps(demo))
    md = evidence_markdown([("embedded-3-bases", a)])
    assert "| 1300 (resumed) | 150 (resumed) |" in md and "not one run's budget" in md
    assert "Across base seeds (each base's pooled ratio one draw" in md
    assert "| dsl-mdlm | mdlm | 8 | 3 | 0.95 / 1.10 / 1.02 | 1.020 (0.850, 1.220) | 0 / 2 / 1 | **tie** |" in md


def test_evidence_reports_the_paired_gap_to_the_unigram_model(tmp_path):
    """Runs that recorded val_unigram are judged by NELBO - val_unigram, not by NELBO - H_1."""
    from dslm.evidence import evidence_markdown

    a = _run_folder(tmp_path / "a", 6.17, "tie")
    demo = json.loads((a / "demo.json").read_text())
    demo["recipe"]["nelbo"] = {"mdlm": [[0, 8.1, 8.3], [400, 6.17, 6.27]],
                               "mdlm-b1": [[0, 8.1, 8.3], [400, 6.40, 6.35]]}
    (a / "demo.json").write_text(json.dumps(demo))
    md = evidence_markdown([("embedded", a)])
    assert "| embedded | 6.17 / 6.40 | -0.10 / +0.05 | 6.40 |" in md
    assert "0.10 nats below the plateau" in md and "0.05 nats ABOVE the plateau" in md


def test_unigram_entropy_of_blocks():
    from dslm.train.unigram import token_counts, unigram_entropy

    blocks = np.array([[0, 1, 2, 3], [0, 1, 2, 3]])
    assert unigram_entropy(token_counts(blocks, 8)) == pytest.approx(np.log(4))
    # past max_tokens, evenly spaced blocks are counted: here blocks 0 and 2 of 3
    blocks = np.array([[0, 0], [1, 1], [2, 2]])
    assert token_counts(blocks, 4, max_tokens=4).tolist() == [2, 0, 2, 0]


def test_vectorised_mauve_of_histograms_matches_mauve_text():
    pytest.importorskip("mauve")
    from mauve.compute_mauve import get_divergence_curve_for_multinomials
    from sklearn.metrics import auc

    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(5), size=6), rng.dirichlet(np.ones(5), size=6)
    p[0, :2] = 0.0
    p[0] /= p[0].sum()
    got = intervals._mauve_of_histograms(p, q, 5.0)
    for i in range(6):
        x, y = get_divergence_curve_for_multinomials(p[i], q[i], np.linspace(1e-6, 1 - 1e-6, 25), 5.0).T
        i1, i2 = np.argsort(x), np.argsort(y)
        assert got[i] == pytest.approx(0.5 * (auc(x[i1], y[i1]) + auc(y[i2], x[i2])), abs=1e-12)


def test_readme_block_is_regenerated_in_place(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "evidence_script", Path(__file__).resolve().parents[1] / "scripts" / "evidence.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    run = _run_folder(tmp_path / "run", 6.17, "tie")
    (run / "reading.md").write_text("### What the demo shows\n\nDSL ties.\n")
    (run / "verdicts.md").write_text("# Verdicts\n\n## Base MDLM seed 0\n\n| a |\n")
    (run / "sweep.md").write_text("# Sweep results\n\n32 samples per point.\n\n| t |\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{script.BEGIN} x -->\nold text\n{script.END}\n\n### Budget\n")
    for _ in range(2):                                  # idempotent
        script.readme(run, readme)
    text = readme.read_text()
    assert "old text" not in text and text.count("#### What the demo shows") == 1
    assert "#### Base MDLM seed 0" in text and "-> 6.17 at step 400" in text
    assert text.endswith(f"{script.END}\n\n### Budget\n")


from test_sweep import ckpts  # noqa: E402,F401  (the tiny checkpoints fixture)


@pytest.mark.slow
def test_same_seed_same_machine_gives_the_same_table(ckpts, tmp_path):  # noqa: F811
    """Two sweeps in fresh folders (same seed, real samplers, intervals included) agree exactly."""
    from dslm.evaluate.sweep import SweepConfig, run_sweep

    docs = []
    for name in ("a", "b"):
        cfg = SweepConfig(models=[("M", ckpts["mdlm"]), ("D", ckpts["dsl"])],
                          samplers=["mdlm", "dsl-mdlm"], steps=[4], out=str(tmp_path / name),
                          num_samples=12, seq_len=8, reference=ckpts["reference"],
                          judge=ckpts["ar"], featurizer=ckpts["ar"], device="cpu")
        docs.append(run_sweep(cfg, progress=False))
    keys = ("gen_ppl", "gen_ppl_ci", "mauve", "mauve_ci", "entropy", "nfe", "per_sample")
    a, b = docs
    assert a["points"].keys() == b["points"].keys() and len(a["points"]) == 2
    for k in a["points"]:
        assert {x: a["points"][k][x] for x in keys} == {x: b["points"][k][x] for x in keys}
    assert a["reference"]["gen_ppl_ci"] == b["reference"]["gen_ppl_ci"]
