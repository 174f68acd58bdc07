"""Paired bootstrap (dslm.evaluate.stats) and the verdict table / reading (compare)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dslm.errors import DSLMError
from dslm.evaluate import compare, stats


def _scores(rng, n, rate, tokens=100, noise=0.3, shared=None):
    """[n, 2] (nll sum, tokens) rows whose per-token NLL is ``rate`` (+ shared + own noise)."""
    base = shared if shared is not None else np.zeros(n)
    per_token = rate + base + noise * rng.standard_normal(n)
    return np.stack([per_token * tokens, np.full(n, float(tokens))], axis=1)


def test_ratio_interval_covers_known_difference_and_excludes_one():
    rng = np.random.default_rng(0)
    n = 256
    shared = 0.5 * rng.standard_normal(n)          # per-sample difficulty shared by the pair
    a = _scores(rng, n, 5.0, shared=shared)
    b = _scores(rng, n, 5.2, shared=shared)
    iv = stats.genppl_ratio(a, b)
    true = np.exp(-0.2)
    assert iv.low < true < iv.high
    assert iv.high < 1.0 and stats.ratio_verdict(iv) == "better"
    assert stats.ratio_verdict(stats.genppl_ratio(b, a)) == "worse"


def test_ratio_interval_includes_one_when_sets_are_alike():
    """Same rate: over many synthetic draws the interval contains 1 about 95% of the time."""
    rng = np.random.default_rng(1)
    covered = 0
    trials = 60
    for k in range(trials):
        shared = 0.5 * rng.standard_normal(128)
        a = _scores(rng, 128, 5.0, shared=shared)
        b = _scores(rng, 128, 5.0, shared=shared)
        iv = stats.genppl_ratio(a, b, n_boot=500, seed=k)
        covered += iv.low <= 1.0 <= iv.high
    assert covered >= 0.85 * trials          # nominal 95%; a broken interval fails this


def test_pairing_narrows_the_interval():
    rng = np.random.default_rng(2)
    shared = 1.0 * rng.standard_normal(200)
    a = _scores(rng, 200, 5.0, shared=shared, noise=0.1)
    b = _scores(rng, 200, 5.0, shared=shared, noise=0.1)
    paired = stats.genppl_ratio(a, b)
    unpaired = stats.genppl_ratio(a, b[rng.permutation(200)])
    assert (paired.high - paired.low) < 0.5 * (unpaired.high - unpaired.low)


def test_mean_difference_and_strata():
    rng = np.random.default_rng(3)
    a = 4.3 + 0.1 * rng.standard_normal(300)
    b = 4.0 + 0.1 * rng.standard_normal(300)
    iv = stats.mean_difference(a, b, strata=[0] * 100 + [1] * 100 + [2] * 100)
    assert iv.low < 0.3 < iv.high and stats.difference_verdict(iv) == "higher"
    same = stats.mean_difference(a, a + 0.001 * rng.standard_normal(300))
    assert stats.difference_verdict(same) == "tie"


def test_bad_inputs_are_clear_errors():
    with pytest.raises(stats.MissingPerSampleError, match="no per_sample"):
        stats.per_sample_scores({"key": "m|mdlm|T=8", "gen_ppl": 10.0})
    with pytest.raises(DSLMError, match="differ in size"):
        stats.genppl_ratio(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(DSLMError, match="no tokens"):
        stats.per_sample_scores({"per_sample": {"nll": [1.0], "tokens": [0]}})


def _doc(rng, n, rates):
    points = {}
    for (model, sampler), rate in rates.items():
        s = _scores(rng, n, rate, noise=0.2)
        points[f"{model}|{sampler}|T=8"] = {
            "model": model, "sampler": sampler, "steps": 8, "seed": 0,
            "per_sample": {"nll": s[:, 0].tolist(), "tokens": s[:, 1].astype(int).tolist()}}
    return {"points": points}


def test_verdict_table_and_generated_reading(tmp_path):
    rng = np.random.default_rng(4)
    rates = {("DSL", "dsl-mdlm"): 5.0, ("MDLM", "mdlm"): 5.3,
             ("DSL", "dsl-remdm-loop"): 5.5, ("MDLM", "remdm-loop"): 5.0}
    sweeps = [compare.SeedSweep(s, _doc(rng, 90, rates), "DSL", "MDLM") for s in (0, 1, 2)]
    rows = compare.compare(sweeps, [("dsl-mdlm", "mdlm"), ("dsl-remdm-loop", "remdm-loop")], [8],
                           n_boot=500)
    assert [r.verdict for r in rows] == ["better", "worse"]
    assert rows[0].num_pairs == 270 and len(rows[0].per_seed_ratio) == 3
    text = compare.reading_markdown(rows, judge="test-judge")
    assert "dsl-mdlm vs mdlm: better at T = 8" in text
    assert "dsl-remdm-loop vs remdm-loop: worse at T = 8" in text
    assert "better at 1, tied at 0 and worse at 1 of 2 points" in text
    assert "does not support" in text
    md = compare.table_markdown(rows)
    assert md.count("\n") == 4 and "**worse**" in md
    json.dumps([r.as_dict() for r in rows])            # the table is JSON-ready


def test_compare_fails_clearly_without_per_sample():
    doc = {"points": {"k": {"model": "DSL", "sampler": "dsl-mdlm", "steps": 8},
                      "j": {"model": "MDLM", "sampler": "mdlm", "steps": 8}}}
    with pytest.raises(stats.MissingPerSampleError, match="DSL dsl-mdlm T=8"):
        compare.compare([compare.SeedSweep(0, doc, "DSL", "MDLM")], [("dsl-mdlm", "mdlm")], [8])
    with pytest.raises(DSLMError, match="no point"):
        compare.compare([compare.SeedSweep(0, doc, "DSL", "MDLM")], [("dsl-mdlm", "mdlm")], [16])


def _row(ratio: float, verdict: str, steps: int = 8) -> compare.Comparison:
    iv = stats.Interval(ratio, ratio * 0.95, ratio * 1.05)
    return compare.Comparison("dsl-mdlm", "mdlm", steps, [0], 86, 100.0 * ratio, 100.0, iv, verdict)


def test_across_bases_is_a_t_interval_over_the_bases_ratios():
    """Ratios 0.8, 1.0, 1.25: log mean 0, sd ln 1.25, t_{2, 0.975} = 4.3027, so the
    interval is exp(+-4.3027 ln(1.25) / sqrt 3) = 0.5745-1.7408: a tie, although each
    base's own verdict is decided; equal ratios give a zero-width interval."""
    tables = {0: [_row(0.8, "better")], 1: [_row(1.0, "tie")], 2: [_row(1.25, "worse")]}
    (r,) = compare.across_bases(tables)
    assert r.ratio.estimate == pytest.approx(1.0)
    assert (r.ratio.low, r.ratio.high) == pytest.approx((0.5745, 1.7408), abs=1e-4)
    assert r.verdict == "tie" and r.base_verdicts == ["better", "tie", "worse"]
    (same,) = compare.across_bases({j: [_row(0.9, "better")] for j in range(4)})
    assert same.verdict == "better" and same.ratio.high == pytest.approx(0.9)
    text = "\n".join(compare.across_bases_sentences([r, same]))
    assert "Across 3 base MDLMs (seeds 0, 1, 2" in text
    assert "dsl-mdlm vs mdlm at T = 8: tie (geometric mean ratio 1.00, 95% interval 0.57-1.74; " \
           "bases better / tie / worse 1 / 1 / 1)" in text
    md = compare.across_bases_markdown([r])
    assert "0.80 / 1.00 / 1.25" in md and "**tie**" in md
    json.dumps([r.as_dict()])
    reading = compare.reading_markdown([_row(0.8, "better")], judge="j", bases=[r])
    assert "Across base seeds DSL is better at 0, tied at 1 and worse at 0 of 1 points." in reading
    with pytest.raises(DSLMError, match="at least 2 base seeds"):
        compare.across_bases({0: [_row(0.8, "better")]})


def test_a_point_left_by_an_earlier_sample_count_is_not_compared():
    """A sweep folder resumed with another ``num_samples`` keeps the old points in
    sweep.json; the verdicts (and every table) read only the current plan's points."""
    old = {"key": "DSL|dsl-mdlm|T=8|n=32", "model": "DSL", "sampler": "dsl-mdlm", "steps": 8,
           "num_samples": 32}
    new = {**old, "key": "DSL|dsl-mdlm|T=8|n=86", "num_samples": 86}
    doc = {"points": {old["key"]: old, new["key"]: new}, "plan": [new["key"]]}
    assert compare.find_point(doc, "DSL", "dsl-mdlm", 8)["num_samples"] == 86
    from dslm.evaluate.report import current_points

    assert current_points(doc) == [new]
    assert current_points({"points": {old["key"]: old}}) == [old]     # no plan: every point
    with pytest.raises(DSLMError, match="no point"):
        compare.find_point({"points": {old["key"]: old}, "plan": [new["key"]]}, "DSL", "dsl-mdlm", 8)
