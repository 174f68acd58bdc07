"""Sampler invariants on tiny random models, the registry and its errors."""

from __future__ import annotations

import math

import pytest
import torch

import conftest
from dslm.errors import ConfigError, DSLMError, SamplingError
from dslm.sampling import SAMPLERS, available_samplers, get_sampler, sample
from dslm.sampling.common import nucleus
from dslm.sampling.registry import sampler_options
from dslm.sampling.remdm import loop_plan

VOCAB, LENGTH, STEPS = 12, 16, 8
KIND_OF = {name: spec.kinds[0] for name, spec in SAMPLERS.items()}
ALL = [(name, kind) for name, spec in SAMPLERS.items() for kind in spec.kinds]


def random_model(kind, **overrides):
    return conftest.random_model(kind, VOCAB, **overrides)


@pytest.fixture(scope="module")
def models():
    return {kind: random_model(kind) for kind in ("dsl", "mdlm", "ar")}


class CallCounter:
    """Counts forward calls of a module and keeps their first input."""

    def __init__(self, model):
        self.inputs = []
        self.handle = model.register_forward_hook(self.hook)

    def hook(self, module, args, output):
        self.inputs.append(args[0].detach().clone())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def run(model, name, seed=0, steps=STEPS, num_samples=6, **kw):
    return sample(model, name, num_samples, LENGTH, steps, torch.Generator().manual_seed(seed), **kw)


# ---------------------------------------------------------------- invariants of every sampler


@pytest.mark.parametrize("name,kind", ALL)
def test_complete_conditioned_counted_and_reproducible(models, name, kind):
    model = models[kind]
    prompt = [3, 1, 4]
    fixed = torch.zeros(LENGTH, dtype=torch.bool)
    fixed[[8, 15]] = True
    given = torch.zeros(LENGTH, dtype=torch.long)
    given[8], given[15] = 5, 9
    with CallCounter(model) as calls:
        result = run(model, name, prefix=prompt, infill=(fixed, given))
    tokens = result.tokens
    assert tokens.shape == (6, LENGTH) and tokens.dtype == torch.long
    assert int(tokens.min()) >= 0 and int(tokens.max()) < VOCAB       # no [MASK] left
    assert (tokens[:, :3] == torch.tensor(prompt)).all()
    assert (tokens[:, 8] == 5).all() and (tokens[:, 15] == 9).all()
    assert result.nfe == len(calls.inputs)
    if name != "ar":   # + 1: the final argmax "noise removal" call (remdm-published's default)
        extra = getattr(sampler_options(name), "final_step", "sample") == "argmax"
        assert result.nfe <= STEPS + extra
    again = run(model, name, prefix=prompt, infill=(fixed, given))
    assert torch.equal(again.tokens, tokens)
    other = run(model, name, seed=1, prefix=prompt, infill=(fixed, given))
    assert not torch.equal(other.tokens, tokens)


@pytest.mark.parametrize("name", ["mdlm", "dsl-continuous", "ar", "hybrid"])
def test_batches_split_and_model_mode_restored(models, name):
    model = models[KIND_OF[name]]
    model.train()
    try:
        result = run(model, name, num_samples=5, batch_size=2)
        assert not torch.is_inference_mode_enabled()
        assert model.training
    finally:
        model.eval()
    assert result.tokens.shape == (5, LENGTH)
    assert [s["size"] for s in result.stats] == [2, 2, 1]
    assert result.nfe == max(s["nfe"] for s in result.stats)


# ---------------------------------------------------------------- equalities between samplers


@pytest.mark.parametrize("name,options", [
    ("remdm-cap", {"eta": 0.0}),
    ("remdm-rescale", {"eta": 0.0}),
    ("remdm-loop", {"eta": 0.0, "t_on": 0.5, "t_off": 0.5, "alpha_on": 0.5}),
])
def test_remdm_without_remasking_equals_mdlm(models, name, options):
    plain = run(models["mdlm"], "mdlm", steps=12, top_p=0.9)
    remdm = run(models["mdlm"], name, steps=12, top_p=0.9, **options)
    assert torch.equal(plain.tokens, remdm.tokens)
    assert remdm.stats[0]["remasked"] == 0


def test_loop_phase_with_eta_zero_changes_nothing_so_its_calls_are_cached(models):
    steps = 40
    n_loop = sum(s.loop for s in loop_plan(steps, 0.55, 0.05, 0.9))
    result = run(models["mdlm"], "remdm-loop", steps=steps, eta=0.0)
    assert n_loop == 20
    assert result.nfe <= steps - n_loop + 1
    assert result.stats[0]["cache_hits"] >= n_loop - 1


@pytest.mark.parametrize("name,options", [("remdm-cap", {"eta": 0.1}), ("remdm-rescale", {"eta": 0.5}),
                                          ("remdm-conf", {}), ("remdm-loop", {"eta": 0.1})])
def test_remasking_samplers_remask(models, name, options):
    assert run(models["mdlm"], name, steps=32, **options).stats[0]["remasked"] > 0


def test_dsl_state_reads_masked_as_zero_and_revealed_as_clean_points(models):
    from dslm.sampling.common import Network
    from dslm.sampling.states import DSLState

    model = models["dsl"]
    state = DSLState(model, Network(model, torch.device("cpu")), torch.Generator())
    x = torch.tensor([[3, VOCAB, 7, VOCAB]])
    y = state.localized(x)
    assert torch.equal(y[0, 1], torch.zeros(8)) and torch.equal(y[0, 3], torch.zeros(8))
    assert torch.allclose(y[0, 0], model.snr_max * model.embeddings[3])
    assert torch.allclose(y[0, 2], model.snr_max * model.embeddings[7])


# ---------------------------------------------------------------- the cache and roar-ar


def test_cache_skips_calls_on_unchanged_states(models):
    cached = run(models["mdlm"], "mdlm", steps=64, num_samples=1)
    assert cached.nfe <= LENGTH
    assert cached.stats[0]["cache_hits"] == 64 - cached.nfe
    uncached = run(models["mdlm"], "mdlm", steps=64, num_samples=1, cache=False)
    assert uncached.nfe == 64
    assert torch.equal(cached.tokens, uncached.tokens)


def test_no_cache_for_a_time_conditioned_model():
    model = random_model("mdlm", time_conditioning=True)
    with CallCounter(model) as calls:
        result = run(model, "mdlm", steps=40, num_samples=1)
    assert result.nfe == 40 == len(calls.inputs)


@pytest.mark.parametrize("kind", ["mdlm", "dsl"])
@pytest.mark.parametrize("order", ["random", "left-to-right", "confidence"])
def test_roar_ar_with_k1_reveals_one_token_per_call(models, kind, order):
    model = models[kind]
    with CallCounter(model) as calls:
        result = run(model, "roar-ar", steps=LENGTH, num_samples=3, order=order)
    if kind == "mdlm":
        revealed = [(x != VOCAB).sum(dim=1) for x in calls.inputs]
    else:
        revealed = [(y.norm(dim=-1) > 0).sum(dim=1) for y in calls.inputs]
    assert result.nfe == LENGTH and len(revealed) == LENGTH
    for k, count in enumerate(revealed):
        assert (count == k).all()


def test_roar_ar_left_to_right_order(models):
    with CallCounter(models["mdlm"]) as calls:
        run(models["mdlm"], "roar-ar", steps=LENGTH, num_samples=2, order="left-to-right")
    for k, x in enumerate(calls.inputs):
        assert (x[:, :k] != VOCAB).all() and (x[:, k:] == VOCAB).all()


def test_roar_ar_k_tokens_per_call(models):
    result = run(models["dsl"], "roar-ar", steps=5)
    assert result.stats[0]["tokens_per_call"] == math.ceil(LENGTH / 5)
    assert result.nfe == math.ceil(LENGTH / math.ceil(LENGTH / 5))
    with pytest.raises(SamplingError, match="tokens_per_call=2 needs steps >= 8"):
        run(models["dsl"], "roar-ar", steps=5, tokens_per_call=2)


# ---------------------------------------------------------------- DSL specifics


def test_dsl_remdm_loop_renoises_remasked_tokens(models):
    model = models["dsl"]
    with CallCounter(model) as calls:
        run(model, "dsl-remdm-loop", steps=32, eta=0.1, renoise_snr=4.0)
    norms = torch.cat([y.norm(dim=-1).flatten() for y in calls.inputs])
    soft = (norms > 0) & (norms < 0.5 * model.snr_max)
    assert bool(soft.any())        # a remasked token kept finite-SNR evidence
    with CallCounter(model) as calls:
        run(model, "dsl-remdm-loop", steps=32, eta=0.1)
    norms = torch.cat([y.norm(dim=-1).flatten() for y in calls.inputs])
    assert not bool(((norms > 0) & (norms < 0.5 * model.snr_max)).any())


def test_dsl_carry_over_off_redraws_revealed_tokens(models):
    kept = run(models["dsl"], "dsl-mdlm", steps=16, cache=False)
    redrawn = run(models["dsl"], "dsl-mdlm", steps=16, cache=False, carry_over=False)
    assert not torch.equal(kept.tokens, redrawn.tokens)


def test_dsl_continuous_starts_at_zero_and_ends_at_the_final_snr(models):
    model = models["dsl"]
    with CallCounter(model) as calls:
        result = run(model, "dsl-continuous", steps=6, snr_end=50.0)
    assert result.nfe == 6
    assert float(calls.inputs[0].abs().max()) == 0.0
    mean_norm = float(calls.inputs[-1].norm(dim=-1).mean())
    assert 30.0 < mean_norm < 70.0          # ||50 e + W_50|| ~ sqrt(50^2 + 50 d)


def test_hybrid_splits_its_calls(models):
    result = run(models["dsl"], "hybrid", steps=12, continuous_fraction=0.25)
    assert result.stats[0]["continuous_calls"] == 3
    assert result.nfe <= 12
    with pytest.raises(SamplingError, match="steps >= 2"):
        run(models["dsl"], "hybrid", steps=1)


# ---------------------------------------------------------------- token draws


def test_nucleus_keeps_the_top_mass_and_renormalises():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.97, 0.01, 0.01, 0.01]], dtype=torch.float64)
    out = nucleus(probs, 0.85, first_k=2)
    assert torch.allclose(out[0], torch.tensor([0.625, 0.375, 0.0, 0.0], dtype=torch.float64))
    assert torch.allclose(out[1], torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64))
    big = torch.softmax(torch.randn(3, 1000, dtype=torch.float64), -1)
    full = nucleus(big, 0.95, first_k=1000)
    assert torch.allclose(nucleus(big, 0.95, first_k=8), full)


def test_temperature_sharpens(models):
    cold = run(models["ar"], "ar", num_samples=8, temperature=0.05)
    warm = run(models["ar"], "ar", num_samples=8, temperature=5.0)
    assert len(set(cold.tokens.flatten().tolist())) < len(set(warm.tokens.flatten().tolist()))


# ---------------------------------------------------------------- errors


def test_registry_and_errors(models):
    assert set(available_samplers(models["ar"])) == {"ar"}
    assert "roar-ar" in available_samplers(models["mdlm"]) and "hybrid" in available_samplers(models["dsl"])
    with pytest.raises(SamplingError, match="unknown sampler 'nope'; available: mdlm"):
        get_sampler("nope")
    with pytest.raises(SamplingError, match="'remdm-loop' needs a 'mdlm' model, this is a 'dsl'"):
        run(models["dsl"], "remdm-loop")
    with pytest.raises(SamplingError, match="steps must be a positive integer"):
        run(models["mdlm"], "mdlm", steps=0)
    with pytest.raises(SamplingError, match="prompt has 20 tokens, longer than the sequence"):
        run(models["mdlm"], "mdlm", prefix=list(range(10)) * 2)
    with pytest.raises(SamplingError, match="outside the vocabulary"):
        run(models["mdlm"], "mdlm", prefix=[VOCAB])
    with pytest.raises(SamplingError, match="longer than the model's 16 positions"):
        sample(models["mdlm"], "mdlm", 1, 17, 4)
    with pytest.raises(ConfigError, match="unknown config key 'remdm-loop.etaa'.*eta"):
        run(models["mdlm"], "remdm-loop", etaa=0.1)
    with pytest.raises(DSLMError, match="top_p"):
        run(models["mdlm"], "mdlm", top_p=0.0)
    with pytest.raises(DSLMError, match="t_off <= t_on"):
        run(models["mdlm"], "remdm-loop", t_on=0.1, t_off=0.5)
    with pytest.raises(ConfigError, match="allowed: random, left-to-right, confidence"):
        run(models["mdlm"], "roar-ar", order="backwards")


def test_categorical_matches_its_probabilities_and_never_draws_a_zero():
    from dslm.sampling.common import categorical

    probs = torch.tensor([[0.0, 0.2, 0.0, 0.5, 0.3, 0.0]], dtype=torch.float64).expand(60000, -1)
    ids = categorical(probs, torch.Generator().manual_seed(0))
    freq = torch.bincount(ids, minlength=6).double() / len(ids)
    assert freq[[0, 2, 5]].sum() == 0
    assert torch.allclose(freq, probs[0], atol=0.01)


def test_continuous_evidence_decode_is_the_nearest_embedding(models):
    from dslm.sampling.continuous import decode

    model = models["dsl"]
    E = model.embeddings.detach().float()
    ids = torch.randint(0, E.shape[0], (2, 5), generator=torch.Generator().manual_seed(0))
    y = 100.0 * E[ids]

    class _C:
        fixed = torch.zeros(2, 5, dtype=torch.bool)

        @staticmethod
        def apply(t):
            return t

    class _R:
        constraints = _C()

    out = decode(torch.zeros(2, 5, E.shape[0]), _R(), None, "evidence", y, E)
    assert torch.equal(out, ids)
    for drift in ("sample", "mean"):
        assert run(model, "hybrid", steps=8, drift=drift).tokens.shape == (6, LENGTH)


def test_remask_budget_sets_the_loop_rate_per_T(models):
    from dslm.sampling.registry import sampler_options
    from dslm.sampling.remdm import loop_eta, loop_plan

    opts = sampler_options("dsl-remdm-loop", {"remask_budget": 2.0})
    assert loop_eta(opts, loop_plan(1024, 0.55, 0.05, 0.9)) == pytest.approx(2.0 / 512)
    assert loop_eta(opts, loop_plan(16, 0.55, 0.05, 0.9)) == pytest.approx(0.1 / 0.9)   # capped
    assert loop_eta(sampler_options("dsl-remdm-loop", {}), loop_plan(16, 0.55, 0.05, 0.9)) == 0.02
    more = run(models["dsl"], "dsl-remdm-loop", steps=32, remask_budget=2.0)
    less = run(models["dsl"], "dsl-remdm-loop", steps=32)
    assert more.stats[0]["remasked"] > less.stats[0]["remasked"]
    with pytest.raises(SamplingError):
        run(models["dsl"], "dsl-remdm-loop", remask_budget=-1.0)
