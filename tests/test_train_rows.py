"""Row skipping in training (dslm.models.train_rows) equals the full-rows path."""

import pytest
import torch

from conftest import tiny_model_config
from dslm.diffusion.losses import ar_loss, dsl_loss, mdlm_loss
from dslm.diffusion.schedules import ScheduleConfig
from dslm.errors import ConfigError
from dslm.models import build_model, fused, train_rows


def _perturbed(kind, vocab=70):
    torch.manual_seed(0)
    model = build_model(tiny_model_config(kind, vocab_size=vocab))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def _loss_and_grads(monkeypatch, mode, model, loss_fn):
    monkeypatch.setenv(train_rows.ENV, mode)
    out = loss_fn(torch.Generator().manual_seed(5))
    params = [p for p in model.parameters() if p.requires_grad]
    return out, torch.autograd.grad(out.loss, params)


def _assert_same(monkeypatch, model, loss_fn):
    fast, g_fast = _loss_and_grads(monkeypatch, "1", model, loss_fn)
    full, g_full = _loss_and_grads(monkeypatch, "0", model, loss_fn)
    for a, b in ((fast.loss, full.loss), (fast.nll, full.nll), (fast.terms, full.terms)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(g_fast, g_full):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    return fast


DSL_CASES = {
    "mixed": (ScheduleConfig(), {}),
    "no s=0 rows": (ScheduleConfig(name="lognormal"), {}),
    "roar": (ScheduleConfig(name="roar"), {}),
    "loss_on_revealed": (ScheduleConfig(name="roar"), {"loss_on_revealed": True}),
    "ignore_id": (ScheduleConfig(), {"ignore_id": 3}),
    "mix_lambda": (ScheduleConfig(), {"mix_lambda": 0.3}),
    "mix_lambda add": (ScheduleConfig(name="lognormal"), {"mix_lambda": 0.5, "mix_formula": "add"}),
    "revealed_noise": (ScheduleConfig(revealed_noise=True), {}),
}


@pytest.mark.parametrize("case", list(DSL_CASES))
def test_dsl_loss_and_grads_equal_full_rows(monkeypatch, case):
    schedule, flags = DSL_CASES[case]
    model = _perturbed("dsl")
    x0 = torch.randint(0, 70, (6, 16), generator=torch.Generator().manual_seed(2))
    x0[:, ::5] = 3                                   # some ignore_id tokens
    _assert_same(monkeypatch, model, lambda g: dsl_loss(model, x0, schedule, g, **flags))


def test_dsl_every_position_masked(monkeypatch):
    """All rows y = 0 (a batch of fully masked ROAR rows): the converter runs one row."""
    model = _perturbed("dsl")
    x0 = torch.randint(0, 70, (3, 16), generator=torch.Generator().manual_seed(2))
    zero_snr = lambda shape, generator, device: torch.zeros(shape, device=device)  # noqa: E731
    monkeypatch.setattr("dslm.diffusion.losses.sample_snr", lambda cfg, shape, g, dev: zero_snr(shape, g, dev))
    _assert_same(monkeypatch, model, lambda g: dsl_loss(model, x0, ScheduleConfig(), g))


@pytest.mark.parametrize("weighting", ["nelbo", "flat"])
def test_mdlm_loss_and_grads_equal_full_rows(monkeypatch, weighting):
    model = _perturbed("mdlm")
    x0 = torch.randint(0, 70, (6, 16), generator=torch.Generator().manual_seed(2))
    _assert_same(monkeypatch, model, lambda g: mdlm_loss(model, x0, g, weighting=weighting))


def test_ar_loss_and_grads_equal_full_rows(monkeypatch):
    model = _perturbed("ar")
    x0 = torch.randint(0, 70, (3, 16), generator=torch.Generator().manual_seed(2))
    _assert_same(monkeypatch, model, lambda g: ar_loss(model, x0, g))


@pytest.mark.parametrize("zero_rows", [(), (0, 3, 4), tuple(range(7))])
def test_soft_embedding_with_zero_rows_gradcheck(monkeypatch, gen, zero_rows):
    """float64 gradcheck of the y = 0 shortcut, dL/dy of the zero rows included."""
    monkeypatch.setenv(train_rows.ENV, "1")
    monkeypatch.setattr(train_rows, "CPU_CHUNK_ELEMENTS", 128 * 2)
    monkeypatch.setattr(train_rows, "MIN_CHUNK_ROWS", 1)          # 2 rows per chunk
    y = torch.randn(7, 2, generator=gen, dtype=torch.float64)
    y[list(zero_rows)] = 0.0
    y.requires_grad_(True)
    keys = torch.randn(66, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(66, generator=gen, dtype=torch.float64, requires_grad=True)
    w_in = torch.randn(66, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    plain = lambda y, k, b, w: torch.softmax(y @ k.t() + b, -1) @ w  # noqa: E731
    args = (y, keys, bias, w_in)
    torch.testing.assert_close(fused.soft_embedding(*args), plain(*args))
    g = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(fused.soft_embedding(*args), args, g)
    want = torch.autograd.grad(plain(*args), args, g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    # gradcheck perturbs y, so only the rows' structure at the evaluation point is exercised
    assert torch.autograd.gradcheck(lambda k, b, w: fused.soft_embedding(y.detach(), k, b, w),
                                    (keys, bias, w_in), fast_mode=True)


@pytest.mark.parametrize("weights", ["some zero", "all zero", "none zero"])
def test_head_cross_entropy_skips_zero_weight_rows(monkeypatch, gen, weights):
    monkeypatch.setattr(train_rows, "CPU_CHUNK_ELEMENTS", 128 * 3)
    monkeypatch.setattr(train_rows, "MIN_CHUNK_ROWS", 1)
    h = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(70, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(70, generator=gen, dtype=torch.float64, requires_grad=True)
    t = torch.randint(0, 69, (2, 5), generator=gen)
    tw = torch.rand(2, 5, generator=gen, dtype=torch.float64)
    if weights == "some zero":
        tw[0, 1:4] = 0.0
        tw[1, 0] = 0.0
    elif weights == "all zero":
        tw.zero_()
    out = {}
    for mode in ("1", "0"):
        monkeypatch.setenv(train_rows.ENV, mode)
        total, ce = fused.linear_cross_entropy(h, w, b, t, tw, 69)
        out[mode] = (total, ce, torch.autograd.grad(total, (h, w, b)))
    torch.testing.assert_close(out["1"][0], out["0"][0])
    for a, b_ in zip(out["1"][2], out["0"][2]):
        torch.testing.assert_close(a, b_)
    scored = tw != 0
    torch.testing.assert_close(out["1"][1][scored], out["0"][1][scored])
    if weights == "some zero":
        assert bool((out["1"][1][~scored] == 0).all())


def test_switch(monkeypatch):
    cpu = torch.zeros(1)
    for mode, want in (("auto", True), ("", True), ("1", True), ("0", False)):
        monkeypatch.setenv(train_rows.ENV, mode)
        assert train_rows.enabled(cpu) is want
    monkeypatch.setenv(train_rows.ENV, "yes")
    with pytest.raises(ConfigError, match="DSLM_TRAIN_ROWS"):
        train_rows.enabled(cpu)
    assert train_rows.chunk_rows(4160, torch.device("cpu")) == 2 ** 20 // 4160
    assert train_rows.chunk_rows(50304, torch.device("cpu")) == train_rows.MIN_CHUNK_ROWS
    assert train_rows.chunk_rows(4160, torch.device("meta")) == fused.chunk_rows(4160)


def test_off_switch_is_the_full_path(monkeypatch):
    """DSLM_TRAIN_ROWS=0 runs the converter exactly as before (bit for bit)."""
    monkeypatch.setenv(train_rows.ENV, "0")
    model = _perturbed("dsl")
    y = torch.randn(2, 16, 8)
    y[0, :5] = 0
    y.requires_grad_(True)
    h = model.input_embedding(y)
    ref = fused._SoftEmbedding.apply(y.reshape(-1, 8), model.input_keys(), model.input_bias,
                                     model.backbone.vocab_embed.embedding, torch.float32)
    assert torch.equal(h.reshape(-1, h.shape[-1]), ref)
