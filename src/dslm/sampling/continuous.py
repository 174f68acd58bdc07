"""``dsl-continuous``: follow the stochastic-localization SDE up a per-token SNR path.

The localization process ``y(s) = s e_x + W_s`` solves ``dy = xhat(y) ds + dW`` with the
posterior mean ``xhat(y) = E[e_x | y] = softmax(f(y)) @ E``. From y = 0 (SNR 0, every
free token [MASK]) the Euler-Maruyama scheme on a grid 0 = s_0 < s_1 < ... < s_{T-1}:

    y <- y + xhat(y) (s_{k+1} - s_k) + sqrt(s_{k+1} - s_k) xi,      xi ~ N(0, I_d)

uses one network call per step (T - 1 calls); the T-th call decodes at the final SNR
s_{T-1} (``snr_final``, default the model's snr_max): argmax of f(y), or a draw from
softmax(f(y) / tau) with top-p. Given tokens sit at the clean point snr_max e_x
throughout. Grids (``s_1..s_{T-1}``): ``log`` (geometric from ``snr_min``, low-SNR
heavy), ``quadratic`` (s_final (k / (T-1))^2) or ``linear``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dslm.config import choices
from dslm.errors import SamplingError
from dslm.sampling.common import Network, Run, TokenOptions, draw_tokens, model_device


@dataclass
class ContinuousOptions(TokenOptions):
    grid: str = choices("log", "quadratic", "linear", default="log")
    snr_min: float = 0.01        # first nonzero SNR of the log grid
    snr_final: float = 0.0       # SNR of the decoding call; 0 = the model's snr_max
    decode: str = choices("argmax", "sample", default="argmax")

    def validate(self) -> None:
        super().validate()
        if not self.snr_min > 0:
            raise SamplingError(f"option 'snr_min' must be > 0, got {self.snr_min}")
        if self.snr_final < 0:
            raise SamplingError(f"option 'snr_final' must be >= 0, got {self.snr_final}")


def snr_grid(points: int, snr_final: float, grid: str, snr_min: float) -> torch.Tensor:
    """``points`` SNRs 0 = s_0 < ... < s_{points-1} = snr_final (float64)."""
    if points <= 1:
        return torch.zeros(1, dtype=torch.float64)
    u = torch.linspace(0, 1, points - 1, dtype=torch.float64) if points > 2 else torch.ones(1)
    if grid == "log":
        lo = min(snr_min, snr_final)
        rest = lo * (snr_final / lo) ** u
    elif grid == "quadratic":
        rest = snr_final * torch.linspace(0, 1, points, dtype=torch.float64)[1:] ** 2
    else:
        rest = snr_final * torch.linspace(0, 1, points, dtype=torch.float64)[1:]
    return torch.cat([torch.zeros(1, dtype=torch.float64), rest])


class Localizer:
    """The SDE state y [B, L, d] with the given tokens held at their clean points."""

    def __init__(self, model, net: Network, run: Run):
        self.net = net
        self.generator = run.generator
        self.embeddings = model.embeddings.detach().float()
        self.snr_max = float(model.snr_max)
        c = run.constraints
        self.fixed = c.fixed.unsqueeze(-1)
        clean = self.snr_max * self.embeddings[c.ids]
        self.y = torch.where(self.fixed, clean, torch.zeros_like(clean))

    def logits(self) -> torch.Tensor:
        return self.net(self.y).float()

    def euler(self, logits: torch.Tensor, ds: float) -> None:
        """y <- y + xhat ds + sqrt(ds) xi on the free positions."""
        xhat = torch.softmax(logits, dim=-1) @ self.embeddings
        step = torch.randn(self.y.shape, generator=self.generator, device=self.y.device)
        step.mul_(ds ** 0.5).add_(xhat, alpha=ds)
        self.y.add_(step.masked_fill_(self.fixed, 0.0))

    def run_path(self, snrs: torch.Tensor, tick) -> torch.Tensor:
        """Euler steps along ``snrs``; returns the logits of the call at the last SNR."""
        logits = self.logits()
        for k in range(len(snrs) - 1):
            self.euler(logits, float(snrs[k + 1] - snrs[k]))
            tick()
            logits = self.logits()
        return logits


def decode(logits: torch.Tensor, run: Run, opts: ContinuousOptions, how: str) -> torch.Tensor:
    c = run.constraints
    if how == "argmax":
        tokens = logits.argmax(dim=-1)
    else:
        tokens = torch.zeros(logits.shape[:-1], dtype=torch.long, device=logits.device)
        free = ~c.fixed
        tokens[free] = draw_tokens(logits[free], opts, run.generator)[0]
    return c.apply(tokens)


def sample_continuous(model, opts: ContinuousOptions, run: Run):
    run.net = Network(model, model_device(model))
    final = opts.snr_final or float(model.snr_max)
    snrs = snr_grid(run.steps, final, opts.grid, opts.snr_min)
    logits = Localizer(model, run.net, run).run_path(snrs, run.tick)
    run.tick()
    return decode(logits, run, opts, opts.decode), run.stats(snr_final=final)
