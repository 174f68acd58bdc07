"""dslm.analyze: ECE on synthetic predictors, calibration of tiny models on shared draws,
self-correction counts on a scripted loop and on a fake denoiser, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import tiny_model_config
from dslm.analyze import calibration as cal
from dslm.analyze import selfcorrection as sc
from dslm.cli import main
from dslm.errors import DSLMError
from dslm.sampling import sample
from test_api import make_checkpoint


# ---------------------------------------------------------------- ECE


@pytest.mark.parametrize("binning", ["width", "mass"])
def test_ece_of_a_calibrated_predictor_is_near_zero_and_of_an_overconfident_one_large(binning):
    rng = np.random.default_rng(0)
    n = 200_000
    conf = rng.uniform(0.0, 1.0, n)
    calibrated = rng.uniform(size=n) < conf                 # P(correct | c) = c
    assert cal.expected_calibration_error(conf, calibrated, 15, binning) < 0.01
    over = rng.uniform(size=n) < conf ** 4                  # right far less often than claimed
    assert cal.expected_calibration_error(conf, over, 15, binning) > 0.25


def test_ece_by_hand():
    conf = [0.05, 0.15, 0.95, 0.95]
    hit = [0, 0, 1, 0]
    # bins of width 0.5: {0.05, 0.15} acc 0 conf 0.1; {0.95, 0.95} acc 0.5 conf 0.95
    assert cal.expected_calibration_error(conf, hit, 2) == pytest.approx(0.5 * 0.1 + 0.5 * 0.45)
    table = cal.reliability_bins(conf, hit, 2, "mass")
    assert [b["n"] for b in table] == [2, 2] and table[1]["confidence"] == pytest.approx(0.95)
    assert cal.reliability_bins([1.0], [1], 15)[-1]["n"] == 1        # c = 1 in the last bin
    with pytest.raises(DSLMError, match="binning"):
        cal.expected_calibration_error(conf, hit, 2, "quantile")


def test_levels_parse_and_refuse_bad_values():
    assert [lv.name for lv in cal.parse_levels("mask:0.5, snr:4")] == ["mask:0.5", "snr:4"]
    for bad in ("mask:0", "mask:1.5", "snr:-1", "noise:3", "mask:x"):
        with pytest.raises(DSLMError, match="bad corruption level"):
            cal.parse_levels(bad)


# ---------------------------------------------------------------- calibration of models


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("an")
    return {kind: make_checkpoint(root / kind, kind, seed=3) for kind in ("dsl", "mdlm", "ar")}


def _models(ckpts, *kinds):
    from dslm.models.checkpoint import open_checkpoint

    return {k: open_checkpoint(ckpts[k]).model for k in kinds}


def test_calibration_compares_models_on_the_same_draws(ckpts):
    models = _models(ckpts, "dsl", "mdlm")
    models["dsl again"] = models["dsl"]
    blocks = torch.randint(0, 13, (6, 16), generator=torch.Generator().manual_seed(0))
    result = cal.calibration(models, blocks, seed=1)
    names = [row["name"] for row in result.levels]
    assert names == [f"mask:{r:g}" for r in cal.MASK_FRACTIONS] + [f"snr:{m:g}" for m in cal.SNR_MEDIANS]
    for row in result.levels:
        got = row["models"]
        assert set(got) == ({"dsl", "mdlm", "dsl again"} if row["kind"] == "mask"
                            else {"dsl", "dsl again"})
        assert got["dsl"] == got["dsl again"]                   # same blocks, masks and noise
        assert len({r["n"] for r in got.values()}) == 1
        for r in got.values():
            assert 0 <= r["ece"] <= 1 and sum(b["n"] for b in r["bins"]) == r["n"]
    assert cal.calibration(models, blocks, seed=1).to_dict() == result.to_dict()
    assert cal.calibration(models, blocks, seed=2).to_dict() != result.to_dict()
    with pytest.raises(DSLMError, match="MDLM or DSL"):
        cal.calibration(_models(ckpts, "ar"), blocks)


def test_cli_calibration_writes_json_png_and_table(ckpts, tmp_path, capsys):
    text = tmp_path / "held.txt"
    text.write_text("\n".join("abc defg hij." * 3 for _ in range(20)))
    out = tmp_path / "cal"
    assert main(["analyze", "calibration", "--ckpt", f"D={ckpts['dsl']}", "--ckpt",
                 f"M={ckpts['mdlm']}", "--data", str(text), "--blocks", "8",
                 "--levels", "mask:0.5,snr:4", "--out", str(out)]) == 0
    doc = json.loads((out / "calibration.json").read_text())
    assert doc["bins"] == 15 and doc["binning"] == "width"
    assert [row["name"] for row in doc["levels"]] == ["mask:0.5", "snr:4"]
    assert (out / "calibration.png").read_bytes()[:4] == b"\x89PNG"
    assert "| mask:0.5 |" in (out / "calibration.md").read_text()
    assert "D ECE" in capsys.readouterr().out
    assert main(["analyze", "calibration", "--ckpt", str(ckpts["dsl"]), "--data", str(text),
                 "--levels", "mask:2", "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("dslm: error: bad corruption level 'mask:2'")
    assert main(["analyze", "calibration", "--ckpt", str(ckpts["dsl"]), "--out", str(out)]) == 2
    assert "records no data config" in capsys.readouterr().err          # --data validation


# ---------------------------------------------------------------- self-correction


M = 9   # the [MASK] id of the scripted runs (|V| = 9)


def _t(rows):
    return torch.tensor([rows])


def test_counts_of_a_scripted_loop_match_the_hand_count():
    rec = sc.EventRecorder(M)
    f, t = False, True
    # step 0: draft reveals positions 0, 1
    rec(0, _t([M, M, M, M]), _t([1, 2, M, M]), _t([t, t, f, f]), _t([f, f, f, f]))
    # step 1: position 0 remasked (old 1), position 2 drawn
    rec(1, _t([1, 2, M, M]), _t([M, 2, 3, M]), _t([f, f, t, f]), _t([t, f, f, f]))
    # step 2: position 0 re-decoded to 1 (no change); 1 remasked (old 2); 3 drawn
    rec(2, _t([M, 2, 3, M]), _t([1, M, 3, 4]), _t([t, f, f, t]), _t([f, t, f, f]))
    # step 3: position 1 re-decoded 2 -> 5 (a change); 2 remasked (old 3)
    rec(3, _t([1, M, 3, 4]), _t([1, 5, M, 4]), _t([f, t, f, f]), _t([f, f, t, f]))
    final = _t([1, 5, 6, 4])                       # the final fill: position 2 3 -> 6 (a change)
    rec.finish(final)
    assert [(e.pos, e.remasked_at, e.redecoded_at, e.old, e.new) for e in rec.events] == [
        (0, 1, 2, 1, 1), (1, 2, 3, 2, 5), (2, 3, -1, 3, 6)]
    # judge: log-likelihood = number of even digits of the text
    judge = lambda texts: [sum(int(ch) % 2 == 0 for ch in s) for s in texts]  # noqa: E731
    decode = lambda ids: "".join(map(str, ids))                               # noqa: E731
    deltas = sc.judge_deltas(rec.events, final, decode, judge)
    # pos 1: "1564" (2 evens) vs "1264" (3) -> -1; pos 2: "1564" (2) vs "1534" (1) -> +1
    assert deltas == [-1, 1]
    ranks = _t([1, 20, 3, 11])                     # wrong = rank > 10: positions 1 and 3
    c = sc.count(rec, final, torch.zeros(1, 4, dtype=torch.bool), deltas, ranks, 10)
    s = c.summary()
    assert (c.remasks, c.redecoded, c.changed, c.toward, c.away, c.ties) == (3, 3, 2, 1, 1, 0)
    assert c.judged == 2
    sub = sc.judge_deltas(rec.events, final, decode, judge, max_judged=1, seed=0)
    assert len(sub) == 1 and sub[0] in (-1, 1)
    assert (c.generated, c.wrong, c.redecoded_positions, c.wrong_redecoded) == (4, 2, 3, 1)
    assert s["changed_fraction"] == pytest.approx(2 / 3) and s["toward_fraction"] == 0.5
    assert s["wrong_fraction_never_remasked"] == 1.0            # position 3, never remasked
    fixed = torch.tensor([[True, False, False, False]])            # a given position is not counted
    assert sc.count(rec, final, fixed, deltas, ranks, 10).generated == 3


class ScriptedMDLM(torch.nn.Module):
    """An MDLM-shaped denoiser whose c-th call predicts token SCRIPT[c] everywhere (p = 1)."""

    kind = "mdlm"
    uses_time = False

    def __init__(self, script, vocab_size=5, seq_len=12):
        super().__init__()
        self.script, self.calls = list(script), 0
        self.vocab_size, self.mask_id = vocab_size, vocab_size
        self.config = tiny_model_config("mdlm", vocab_size=vocab_size, seq_len=seq_len)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, sigma=None):
        out = torch.full((*x.shape, self.vocab_size + 1), -1e4)
        out[..., self.script[self.calls]] = 0.0
        self.calls += 1
        return out


def test_counts_on_a_fake_denoiser_match_the_hand_count():
    """T = 4, t_on = .75, t_off = .25, alpha_on = .5, eta = 1: one draft step reveals a random
    set R (token 0), loop step 1 remasks R and reveals the rest with token 1, loop step 2
    swaps back (R re-decoded to 0: no change), the final step reveals the rest with token 3
    (re-decoded 1 -> 3: a change). By hand: every position is remasked once and re-decoded
    once; the changed ones are exactly those that end as 3, and each change is toward a
    judge that counts 3s."""
    length, n = 12, 3
    model = ScriptedMDLM([0, 1, 0, 3], seq_len=length)
    rec = sc.EventRecorder(model.mask_id)
    opts = dict(t_on=0.75, t_off=0.25, alpha_on=0.5, eta=1.0, cache=False)
    out = sample(model, "remdm-loop", n, length, 4, torch.Generator().manual_seed(4),
                 observer=rec, **opts)
    rec.finish(out.tokens)
    final = out.tokens
    assert set(final.unique().tolist()) <= {0, 3}
    threes = int((final == 3).sum())
    assert rec.remasks == n * length and len(rec.events) == n * length
    assert sum(e.changed for e in rec.events) == threes
    assert all((e.old, e.new) in {(0, 0), (1, 3)} for e in rec.events)
    deltas = sc.judge_deltas(rec.events, final, lambda ids: "".join(map(str, ids)),
                             lambda texts: [s.count("3") for s in texts])
    assert deltas == [1] * threes
    assert 0 < threes < n * length                 # the seed gives both kinds


@pytest.mark.parametrize("kind,sampler", [("mdlm", "remdm-loop"), ("dsl", "dsl-remdm-loop")])
def test_observing_changes_no_sample(ckpts, kind, sampler):
    model = _models(ckpts, kind)[kind]
    plain = sample(model, sampler, 4, 16, 12, torch.Generator().manual_seed(9), eta=0.1)
    rec = sc.EventRecorder(model.vocab_size)
    seen = sample(model, sampler, 4, 16, 12, torch.Generator().manual_seed(9), eta=0.1,
                  observer=rec)
    assert torch.equal(plain.tokens, seen.tokens)
    assert rec.remasks == seen.stats[0]["remasked"] > 0


def test_reference_ranks_by_hand(ckpts):
    from dslm.models.checkpoint import open_checkpoint

    ar = open_checkpoint(ckpts["ar"]).model
    x = torch.randint(0, 13, (2, 7), generator=torch.Generator().manual_seed(1))
    ranks = sc.reference_ranks(ar, x)
    with torch.no_grad():
        logp = torch.log_softmax(ar(x).float(), -1)
    for b in range(2):
        for i in range(7):
            order = torch.argsort(logp[b, i], descending=True).tolist()
            assert ranks[b, i] == order.index(int(x[b, i])) + 1
    mdlm = open_checkpoint(ckpts["mdlm"]).model
    masked = sc.reference_ranks(mdlm, x)
    from dslm.scoring import masked_log_probs

    xt = x[:1].clone()
    xt[0, 3] = mdlm.vocab_size
    with torch.no_grad():
        lp = masked_log_probs(mdlm, xt, torch.tensor([1 / 7]))[0, 3]
    assert masked[0, 3] == int((lp > lp[x[0, 3]]).sum()) + 1


def test_cli_self_correction_writes_counts(ckpts, tmp_path, capsys):
    out = tmp_path / "sc"
    assert main(["analyze", "self-correction", "--ckpt", f"D={ckpts['dsl']}", "--ckpt",
                 f"M={ckpts['mdlm']}", "--judge", str(ckpts["ar"]), "--steps", "6,12",
                 "--num-samples", "3", "--option", "eta=0.1", "--out", str(out)]) == 0
    rows = json.loads((out / "self_correction.json").read_text())["rows"]
    assert [(r["model"], r["steps"]) for r in rows] == [("D", 6), ("D", 12), ("M", 6), ("M", 12)]
    for r in rows:
        assert r["remasks"] >= r["redecoded"] >= r["changed"] >= r["toward"] + r["away"]
        assert r["reference"] and r["judge"] and r["samples"] == 3
        assert r["judged"] == r["changed"]
    assert "| D | dsl-remdm-loop | 6 |" in (out / "self_correction.md").read_text()
    assert main(["analyze", "self-correction", "--ckpt", str(ckpts["ar"]), "--out", str(out)]) == 2
    assert "MDLM or DSL" in capsys.readouterr().err


def test_demo_analyses_writes_both_reports(ckpts, tmp_path):
    from dslm.analyze import demo_analyses

    blocks = torch.randint(0, 13, (5, 16), generator=torch.Generator().manual_seed(2))
    got = demo_analyses(ckpts["dsl"], ckpts["mdlm"], blocks, str(ckpts["ar"]), tmp_path / "a",
                        steps=(6,), num_samples=2, num_blocks=4, max_judged=3)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["calibration.json", "calibration.md", "calibration.png",
                     "self_correction.json", "self_correction.md"]
    assert {r["model"] for r in got["self_correction"]} == {"DSL", "MDLM control"}
    assert all(r["judged"] <= 3 and r["reference"] for r in got["self_correction"])
    assert got["calibration"]["levels"][0]["models"]["DSL"]["n"] > 0 and got["cpu_seconds"] > 0


def test_cli_refuses_an_output_inside_a_checkpoint(ckpts, capsys):
    code = main(["analyze", "calibration", "--ckpt", str(ckpts["dsl"]), "--data", "x.txt",
                 "--out", str(ckpts["dsl"] / "inside")])
    assert code == 2 and capsys.readouterr().err.startswith("dslm: error: ")
