"""``remdm-published``: ReMDM as its paper ran it on OpenWebText, one sampler for every T.

ReMDM's published MAUVE at T < L (L = 1024: T = 128, 256, 512) used ``remdm-cap`` with
eta = 0.04, and at T >= L ``remdm-loop`` (eta = 0.02, t_on = 0.55, t_off = 0.05,
alpha_on = 0.9); both with nucleus top-p 0.9 and MDLM's final argmax "noise removal"
call. This sampler picks the variant from the step budget T and the sequence length L
of the run, so a sweep row "ReMDM (as published)" is one line across T. Which variant
ran is recorded in the batch stats (``variant``).
"""

from __future__ import annotations

from dataclasses import dataclass

from dslm.config import choices
from dslm.errors import SamplingError
from dslm.sampling.common import Run
from dslm.sampling.masked import linear_plan, run_masked
from dslm.sampling.remdm import CapRemasking, LoopOptions, LoopRemasking, loop_plan


@dataclass
class PublishedOptions(LoopOptions):
    """``eta``, ``t_on``, ``t_off``, ``alpha_on``: the loop (T >= L); ``cap_eta``: the cap (T < L)."""

    cap_eta: float = 0.04
    final_step: str = choices("sample", "argmax", default="argmax")

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.cap_eta <= 1.0:
            raise SamplingError(f"option 'cap_eta' must be in [0, 1], got {self.cap_eta}")


def published_variant(steps: int, seq_len: int) -> str:
    """``cap`` below T = L, ``loop`` at T >= L (ReMDM's OpenWebText table)."""
    return "loop" if steps >= seq_len else "cap"


def sample_published(model, opts: PublishedOptions, run: Run):
    seq_len = run.shape[1]
    if published_variant(run.steps, seq_len) == "loop":
        plan = loop_plan(run.steps, opts.t_on, opts.t_off, opts.alpha_on)
        tokens, stats = run_masked(model, opts, run, plan, LoopRemasking(opts.eta))
        return tokens, {**stats, "variant": "loop"}
    tokens, stats = run_masked(model, opts, run, linear_plan(run.steps), CapRemasking(opts.cap_eta))
    return tokens, {**stats, "variant": "cap"}
