"""Exponential moving average of the weights (what evaluation and ``checkpoint/`` use).

After every optimizer step t (1-based), for every floating-point tensor of the state
dict (parameters and buffers):

    theta_ema <- d_t * theta_ema + (1 - d_t) * theta,   d_t = min(decay, (1 + t) / (10 + t))

The warm-up of d_t (as in MDLM's EMA) keeps short runs from being dominated by the
initial weights. t is a host-side integer, so the update never synchronises with the
device; the lerp runs as one fused ``torch._foreach_lerp_`` call.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of ``model`` (``.module``) tracking the EMA of its weights."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        averaged = self.module.state_dict(keep_vars=True)
        self._keys = [k for k, v in averaged.items() if v.is_floating_point()]
        self._targets = [averaged[k] for k in self._keys]
        self._sources: tuple[int, list[torch.Tensor]] | None = None

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move the average toward ``model``'s current weights (step t, 1-based)."""
        if self._sources is None or self._sources[0] != id(model):   # tensors are updated in place
            current = model.state_dict(keep_vars=True)
            self._sources = (id(model), [current[k].detach() for k in self._keys])
        torch._foreach_lerp_(self._targets, self._sources[1], 1.0 - self.decay_at(step))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
