"""Training objectives: DSL cross-entropy, MDLM NELBO, AR next-token NLL.

Each loss is a function ``(model, x0 [B, L], generator, ...) -> LossOutput`` whose
``loss`` is a scalar token mean; ``terms`` is the number of tokens it averages over.

* DSL (docs/MATH.md §5): draw s ~ schedule, y = localize(x0, s), and
      L = sum_{i: s_i < inf} -log softmax(f_theta(y))_i[x_i] / #terms
  (``loss_on_revealed=True`` also scores revealed positions, the reference code's
  choice). ``mix_lambda > 0`` adds a ROAR-only term on a second draw:
      mix_formula = convex: L = (1 - lambda) L_CE + lambda L_ROAR   (default, the reference's)
      mix_formula = add:    L = L_CE + lambda L_ROAR
  ``ignore_id`` (e.g. EOS, the reference code's pad) drops positions holding that token
  from every term; ``schedule.revealed_noise`` feeds revealed tokens as a channel draw
  at s = snr_max instead of the noise-free point (they stay "revealed" for the loss mask).
* MDLM (§1.5): t ~ stratified U[eps, 1], each token masked with prob (1 - eps) t,
      L = E_t [ (1 / t) * sum_{i masked} -log p_theta(x_i | x_t) ] / L
  (token mean over all positions, SUBS makes unmasked terms zero). ``weighting="flat"``
  trains on the plain mean CE of the masked tokens instead, sum_{b,i masked} CE / #masked:
  every masked token counts once, so heavily masked sequences weigh more than in the
  NELBO and the rare, lightly masked ones (weight 1/t up to 1/eps) no longer dominate a
  small batch's gradient (docs/RECIPE.md).
* AR: mean of -log p(x_i | x_<i).

Every loss is ``sum_i w_i CE_i`` with per-token weights w; models that take
``targets`` / ``weights`` (all dslm models) compute it with the fused head
cross-entropy (``dslm.models.fused``: no [B, L, V] logits kept for backward); any other
callable returning logits goes through ``F.cross_entropy`` (the plain reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dslm.diffusion.channel import localize, revealed_mask
from dslm.diffusion.schedules import LogLinearSchedule, ScheduleConfig, roar, sample_snr


@dataclass
class LossOutput:
    loss: torch.Tensor        # scalar, the objective to minimise
    nll: torch.Tensor         # scalar, unweighted mean NLL over the scored tokens (a metric)
    terms: torch.Tensor       # number of scored tokens (float scalar)


def _ce(logits: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy [B, L] in float32."""
    return F.cross_entropy(logits.float().flatten(0, 1), x0.flatten(), reduction="none").view_as(x0)


def weighted_ce(model, inputs: tuple, x0: torch.Tensor,
                weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum_i w_i CE_i, CE [B, L])`` of the model on ``inputs`` with targets x0.

    dslm models fuse it into the head (``model(*inputs, targets=, weights=)``); a model
    whose ``fused_head`` is not True gets the plain ``F.cross_entropy`` on its logits.
    """
    if getattr(model, "fused_head", False):
        out = model(*inputs, targets=x0, weights=weights)
        return out.total, out.ce
    ce = _ce(model(*inputs), x0)
    return (ce * weights).sum(), ce.detach()


def dsl_loss(model, x0: torch.Tensor, schedule: ScheduleConfig,
             generator: torch.Generator | None = None, loss_on_revealed: bool = False,
             mix_lambda: float = 0.0, ignore_id: int | None = None,
             mix_formula: str = "convex") -> LossOutput:
    """DSL cross-entropy of the clean tokens given y = localize(x0, s), s ~ schedule."""
    snr = sample_snr(schedule, tuple(x0.shape), generator, x0.device)
    noisy = schedule.revealed_noise
    out = _dsl_term(model, x0, snr, generator, loss_on_revealed, noisy, ignore_id)
    if mix_lambda > 0:
        extra = _dsl_term(model, x0, roar(tuple(x0.shape), generator, x0.device), generator, False,
                          noisy, ignore_id)
        ce_weight = 1.0 - mix_lambda if mix_formula == "convex" else 1.0
        out = LossOutput(ce_weight * out.loss + mix_lambda * extra.loss, out.nll, out.terms)
    return out


def _dsl_term(model, x0, snr, generator, loss_on_revealed, revealed_noise=False,
              ignore_id=None) -> LossOutput:
    snr_in = snr
    if revealed_noise:          # revealed -> a channel draw at s = snr_max, not the clean point
        snr_in = torch.where(revealed_mask(snr), torch.full_like(snr, float(model.snr_max)), snr)
    y = localize(x0, snr_in, model.embeddings, generator, model.snr_max)
    weight = torch.ones_like(x0, dtype=torch.float32) if loss_on_revealed else (~revealed_mask(snr)).float()
    if ignore_id is not None:
        weight = weight * (x0 != ignore_id).float()
    terms = weight.sum()
    loss, _ = weighted_ce(model, (y,), x0, weight / terms.clamp_min(1.0))
    return LossOutput(loss, loss.detach(), terms.detach())


def mdlm_loss(model, x0: torch.Tensor, generator: torch.Generator | None = None,
              schedule: LogLinearSchedule | None = None,
              sampling_eps: float = 1e-3, weighting: str = "nelbo") -> LossOutput:
    """MDLM continuous-time NELBO with the log-linear schedule and SUBS (``weighting="flat"``:
    the masked-token mean CE)."""
    schedule = schedule or LogLinearSchedule()
    b = x0.shape[0]
    t = LogLinearSchedule.sample_t(b, generator, x0.device, sampling_eps)
    move = schedule.move_chance(t)[:, None]
    u = torch.rand(x0.shape, generator=generator, device=x0.device)
    masked = u < move
    xt = torch.where(masked, torch.full_like(x0, model.mask_id), x0)
    # SUBS: -log p(x0_i | x_t) is the cross-entropy over the V real tokens where masked, 0 elsewhere
    terms = masked.float().sum()
    if weighting == "flat":          # masked-token mean CE
        weight = masked.float() / terms.clamp_min(1.0)
    else:                            # NELBO: (1/t)-weighted, mean over all B L positions
        weight = masked.float() * schedule.loss_weight(t)[:, None] / masked.numel()
    loss, ce = _subs_ce(model, xt, schedule.sigma(t), x0, weight)
    nll = ce * masked.float()
    return LossOutput(loss, (nll.sum() / terms.clamp_min(1.0)).detach(), terms.detach())


def _subs_ce(model, xt, sigma, x0, weights) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum_i w_i nll_i, nll [B, L]) of MDLM's SUBS output; w must be 0 where x_t is unmasked."""
    if getattr(model, "fused_head", False):
        out = model(xt, sigma, targets=x0, weights=weights)
        return out.total, out.ce
    logp = model(xt, sigma)
    nll = -logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1).float()
    return (nll * weights).sum(), nll.detach()


def ar_loss(model, x0: torch.Tensor, generator: torch.Generator | None = None) -> LossOutput:
    """Next-token NLL, token mean."""
    loss, _ = weighted_ce(model, (x0,), x0, torch.full(x0.shape, 1.0 / x0.numel(), device=x0.device))
    return LossOutput(loss, loss.detach(), torch.tensor(float(x0.numel())))
