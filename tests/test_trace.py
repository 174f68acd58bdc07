"""Traces: every sampler can be traced, tracing changes no sample, the size is bounded."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import random_model
from dslm.errors import DSLMError
from dslm.sampling import SAMPLERS, sample
from dslm.trace import TraceError, TraceRecorder, read_trace

VOCAB, LENGTH, STEPS = 12, 16, 8
ALL = [(name, kind) for name, spec in SAMPLERS.items() for kind in spec.kinds]


@pytest.fixture(scope="module")
def models():
    return {kind: random_model(kind, VOCAB) for kind in ("dsl", "mdlm", "ar")}


def draw(model, name, trace=None, num_samples=5, batch_size=None, **kw):
    return sample(model, name, num_samples, LENGTH, STEPS, torch.Generator().manual_seed(3),
                  batch_size=batch_size, trace=trace, **kw)


@pytest.mark.parametrize("name,kind", ALL)
def test_tracing_changes_no_sample_and_records_every_call(models, name, kind, tmp_path):
    model = models[kind]
    plain = draw(model, name, batch_size=3)
    rec = TraceRecorder(max_sequences=4)
    traced = draw(model, name, trace=rec, batch_size=3)
    assert torch.equal(plain.tokens, traced.tokens)
    assert plain.nfe == traced.nfe
    path = rec.write(tmp_path / "t.jsonl")
    head, records = read_trace(path)
    assert head["sampler"] == name and head["model_kind"] == kind and head["stride"] == 1
    calls = [r for r in records if r["type"] == "call"]
    finals = [r for r in records if r["type"] == "final"]
    # two batches (3 + 2 rows) hold the first 4 sequences: 3 + 1 rows traced
    assert [f["rows"] for f in finals] == [[0, 1, 2], [3]]
    assert finals[0]["tokens"] == traced.tokens[:3].tolist()
    assert finals[1]["tokens"] == traced.tokens[3:4].tolist()
    first_batch = [c for c in calls if c["batch"] == 0]
    assert [c["nfe"] for c in first_batch] == list(range(1, traced.stats[0]["nfe"] + 1))
    for c in calls:
        assert len(c["tokens"][0]) == LENGTH and len(c["prob"][0]) == LENGTH
        assert all(0.0 <= p <= 1.0 for row in c["prob"] for p in row)
        assert ("snr" in c) == (kind == "dsl")
    # the state grows toward the final tokens: the last call's committed tokens agree with them
    last = first_batch[-1]
    for row, final in zip(last["tokens"], finals[0]["tokens"]):
        for t, f in zip(row, final):
            assert t == -1 or t == f or name in ("dsl-mdlm",) or "remdm" in name or name == "hybrid"


def test_dsl_trace_state_matches_the_sampler(models):
    """MDLM-on-DSL: SNR is snr_max exactly where a token is committed, 0 where masked;
    the continuous SDE: every free position shares the path's rising SNR."""
    model = models["dsl"]
    rec = TraceRecorder()
    draw(model, "dsl-mdlm", trace=rec, num_samples=2)
    smax = float(model.snr_max)
    for c in (r for r in rec.records if r["type"] == "call"):
        for toks, snrs in zip(c["tokens"], c["snr"]):
            for t, s in zip(toks, snrs):
                assert s == pytest.approx(smax if t >= 0 else 0.0, rel=1e-3)
    rec = TraceRecorder()
    draw(model, "dsl-continuous", trace=rec, num_samples=2)
    calls = [r for r in rec.records if r["type"] == "call"]
    levels = [c["snr"][0][0] for c in calls]
    assert levels[0] == 0.0 and all(b > a for a, b in zip(levels, levels[1:]))
    assert all(t == -1 for c in calls for row in c["tokens"] for t in row)


def test_ar_trace_reveals_left_to_right(models):
    rec = TraceRecorder()
    draw(models["ar"], "ar", trace=rec, num_samples=1)
    calls = [r for r in rec.records if r["type"] == "call"]
    assert len(calls) == LENGTH
    for i, c in enumerate(calls):        # call i reads x_<=i (x_i not drawn yet)
        assert all(t >= 0 for t in c["tokens"][0][:i])
        assert all(t == -1 for t in c["tokens"][0][i:])


def test_trace_size_is_bounded_by_thinning(models):
    rec = TraceRecorder(max_sequences=2, max_cells=2 * LENGTH * 3)
    draw(models["mdlm"], "roar-ar", trace=rec, num_samples=2)      # 8 calls, 3 fit
    calls = [r for r in rec.records if r["type"] == "call"]
    assert len(calls) <= 3 and rec.stride == 4
    assert [c["nfe"] for c in calls] == [1, 5]
    assert any(r["type"] == "final" for r in rec.records)


def test_trace_limits_are_clear_errors(models, tmp_path):
    with pytest.raises(TraceError, match="positions"):
        draw(models["mdlm"], "mdlm", trace=TraceRecorder(max_positions=8))
    with pytest.raises(TraceError, match="64 sequences"):
        TraceRecorder(max_sequences=1000)
    rec = TraceRecorder()
    draw(models["mdlm"], "mdlm", trace=rec)
    with pytest.raises(TraceError, match="one sampler"):
        draw(models["mdlm"], "remdm-cap", trace=rec)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": 1}\n')
    with pytest.raises(DSLMError, match="not a dslm trace"):
        read_trace(bad)
    with pytest.raises(DSLMError, match="cannot read"):
        read_trace(tmp_path / "missing.jsonl")


def test_trace_pieces_from_a_tokenizer(models, tmp_path):
    class Tok:
        def decode(self, ids):
            return "".join(chr(97 + i) for i in ids)

    rec = TraceRecorder(max_sequences=1)
    draw(models["mdlm"], "mdlm", trace=rec, num_samples=1)
    head, _ = read_trace(rec.write(tmp_path / "t.jsonl", tokenizer=Tok()))
    assert head["pieces"] and all(v == chr(97 + int(k)) for k, v in head["pieces"].items())
    json.dumps(head)
