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
samplers that differ only in sigma consume the same random numbers. The final step
always reveals every remaining masked position. "No change, no call": when a step
changes nothing and the denoiser ignores time, the next step reuses its output
(not an NFE).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dslm.sampling.common import Network, Run, TokenOptions, draw_tokens, model_device, uniform
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


@dataclass
class MDLMOptions(TokenOptions):
    cache: bool = True        # "no change, no call" (exact when the model ignores time)


@dataclass
class DSLMDLMOptions(MDLMOptions):
    carry_over: bool = True   # revealed tokens kept as SUBS does (False: redrawn each step)


def masked_diffusion(state, x: torch.Tensor, run: Run, plan: list[Step], remasking,
                     opts: TokenOptions, cache: bool = True,
                     carry_over: bool = True) -> tuple[torch.Tensor, dict]:
    """Run ``plan`` from the discrete state ``x`` [B, L]; returns the final tokens and stats."""
    fixed, mask_id, gen = run.constraints.fixed, state.mask_id, run.generator
    scores, hits, remasked = None, 0, 0
    for k, step in enumerate(plan):
        alpha_t = torch.as_tensor(step.alpha_t, dtype=torch.float64, device=x.device)
        alpha_s = torch.as_tensor(step.alpha_s, dtype=torch.float64, device=x.device)
        if scores is None:
            scores = state.scores(x, 1 - alpha_t.float())
        else:
            hits += 1
        masked = (x == mask_id) & ~fixed
        revealed = ~masked & ~fixed
        if k == len(plan) - 1:          # the final step fills every remaining mask
            reveal, remask = masked, torch.zeros_like(masked)
        else:
            sigma = torch.as_tensor(remasking.sigma(step, masked), dtype=torch.float64,
                                    device=x.device)
            p_reveal = (alpha_s - (1 - sigma) * alpha_t) / (1 - alpha_t).clamp_min(1e-12)
            coin = uniform(tuple(x.shape), gen, x.device)
            reveal = masked & (coin < p_reveal)
            remask = revealed & (coin < sigma)
        drawn = reveal if carry_over else reveal | (revealed & ~remask)
        new, p_drawn = x.clone(), None
        if bool(drawn.any()):
            ids, p_drawn = draw_tokens(scores[drawn], opts, gen)
            new[drawn] = ids
        if bool(remask.any()):
            new[remask] = mask_id
            remasked += int(remask.sum())
            state.remasked(x, remask)
        remasking.update(drawn, p_drawn, remask)
        if not (cache and state.cache_exact) or not torch.equal(new, x):
            scores = None
        x = new
        run.tick()
    return x, {"cache_hits": hits, "remasked": remasked}


def run_masked(model, opts, run: Run, plan: list[Step], remasking, renoise_snr: float = 0.0,
               carry_over: bool = True) -> tuple[torch.Tensor, dict]:
    """Masked diffusion from the all-[MASK] state (given tokens revealed) on MDLM or DSL."""
    run.net = Network(model, model_device(model))
    state = token_state(model, run.net, run.generator, renoise_snr)
    c = run.constraints
    x = torch.where(c.fixed, c.ids, torch.full_like(c.ids, state.mask_id))
    tokens, stats = masked_diffusion(state, x, run, plan, remasking, opts, opts.cache, carry_over)
    return tokens, run.stats(**stats)


def sample_mdlm(model, opts: MDLMOptions, run: Run):
    """``mdlm`` / ``dsl-mdlm``: ancestral masked diffusion over T steps."""
    return run_masked(model, opts, run, linear_plan(run.steps), NoRemasking(),
                      carry_over=getattr(opts, "carry_over", True))
