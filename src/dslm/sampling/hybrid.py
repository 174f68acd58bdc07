"""``hybrid``: a continuous localization phase, then discrete reveal/remask steps.

With T calls in total, T_c = round(continuous_fraction * T) (kept in [1, T - 1]) go to
the SDE of ``continuous`` (``drift`` sample or mean) on a grid from SNR 0 to
``snr_switch``; the last of them
reads p(x_i | y). Each free position whose most likely token has probability
``>= commit_threshold`` is committed to that token (y_i = snr_max e_x); the rest are
masked (y_i = 0). The remaining T_d = T - T_c calls are masked-diffusion steps on the
DSL denoiser from that state (alpha from the committed fraction to 1; reveal
probability 1 / (steps left)), with ReMDM-cap remasking at rate ``eta`` (0 = none).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dslm.config import choices
from dslm.errors import SamplingError
from dslm.sampling.common import Run, TokenOptions
from dslm.sampling.continuous import Localizer, snr_grid
from dslm.sampling.masked import masked_diffusion, rows_plan
from dslm.sampling.remdm import CapRemasking
from dslm.sampling.states import DSLState


@dataclass
class HybridOptions(TokenOptions):
    continuous_fraction: float = 0.25   # share T_c / T of the calls on the SDE
    snr_switch: float = 5.0             # SNR where the continuous phase ends
    grid: str = choices("log", "quadratic", "linear", default="log")
    snr_min: float = 0.01
    drift: str = choices("sample", "mean", default="sample")   # the SDE step (see continuous)
    commit_threshold: float = 0.9       # commit a token when p(most likely) >= this
    eta: float = 0.0                    # ReMDM-cap remasking rate of the discrete phase
    carry_over: bool = True
    cache: bool = True

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.continuous_fraction < 1.0:
            raise SamplingError("option 'continuous_fraction' must be in (0, 1), "
                                f"got {self.continuous_fraction}")
        if not self.snr_switch > 0 or not self.snr_min > 0:
            raise SamplingError("options 'snr_switch' and 'snr_min' must be > 0")
        if not 0.0 < self.commit_threshold <= 1.0:
            raise SamplingError(f"option 'commit_threshold' must be in (0, 1], got {self.commit_threshold}")
        if not 0.0 <= self.eta <= 1.0:
            raise SamplingError(f"option 'eta' must be in [0, 1], got {self.eta}")


def split_steps(steps: int, fraction: float) -> tuple[int, int]:
    """(T_c, T_d) with T_c + T_d = T and both >= 1."""
    if steps < 2:
        raise SamplingError(f"the hybrid sampler needs steps >= 2, got {steps}")
    t_c = min(max(1, round(fraction * steps)), steps - 1)
    return t_c, steps - t_c


def sample_hybrid(model, opts: HybridOptions, run: Run):
    t_c, t_d = split_steps(run.steps, opts.continuous_fraction)
    c = run.constraints
    logits = Localizer(model, run.net, run).run_path(
        snr_grid(t_c, opts.snr_switch, opts.grid, opts.snr_min), run.tick, opts.drift)
    run.tick()
    confidence, best = torch.softmax(logits, dim=-1).max(dim=-1)
    free = ~c.fixed
    commit = free & (confidence >= opts.commit_threshold)
    state = DSLState(model, run.net, run.generator)
    x = torch.where(commit, best, torch.full_like(best, state.mask_id))
    x = c.apply(x)
    n_free = free.sum(dim=1, keepdim=True).clamp_min(1)
    alpha0 = (commit.sum(dim=1, keepdim=True) / n_free).double()
    tokens, stats = masked_diffusion(state, x, run, rows_plan(t_d, alpha0),
                                     CapRemasking(opts.eta), opts, opts.cache, opts.carry_over)
    return tokens, run.stats(continuous_calls=t_c, committed=int(commit.sum()), **stats)
