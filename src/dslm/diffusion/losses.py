"""Training objectives: DSL cross-entropy, MDLM NELBO, AR next-token NLL.

Each loss is a function ``(model, x0 [B, L], generator, ...) -> LossOutput`` whose
``loss`` is a scalar token mean; ``terms`` is the number of tokens it averages over.

* DSL (DESIGN.md §1.4): draw s ~ schedule, y = localize(x0, s), and
      L = sum_{i: s_i < inf} -log softmax(f_theta(y))_i[x_i] / #terms
  (``loss_on_revealed=True`` also scores revealed positions, the reference code's
  choice). ``mix_lambda > 0`` adds a ROAR-only term on a second draw.
* MDLM (§1.5): t ~ stratified U[eps, 1], each token masked with prob (1 - eps) t,
      L = E_t [ (1 / t) * sum_{i masked} -log p_theta(x_i | x_t) ] / L
  (token mean over all positions, SUBS makes unmasked terms zero). ``weighting="flat"``
  trains on the plain mean CE of the masked tokens instead, sum_{b,i masked} CE / #masked:
  every masked token counts once, so heavily masked sequences weigh more than in the
  NELBO and the rare, lightly masked ones (weight 1/t up to 1/eps) no longer dominate a
  small batch's gradient (docs/RECIPE.md).
* AR: mean of -log p(x_i | x_<i).
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


def dsl_loss(model, x0: torch.Tensor, schedule: ScheduleConfig,
             generator: torch.Generator | None = None, loss_on_revealed: bool = False,
             mix_lambda: float = 0.0) -> LossOutput:
    """DSL cross-entropy of the clean tokens given y = localize(x0, s), s ~ schedule."""
    snr = sample_snr(schedule, tuple(x0.shape), generator, x0.device)
    out = _dsl_term(model, x0, snr, generator, loss_on_revealed)
    if mix_lambda > 0:
        extra = _dsl_term(model, x0, roar(tuple(x0.shape), generator, x0.device), generator, False)
        out = LossOutput(out.loss + mix_lambda * extra.loss, out.nll, out.terms)
    return out


def _dsl_term(model, x0, snr, generator, loss_on_revealed) -> LossOutput:
    y = localize(x0, snr, model.embeddings, generator, model.snr_max)
    ce = _ce(model(y), x0)
    weight = torch.ones_like(ce) if loss_on_revealed else (~revealed_mask(snr)).float()
    terms = weight.sum()
    loss = (ce * weight).sum() / terms.clamp_min(1.0)
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
    logp = model(xt, schedule.sigma(t))
    nll = -logp.gather(-1, x0.unsqueeze(-1)).squeeze(-1)          # 0 where unmasked (SUBS)
    nll = nll * masked.float()
    weighted = nll * schedule.loss_weight(t)[:, None]
    terms = masked.float().sum()
    loss = nll.sum() / terms.clamp_min(1.0) if weighting == "flat" else weighted.mean()
    return LossOutput(loss, (nll.sum() / terms.clamp_min(1.0)).detach(), terms.detach())


def ar_loss(model, x0: torch.Tensor, generator: torch.Generator | None = None) -> LossOutput:
    """Next-token NLL, token mean."""
    ce = _ce(model(x0), x0)
    loss = ce.mean()
    return LossOutput(loss, loss.detach(), torch.tensor(float(ce.numel())))
