"""Each reference-recipe switch changes exactly what it claims (docs/PROTOCOL.md)."""

from __future__ import annotations

import math

import pytest
import torch

from conftest import tiny_model_config
from dslm.config import update
from dslm.diffusion.channel import unit_sphere_embeddings
from dslm.diffusion.losses import dsl_loss
from dslm.diffusion.schedules import ScheduleConfig, sample_snr
from dslm.errors import ConfigError
from dslm.models import build_model
from dslm.models.convert import dsl_from_mdlm
from dslm.train.config import TrainConfig
from dslm.train.objectives import objective_for

V, L, D = 12, 16, 8


class FixedLogits:
    """A stand-in denoiser: records every y it is fed, returns logits that ignore y."""

    def __init__(self, batch, snr_max=100.0, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.embeddings = unit_sphere_embeddings(V, D, g)
        self.snr_max = snr_max
        self.logits = torch.randn(batch, L, V, generator=g)
        self.inputs = []

    def __call__(self, y):
        self.inputs.append(y.clone())
        return self.logits


def _x0(batch, seed=1):
    return torch.randint(0, V, (batch, L), generator=torch.Generator().manual_seed(seed))


def test_revealed_noise_gives_revealed_y_the_channel_variance():
    b, snr_max = 64, 100.0
    x0 = _x0(b)
    roar = ScheduleConfig(name="roar")
    model = FixedLogits(b, snr_max)
    dsl_loss(model, x0, roar, torch.Generator().manual_seed(0))
    snr = sample_snr(roar, (b, L), torch.Generator().manual_seed(0))
    revealed = torch.isinf(snr)
    clean = snr_max * model.embeddings[x0]
    resid = (model.inputs[0] - clean)[revealed]
    assert revealed.sum() > 100 and torch.equal(resid, torch.zeros_like(resid))  # noise-free point

    noisy = ScheduleConfig(name="roar", revealed_noise=True)
    dsl_loss(model, x0, noisy, torch.Generator().manual_seed(0))
    resid = (model.inputs[1] - clean)[revealed]           # same draw of revealed positions
    var = resid.var().item()                              # y = s e + sqrt(s) eps at s = snr_max
    assert abs(var - snr_max) < 0.1 * snr_max, var
    assert abs(resid.mean().item()) < 0.5
    masked_y = model.inputs[1][snr == 0]
    assert torch.equal(masked_y, torch.zeros_like(masked_y))  # masked stay at y = 0


def _ce(logits, x0):
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), x0.flatten(),
                                             reduction="none").view_as(x0)


def test_excluded_eos_positions_do_not_enter_the_loss():
    b, eos = 8, 3
    x0 = _x0(b)
    x0[:, ::3] = eos
    model = FixedLogits(b)
    cfg = ScheduleConfig(name="lognormal")
    out = dsl_loss(model, x0, cfg, torch.Generator().manual_seed(0), loss_on_revealed=True,
                   ignore_id=eos)
    ce = _ce(model.logits, x0)
    keep = x0 != eos
    assert out.terms.item() == keep.sum().item()
    assert out.loss.item() == pytest.approx((ce[keep]).mean().item(), rel=1e-6)
    full = dsl_loss(model, x0, cfg, torch.Generator().manual_seed(0), loss_on_revealed=True)
    assert full.loss.item() == pytest.approx(ce.mean().item(), rel=1e-6)
    # the training objective reads the switch and the tokenizer's EOS id
    tcfg = TrainConfig(loss_on_revealed=True, loss_exclude_eos=True)
    obj = objective_for("dsl", cfg, tcfg, eos_id=eos)
    assert obj(model, x0, torch.Generator().manual_seed(0)).loss.item() == pytest.approx(out.loss.item())


def test_reference_mixing_formula_is_convex():
    b, lam = 8, 0.3
    x0 = _x0(b)
    model = FixedLogits(b)
    cfg = ScheduleConfig(name="lognormal")

    def loss(**kw):
        return dsl_loss(model, x0, cfg, torch.Generator().manual_seed(5), **kw).loss.item()

    ce = loss()                                           # the main term alone (same draws)
    added = loss(mix_lambda=lam, mix_formula="add")       # CE + lambda ROAR
    roar = (added - ce) / lam
    assert roar > 0
    convex = loss(mix_lambda=lam, mix_formula="convex")
    assert convex == pytest.approx((1 - lam) * ce + lam * roar, rel=1e-5)
    with pytest.raises(ConfigError, match="mix_lambda"):
        update(TrainConfig(), {"mix_formula": "convex", "mix_lambda": 1.5})


def _roar_rows(snr):
    """Rows whose every SNR is 0 or inf (ROAR rows; log-normal rows are finite and > 0)."""
    return ((snr == 0) | torch.isinf(snr)).all(dim=1)


def test_exact_roar_share_puts_exactly_a_quarter_of_each_batch_on_roar():
    exact = ScheduleConfig(name="mixed", roar_share="exact", per_token=False)
    bern = ScheduleConfig(name="mixed", per_token=False)
    g = torch.Generator().manual_seed(0)
    counts_exact = {int(_roar_rows(sample_snr(exact, (16, L), g)).sum()) for _ in range(50)}
    assert counts_exact == {4}
    counts_bern = {int(_roar_rows(sample_snr(bern, (16, L), g)).sum()) for _ in range(50)}
    assert len(counts_bern) > 2                           # Bernoulli per sequence varies
    rows = [_roar_rows(sample_snr(exact, (16, L), g)) for _ in range(200)]
    share = torch.stack(rows).float().mean(0)             # every row is ROAR a quarter of the time
    assert share.min() > 0.1 and share.max() < 0.4
    assert int(_roar_rows(sample_snr(exact, (10, L), g)).sum()) == 2   # floor(0.25 * 10)


def test_beta_init_rules():
    v, d = 5000, 64                   # with |V| this large, 1/sqrt(d) loses to b_mask = log(99 V)
    cfg = tiny_model_config("dsl", vocab_size=v, embed_dim=d)
    calibrated = build_model(cfg)
    ref = build_model(update(cfg, {"beta_init": "inv_sqrt_d"}))
    assert ref.input_beta.item() == pytest.approx(1 / math.sqrt(d))
    assert ref.config.input_beta == pytest.approx(0.125)  # resolved value saved with the model

    def slot_weights(model):
        tokens = torch.arange(0, v, 97)
        y = model.snr_max * model.embeddings[tokens].unsqueeze(0)
        p = torch.softmax(model.input_scores(y), dim=-1)[0]
        return p[torch.arange(len(tokens)), tokens], p[:, v]

    own, mask = slot_weights(calibrated)
    assert own.min() >= 0.99 - 1e-6
    own, mask = slot_weights(ref)      # a committed token reads mostly the [MASK] slot
    assert own.max() < 0.5 and mask.min() > 0.5
    with pytest.raises(ConfigError, match="beta_init"):
        update(cfg, {"beta_init": "sqrt"})


def test_trainable_directions_stay_unit_norm_and_receive_gradients():
    mdlm = build_model(tiny_model_config("mdlm", vocab_size=V))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():            # a trained-looking MDLM (adaLN-zero init passes no gradient)
        for p in mdlm.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    dsl = dsl_from_mdlm(mdlm, embed_dim=D, freeze_embed=False, beta_init="inv_sqrt_d")
    assert dsl.input_beta.item() == pytest.approx(1 / math.sqrt(D))
    params = dict(dsl.named_parameters())
    assert "embed_directions" in params
    opt = torch.optim.SGD([params["embed_directions"]], lr=5.0)
    before = dsl.embeddings.detach().clone()
    for step in range(3):
        opt.zero_grad()
        out = dsl_loss(dsl, _x0(4, seed=step), ScheduleConfig(), torch.Generator().manual_seed(step))
        out.loss.backward()
        grad = params["embed_directions"].grad
        assert grad is not None and grad.abs().sum() > 0
        opt.step()
        norms = dsl.embeddings.norm(dim=-1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert not torch.allclose(dsl.embeddings, before)     # the directions moved
    frozen = dsl_from_mdlm(mdlm, embed_dim=D)
    assert "embed_directions" not in dict(frozen.named_parameters())
