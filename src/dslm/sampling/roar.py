"""``roar-ar``: random-order autoregressive decoding on a DSL or MDLM denoiser.

Each network call reads the current state (revealed tokens as clean points
``snr_max e_x`` for DSL, ids for MDLM; the rest at SNR 0 / [MASK]) and commits
k = ceil(n_free / T) still-masked positions, each drawn from p(x_i | state). With
k = 1 and a random order this is the chain rule in a random order, so an exact
denoiser gives exact samples. Orders: ``random`` (a uniform permutation per
sequence), ``left-to-right``, or ``confidence`` (the k positions whose most likely
token has the highest probability).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dslm.config import choices
from dslm.errors import SamplingError
from dslm.sampling.common import Run, TokenOptions, draw_tokens, tokens_per_call, uniform
from dslm.sampling.states import token_state


@dataclass
class RoarOptions(TokenOptions):
    order: str = choices("random", "left-to-right", "confidence", default="random")
    tokens_per_call: int = 0     # k; 0 = ceil(free positions / steps)

    def validate(self) -> None:
        super().validate()
        if self.tokens_per_call < 0:
            raise SamplingError(f"option 'tokens_per_call' must be >= 0, got {self.tokens_per_call}")


def _priority(opts: RoarOptions, masked: torch.Tensor, scores: torch.Tensor,
              rank: torch.Tensor) -> torch.Tensor:
    """Higher = revealed sooner; -inf at positions that are not free to reveal."""
    if opts.order == "confidence":    # log p of the most likely token
        score = (scores.max(dim=-1).values - scores.float().logsumexp(dim=-1)).double()
    else:
        score = -rank
    return score.masked_fill(~masked, float("-inf"))


def sample_roar(model, opts: RoarOptions, run: Run):
    state = token_state(model, run.net, run.generator)
    c, gen = run.constraints, run.generator
    x = torch.where(c.fixed, c.ids, torch.full_like(c.ids, state.mask_id))
    n, length = x.shape
    free = int((~c.fixed).sum(dim=1).max()) if n else 0
    k = opts.tokens_per_call or tokens_per_call(free, run.steps)
    if k * run.steps < free:
        raise SamplingError(f"tokens_per_call={k} needs steps >= {tokens_per_call(free, k)} "
                            f"to reveal {free} positions, got steps={run.steps}")
    if opts.order == "left-to-right":
        rank = torch.arange(length, device=x.device, dtype=torch.float64).expand(n, -1)
    else:
        rank = uniform((n, length), gen, x.device)     # a uniform random order per row
    calls = 0
    while True:
        masked = (x == state.mask_id) & ~c.fixed
        if not bool(masked.any()):
            break
        move_chance = masked.sum(dim=1) / length
        scores = state.scores(x, move_chance)
        score = _priority(opts, masked, scores, rank)
        top = score.topk(min(k, length), dim=-1)
        pick = torch.zeros_like(masked).scatter_(1, top.indices, top.values > float("-inf"))
        ids, _ = draw_tokens(scores[pick], opts, gen)
        x[pick] = ids
        calls += 1
        run.tick()
    return x, run.stats(tokens_per_call=k, calls=calls)
