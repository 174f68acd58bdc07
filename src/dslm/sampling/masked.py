"""Masked-diffusion ancestral sampling, with ReMDM's remasking as one extra rate.

A plan is a list of steps ``alpha_t -> alpha_s`` (alpha = expected revealed fraction;
MDLM's grid is ``alpha_k = k / T``, i.e. t = 1 - alpha from 1 to 0). For a per-token
remasking rate ``sigma`` (0 = MDLM), ReMDM's posterior q(z_s | z_t, x) per position is

    masked  : reveal with prob (alpha_s - (1 - sigma) alpha_t) / (1 - alpha_t),
              the token drawn from p(x_i | z_t);
    revealed: remask with prob sigma, else keep the token (carry-over, SUBS) or,
              when carry-over is off (DSL only), redraw it from p(x_i | z_t).

One float64 uniform per position decides reveal or remask (the two never apply to
the same position), then the revealed rows are drawn (``common.draw_tokens``), so
samplers that differ only in sigma consume the same random numbers.

The final-step rule (option ``final_step``): ``sample`` (default) makes the last step
reveal every remaining masked position by a draw; ``argmax`` is MDLM's and ReMDM's
"noise removal": the grid stops at t = eps (alpha = 1 - ``FINAL_EPS``, so a masked token
may survive the last step), then one extra network call (an NFE, unless the cache makes
it free) fills every remaining [MASK] with argmax_v p(x_i = v | state).

"No change, no call": when a step
changes nothing and the denoiser ignores time, the next step reuses its output
(not an NFE).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dslm.config import choices
from dslm.sampling.common import Run, TokenOptions, draw_tokens, uniform
from dslm.sampling.states import token_state


@dataclass
class Step:
    """One ancestral step ``alpha_t -> alpha_s`` (floats or per-row tensors [B, 1])."""

    alpha_t: float | torch.Tensor
    alpha_s: float | torch.Tensor
    loop: bool = False        # ReMDM-loop's constant-alpha phase


def linear_plan(steps: int) -> list[Step]:
    """MDLM's grid: ``alpha_k = k / T`` (t = 1 - k / T), k = 0..T."""
    return [Step(k / steps, (k + 1) / steps) for k in range(steps)]


def rows_plan(steps: int, alpha0: torch.Tensor) -> list[Step]:
    """A linear grid from a per-row start ``alpha0`` [B, 1] to 1 (hybrid's discrete phase)."""
    alphas = [alpha0 + (1 - alpha0) * (k / steps) for k in range(steps + 1)]
    return [Step(alphas[k], alphas[k + 1]) for k in range(steps)]


class NoRemasking:
    """MDLM: sigma = 0 everywhere."""

    def sigma(self, step: Step, masked: torch.Tensor) -> torch.Tensor | float:
        return 0.0

    def update(self, drawn: torch.Tensor, p_drawn: torch.Tensor | None,
               remask: torch.Tensor) -> None:
        """Called after every step with the drawn positions, their probability, the remasked."""


#: MDLM's sampling grid ends at t = eps = 1e-5 (``final_step=argmax``), not at t = 0.
FINAL_EPS = 1e-5


@dataclass
class MDLMOptions(TokenOptions):
    cache: bool = True        # "no change, no call" (exact when the model ignores time)
    # last step: sample every remaining mask, or stop at t = eps and fill by one argmax call
    final_step: str = choices("sample", "argmax", default="sample")


@dataclass
class DSLMDLMOptions(MDLMOptions):
    carry_over: bool = True   # revealed tokens kept as SUBS does (False: redrawn each step)


def masked_diffusion(state, x: torch.Tensor, run: Run, plan: list[Step], remasking,
                     opts: TokenOptions, cache: bool = True,
                     carry_over: bool = True, final_step: str = "sample") -> tuple[torch.Tensor, dict]:
    """Run ``plan`` from the discrete state ``x`` [B, L]; returns the final tokens and stats."""
    fixed, mask_id, gen = run.constraints.fixed, state.mask_id, run.generator
    scores, hits, remasked = None, 0, torch.zeros((), dtype=torch.long, device=x.device)
    free = ~fixed
    no_remask = torch.zeros_like(fixed)
    for k, step in enumerate(plan):
        # float steps stay 0-dim CPU float64 tensors (scalars to the kernels: no copy to
        # the device per step); per-row steps (hybrid) are device tensors already
        alpha_t = _f64(step.alpha_t, x.device)
        alpha_s = _f64(step.alpha_s, x.device)
        if final_step == "argmax" and k == len(plan) - 1:      # MDLM's grid ends at t = eps
            alpha_s = alpha_s.clamp(max=1 - FINAL_EPS)
        if scores is None:
            scores = getattr(state, "row_scores", state.scores)(x, 1 - alpha_t.float())
        else:
            hits += 1
        masked = (x == mask_id) & free
        remask = None                   # None: no remasking this step (sigma = 0)
        if k == len(plan) - 1 and final_step == "sample":   # the final step fills every mask
            reveal = masked
        else:
            rate = remasking.sigma(step, masked)
            sigma = _f64(rate, x.device)
            p_reveal = (alpha_s - (1 - sigma) * alpha_t) / (1 - alpha_t).clamp_min(1e-12)
            coin = uniform(tuple(x.shape), gen, x.device)
            reveal = masked & (coin < p_reveal)
            if not (isinstance(rate, float) and rate == 0.0):
                remask = free & ~masked & (coin < sigma)
        revealed = None if carry_over else free & ~masked
        drawn = reveal if carry_over else reveal | (revealed & ~remask if remask is not None else revealed)
        # one host sync per step (the drawn row count); remasking is a sync-free where
        # (same tokens as boolean-mask assignment)
        where = drawn.nonzero(as_tuple=True)
        new, p_drawn = x.clone(), None
        if where[0].numel():
            ids, p_drawn = draw_tokens(scores[where], opts, gen)
            new[where] = ids
        if remask is not None:
            new = torch.where(remask, mask_id, new)
            remasked += remask.sum()
            state.remasked(x, remask)
        remasking.update(drawn, p_drawn, remask if remask is not None else no_remask)
        if run.observer is not None:
            run.observer(k, x, new, drawn, remask if remask is not None else torch.zeros_like(drawn))
        if not (cache and state.cache_exact):
            scores = None
        elif carry_over and where[0].numel():
            scores = None               # a [MASK] became a real token (ids < V = mask id)
        elif remask is not None or (not carry_over and where[0].numel()):
            if not torch.equal(new, x):
                scores = None
        x = new
        run.tick()
    remasked = int(remasked)
    if final_step == "argmax":
        x, hits = noise_removal(state, x, fixed, scores, hits)
    return x, {"cache_hits": hits, "remasked": remasked}


def _f64(value, device: torch.device) -> torch.Tensor:
    """``value`` as float64: a device tensor stays where it is, a Python float becomes a
    0-dim CPU tensor (which kernels on any device take as a scalar)."""
    if torch.is_tensor(value) and value.dim() > 0:
        return value.to(device=device, dtype=torch.float64)
    return torch.as_tensor(value, dtype=torch.float64)


def noise_removal(state, x: torch.Tensor, fixed: torch.Tensor, scores: torch.Tensor | None,
                  hits: int) -> tuple[torch.Tensor, int]:
    """MDLM/ReMDM's last call: every remaining [MASK] -> argmax_v p(x_i = v | state) at t = eps
    (one network call, free when ``scores`` of this very state are cached)."""
    if scores is None:
        scores = getattr(state, "row_scores", state.scores)(x, torch.tensor(FINAL_EPS, device=x.device))
    else:
        hits += 1
    masked = (x == state.mask_id) & ~fixed
    x = x.clone()
    x[masked] = scores[masked].argmax(dim=-1)
    return x, hits


def run_masked(model, opts, run: Run, plan: list[Step], remasking, renoise_snr: float = 0.0,
               carry_over: bool = True) -> tuple[torch.Tensor, dict]:
    """Masked diffusion from the all-[MASK] state (given tokens revealed) on MDLM or DSL."""
    state = token_state(model, run.net, run.generator, renoise_snr)
    c = run.constraints
    x = torch.where(c.fixed, c.ids, torch.full_like(c.ids, state.mask_id))
    tokens, stats = masked_diffusion(state, x, run, plan, remasking, opts, opts.cache, carry_over,
                                     getattr(opts, "final_step", "sample"))
    return tokens, run.stats(**stats)


def sample_mdlm(model, opts: MDLMOptions, run: Run):
    """``mdlm`` / ``dsl-mdlm``: ancestral masked diffusion over T steps."""
    return run_masked(model, opts, run, linear_plan(run.steps), NoRemasking(),
                      carry_over=getattr(opts, "carry_over", True))
