"""``dsl-continuous``: follow the stochastic-localization process up a per-token SNR path.

Given the clean sequence x, the localization process ``y(s) = s e_x + W_s`` has
independent Gaussian increments: ``y(s') - y(s) | x ~ N((s' - s) e_x, (s' - s) I)``.
Without x, ``y`` solves ``dy = xhat(y) ds + dW`` with the posterior mean
``xhat(y) = E[e_x | y] = softmax(f(y)) @ E``. From y = 0 (SNR 0, every free token
[MASK]) on a grid 0 = s_0 < s_1 < ... < s_{T-1} = ``snr_end``, each step costs one
network call (T - 1 calls) and moves y by ``ds = s_{k+1} - s_k``:

* ``drift="sample"`` (ancestral, the default): draw x~_i ~ p(x_i | y) per position and
  step  y <- y + e(x~) ds + sqrt(ds) xi.  For one position (or any source whose tokens
  are independent) this is the exact transition of y for ANY step size; otherwise the
  only approximation is the factorised posterior, as in MDLM's ancestral step.
* ``drift="mean"`` (Euler-Maruyama): y <- y + xhat(y) ds + sqrt(ds) xi. Exact only as
  ds -> 0. With few, large steps, xhat taken at low SNR is a blurred average of
  embeddings (pointing toward frequent tokens), and ds times that average pins y near
  it: the sampler collapses to a few frequent tokens (docs/SAMPLERS.md measures this).

The T-th call reads f(y) at ``snr_end`` (0 = the model's snr_max) and decodes: a draw
from softmax(f(y) / tau) with top-p (the default), argmax, or ``evidence`` (argmax_v <y, e_v>, which
does not trust the network to copy a visible token). Given tokens sit at the clean point
snr_max e_x throughout. Grids (``s_1..s_{T-1}``): ``log`` (geometric from ``snr_min``,
low-SNR heavy), ``quadratic`` (snr_end (k / (T-1))^2) or ``linear``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dslm.config import choices
from dslm.diffusion.channel import clean_point, posterior_mean
from dslm.errors import SamplingError
from dslm.sampling.common import Network, Run, TokenOptions, categorical, draw_tokens
from dslm.sampling.states import LocalizingDenoiser


@dataclass
class ContinuousOptions(TokenOptions):
    grid: str = choices("log", "quadratic", "linear", default="log")
    snr_min: float = 0.01        # first nonzero SNR of the log grid
    snr_end: float = 0.0         # last SNR of the grid (the decoding call); 0 = the model's snr_max
    drift: str = choices("sample", "mean", default="sample")   # ancestral step or Euler-Maruyama
    decode: str = choices("sample", "argmax", "evidence", default="sample")

    def validate(self) -> None:
        super().validate()
        if not self.snr_min > 0:
            raise SamplingError(f"option 'snr_min' must be > 0, got {self.snr_min}")
        if self.snr_end < 0:
            raise SamplingError(f"option 'snr_end' must be >= 0, got {self.snr_end}")


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

    def __init__(self, model: LocalizingDenoiser, net: Network, run: Run):
        self.net = net
        self.generator = run.generator
        self.embeddings = model.embeddings.detach().float()
        self.snr_max = float(model.snr_max)
        c = run.constraints
        self.fixed = c.fixed.unsqueeze(-1)
        clean = clean_point(c.ids, self.embeddings, self.snr_max)
        self.y = torch.where(self.fixed, clean, torch.zeros_like(clean))

    def logits(self) -> torch.Tensor:
        return self.net(self.y).float()

    def step(self, logits: torch.Tensor, ds: float, drift: str = "sample") -> None:
        """y <- y + m ds + sqrt(ds) xi on the free positions, m = e(x~), x~ ~ p(x | y)
        (``drift="sample"``) or m = xhat(y) = E[e_x | y] (``drift="mean"``)."""
        if drift == "mean":
            move = posterior_mean(logits, self.embeddings)
        else:
            probs = torch.softmax(logits.float(), dim=-1)
            ids = categorical(probs.reshape(-1, probs.shape[-1]), self.generator)
            move = self.embeddings[ids].reshape(self.y.shape)
        step = torch.randn(self.y.shape, generator=self.generator, device=self.y.device)
        step.mul_(ds ** 0.5).add_(move, alpha=ds)
        self.y.add_(step.masked_fill_(self.fixed, 0.0))

    def euler(self, logits: torch.Tensor, ds: float) -> None:
        """The Euler-Maruyama step (``drift="mean"``)."""
        self.step(logits, ds, "mean")

    def run_path(self, snrs: torch.Tensor, tick, drift: str = "sample") -> torch.Tensor:
        """Steps along ``snrs``; returns the logits of the call at the last SNR."""
        logits = self.logits()
        for k in range(len(snrs) - 1):
            self.step(logits, float(snrs[k + 1] - snrs[k]), drift)
            tick()
            logits = self.logits()
        return logits


def decode(logits: torch.Tensor, run: Run, opts: ContinuousOptions, how: str,
           y: torch.Tensor | None = None, embeddings: torch.Tensor | None = None) -> torch.Tensor:
    """Tokens from the last call: ``argmax`` of f(y), a ``sample`` of softmax(f(y) / tau)
    with top-p, or ``evidence``: argmax_v <y, e_v>, the channel's maximum-likelihood
    token (no network involved; the posterior's argmax as the SNR grows)."""
    c = run.constraints
    if how == "evidence":
        tokens = (y @ embeddings.t()).argmax(dim=-1)
    elif how == "argmax":
        tokens = logits.argmax(dim=-1)
    else:
        tokens = torch.zeros(logits.shape[:-1], dtype=torch.long, device=logits.device)
        free = ~c.fixed
        tokens[free] = draw_tokens(logits[free], opts, run.generator)[0]
    return c.apply(tokens)


def sample_continuous(model, opts: ContinuousOptions, run: Run):
    end = opts.snr_end or float(model.snr_max)
    snrs = snr_grid(run.steps, end, opts.grid, opts.snr_min)
    loc = Localizer(model, run.net, run)
    logits = loc.run_path(snrs, run.tick, opts.drift)
    run.tick()
    return decode(logits, run, opts, opts.decode, loc.y, loc.embeddings), run.stats(snr_end=end)
