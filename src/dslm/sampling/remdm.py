"""ReMDM remasking strategies (Wang et al. 2025) on the masked-diffusion step of ``masked``.

With ``sigma_max = min(1, (1 - alpha_s) / alpha_t)`` (1 when alpha_t = 0):

* ``remdm-cap``:     sigma = min(eta, (1 - alpha_s) / alpha_t)      (eta when alpha_t = 0)
* ``remdm-rescale``: sigma = eta * sigma_max
* ``remdm-conf``:    sigma_i = sigma_max * softmax_j(-c_j)_i over revealed positions, c_i
  the probability token i had when it was drawn (low confidence -> remasked first);
  masked positions take sigma = 0 (plain MDLM reveal).
* ``remdm-loop``:    MDLM steps with alpha rising 0 -> alpha_on while t > t_on, a loop
  at constant alpha = alpha_on for t_off < t <= t_on (remask with prob eta, reveal with
  prob alpha_on eta / (1 - alpha_on)), then MDLM steps alpha_on -> 1 for t <= t_off.
  ``dsl-remdm-loop`` runs the same schedule on the DSL denoiser (masked -> y = 0,
  revealed -> snr_max e_x), optionally re-noising a remasked token to a finite SNR
  (``renoise_snr``), with carry-over of revealed tokens as a flag, and optionally a
  remasking rate set per T from an expected number of remasks per token
  (``remask_budget``, see ``loop_eta``).

Defaults are ReMDM's OpenWebText values (nucleus 0.9; cap eta 0.04, rescale 0.015,
loop eta 0.02, t_on 0.55, t_off 0.05, alpha_on 0.9).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dslm.errors import SamplingError
from dslm.sampling.common import Run
from dslm.sampling.masked import MDLMOptions, Step, linear_plan, run_masked


def sigma_max(step: Step) -> torch.Tensor:
    """The largest remasking rate that keeps ReMDM's posterior valid."""
    a_t = torch.as_tensor(step.alpha_t, dtype=torch.float64)
    a_s = torch.as_tensor(step.alpha_s, dtype=torch.float64)
    return torch.where(a_t > 0, ((1 - a_s) / a_t.clamp_min(1e-12)).clamp(max=1.0),
                       torch.ones_like(a_t))


class CapRemasking:
    def __init__(self, eta: float):
        self.eta = eta

    def sigma(self, step: Step, masked: torch.Tensor) -> torch.Tensor:
        a_t = torch.as_tensor(step.alpha_t, dtype=torch.float64)
        a_s = torch.as_tensor(step.alpha_s, dtype=torch.float64)
        cap = (1 - a_s) / a_t.clamp_min(1e-12)
        return torch.where(a_t > 0, cap.clamp(max=self.eta), torch.full_like(a_t, self.eta))

    def update(self, drawn, p_drawn, remask) -> None:
        pass


class RescaleRemasking(CapRemasking):
    def sigma(self, step: Step, masked: torch.Tensor) -> torch.Tensor:
        return self.eta * sigma_max(step)


class ConfidenceRemasking:
    """Keeps c_i (probability when drawn, -inf = nothing to remask) per position."""

    def __init__(self):
        self.score: torch.Tensor | None = None          # -c_i, -inf where not revealed

    def sigma(self, step: Step, masked: torch.Tensor) -> torch.Tensor:
        if self.score is None:
            self.score = torch.full(masked.shape, float("-inf"), dtype=torch.float64,
                                    device=masked.device)
        weights = torch.softmax(self.score, dim=-1).nan_to_num(0.0)   # all -inf -> 0
        return sigma_max(step).to(masked.device) * weights.masked_fill(masked, 0.0)

    def update(self, drawn, p_drawn, remask) -> None:
        if p_drawn is not None:
            self.score[drawn] = -p_drawn
        self.score.masked_fill_(remask, float("-inf"))


class LoopRemasking(CapRemasking):
    def sigma(self, step: Step, masked: torch.Tensor) -> float:
        return self.eta if step.loop else 0.0


def loop_plan(steps: int, t_on: float, t_off: float, alpha_on: float) -> list[Step]:
    """ReMDM-loop's schedule on the grid t_k = 1 - k / T (alpha piecewise linear in t)."""

    def alpha(t: float, phase: str) -> float:
        if phase == "draft":
            return min(alpha_on, alpha_on * (1 - t) / (1 - t_on))
        return 1 - (1 - alpha_on) * t / t_off

    plan, tol = [], 1e-9                   # t_k = 0.05 must not read as 0.0500...04
    for k in range(steps):
        t, s = (steps - k) / steps, (steps - k - 1) / steps
        if t > t_on + tol:
            plan.append(Step(alpha(t, "draft"), alpha(s, "draft")))
        elif t > t_off + tol:
            plan.append(Step(alpha_on, alpha_on, loop=True))
        else:
            plan.append(Step(alpha(t, "finish"), alpha(s, "finish")))
    return plan


# ---------------------------------------------------------------- options and samplers


@dataclass
class CapOptions(MDLMOptions):
    top_p: float = 0.9
    eta: float = 0.04

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.eta <= 1.0:
            raise SamplingError(f"option 'eta' must be in [0, 1], got {self.eta}")


@dataclass
class RescaleOptions(CapOptions):
    eta: float = 0.015


@dataclass
class ConfOptions(MDLMOptions):
    top_p: float = 0.9


@dataclass
class LoopOptions(CapOptions):
    eta: float = 0.02
    t_on: float = 0.55
    t_off: float = 0.05
    alpha_on: float = 0.9

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.t_off <= self.t_on < 1.0:
            raise SamplingError(f"options need 0 < t_off <= t_on < 1, got t_off={self.t_off}, "
                                f"t_on={self.t_on}")
        if not 0.0 < self.alpha_on < 1.0:
            raise SamplingError(f"option 'alpha_on' must be in (0, 1), got {self.alpha_on}")
        if self.alpha_on * self.eta > 1 - self.alpha_on:
            raise SamplingError(f"option 'eta' must be <= (1 - alpha_on) / alpha_on = "
                                f"{(1 - self.alpha_on) / self.alpha_on:.4g} for the loop phase")


@dataclass
class DSLLoopOptions(LoopOptions):
    carry_over: bool = True      # revealed tokens kept as SUBS does (False: redrawn each step)
    renoise_snr: float = 0.0     # remask to y = s_r e_x + sqrt(s_r) eps instead of y = 0
    remask_budget: float = 0.0   # > 0: eta = min(budget / loop steps, (1 - alpha_on) / alpha_on)

    def validate(self) -> None:
        super().validate()
        if self.renoise_snr < 0:
            raise SamplingError(f"option 'renoise_snr' must be >= 0, got {self.renoise_snr}")
        if self.remask_budget < 0:
            raise SamplingError(f"option 'remask_budget' must be >= 0, got {self.remask_budget}")


def loop_eta(opts, plan: list[Step]) -> float:
    """The loop's remasking rate: ``eta``, or, given ``remask_budget`` = B > 0, the rate
    at which a revealed token is remasked B times in expectation over the n loop steps,
    eta = B / n, capped at (1 - alpha_on) / alpha_on (the largest rate the loop's
    constant alpha allows). With a fixed eta the expected count eta * n shrinks with T
    (0.02 * 512 = 10 at T = 1024, 0.16 at T = 16)."""
    budget = getattr(opts, "remask_budget", 0.0)
    if budget <= 0:
        return opts.eta
    loops = sum(step.loop for step in plan)
    return min(budget / max(loops, 1), (1 - opts.alpha_on) / opts.alpha_on)


def sample_cap(model, opts: CapOptions, run: Run):
    return run_masked(model, opts, run, linear_plan(run.steps), CapRemasking(opts.eta))


def sample_rescale(model, opts: RescaleOptions, run: Run):
    return run_masked(model, opts, run, linear_plan(run.steps), RescaleRemasking(opts.eta))


def sample_conf(model, opts: ConfOptions, run: Run):
    return run_masked(model, opts, run, linear_plan(run.steps), ConfidenceRemasking())


def sample_loop(model, opts: LoopOptions, run: Run):
    """``remdm-loop`` (MDLM) and ``dsl-remdm-loop`` (DSL, with carry-over and re-noising)."""
    plan = loop_plan(run.steps, opts.t_on, opts.t_off, opts.alpha_on)
    return run_masked(model, opts, run, plan, LoopRemasking(loop_eta(opts, plan)),
                      renoise_snr=getattr(opts, "renoise_snr", 0.0),
                      carry_over=getattr(opts, "carry_over", True))
