"""Per-token SNR schedules for DSL training and MDLM's log-linear masking schedule.

Each DSL schedule is a function ``(shape, generator, device) -> snr [B, L]`` with
``snr >= 0``; ``inf`` marks a revealed token, ``0`` a masked one:

* ``roar``: random order. k ~ U{0, ..., L-1} positions, chosen uniformly at random,
  are revealed (s = inf), the rest are at s = 0. The revealed fraction k / L is
  uniform; at least one position stays masked, so every sequence has a loss term.
  This is the masked-diffusion endpoint path.
* ``lognormal``: ``log s_i ~ N(mu, sigma^2)``, i.i.d. per token (or one s per
  sequence with ``per_token=False``): soft evidence everywhere.
* ``mixed``: per sequence, ``roar`` with probability ``p_roar`` else ``lognormal``
  (``roar_share=bernoulli``), or exactly ``floor(p_roar B)`` randomly chosen rows of
  each batch of B on ROAR (``roar_share=exact``, the reference code's quarter); with
  ``combine=True`` the ROAR sequences carry log-normal evidence on their
  non-revealed positions instead of zero.

``revealed_noise`` is read by the loss, not here: a revealed token (s = inf) is fed
as the noise-free point ``snr_max e_x`` (False, as the samplers commit tokens) or as a
channel draw at s = snr_max, ``snr_max e_x + sqrt(snr_max) eps`` (True, the reference
code's training input).

MDLM (§1.5) uses the log-linear schedule ``alpha_t = 1 - (1 - eps) t``: each token is
masked with probability ``1 - alpha_t``; the NELBO weight ``-alpha'_t / (1 - alpha_t)``
reduces to ``1 / t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dslm.config import choices
from dslm.errors import ConfigError


@dataclass
class ScheduleConfig:
    """Training corruption for DSL (defaults: the paper's OpenWebText values)."""

    name: str = choices("roar", "lognormal", "mixed", default="mixed")
    p_roar: float = 0.25          # share of sequences on the ROAR path in `mixed`
    mu: float = 2.69              # mean of log s
    sigma: float = 1.41           # std of log s
    per_token: bool = True        # i.i.d. log s per token (False: one s per sequence)
    combine: bool = False         # ROAR sequences: log-normal evidence on unrevealed tokens
    # mixed: which rows are ROAR: i.i.d. Bernoulli(p_roar) per sequence, or exactly
    # floor(p_roar * B) rows of every batch (the reference code: a quarter)
    roar_share: str = choices("bernoulli", "exact", default="bernoulli")
    revealed_noise: bool = False  # revealed tokens at s = snr_max WITH channel noise (reference)

    def validate(self) -> None:
        if not 0.0 <= self.p_roar <= 1.0:
            raise ConfigError(f"config key 'schedule.p_roar' must be in [0, 1], got {self.p_roar}")
        if self.sigma < 0:
            raise ConfigError(f"config key 'schedule.sigma' must be >= 0, got {self.sigma}")


def _uniform(shape, generator, device):
    return torch.rand(shape, generator=generator, device=device)


def roar(shape: tuple[int, int], generator: torch.Generator | None = None,
         device: torch.device | str = "cpu") -> torch.Tensor:
    """Reveal k ~ U{0..L-1} random positions per sequence (s = inf), the rest s = 0."""
    b, length = shape
    k = torch.randint(0, length, (b, 1), generator=generator, device=device)
    ranks = _uniform((b, length), generator, device).argsort(dim=-1).argsort(dim=-1)
    snr = torch.zeros(b, length, device=device)
    return snr.masked_fill(ranks < k, float("inf"))


def lognormal(shape: tuple[int, int], generator: torch.Generator | None = None,
              device: torch.device | str = "cpu", mu: float = 2.69, sigma: float = 1.41,
              per_token: bool = True) -> torch.Tensor:
    """``s = exp(mu + sigma z)``, z ~ N(0, 1) per token (or per sequence)."""
    b, length = shape
    zshape = (b, length) if per_token else (b, 1)
    z = torch.randn(zshape, generator=generator, device=device)
    return torch.exp(mu + sigma * z).expand(b, length).contiguous()


def mixed(shape: tuple[int, int], generator: torch.Generator | None = None,
          device: torch.device | str = "cpu", p_roar: float = 0.25, mu: float = 2.69,
          sigma: float = 1.41, per_token: bool = True, combine: bool = False,
          exact: bool = False) -> torch.Tensor:
    """Per sequence: ``roar`` with probability ``p_roar``, else ``lognormal``; with
    ``exact`` exactly ``floor(p_roar * B)`` random rows are ROAR."""
    b, _ = shape
    s_roar = roar(shape, generator, device)
    s_logn = lognormal(shape, generator, device, mu, sigma, per_token)
    coin = _uniform((b, 1), generator, device)
    if exact:
        ranks = coin.squeeze(1).argsort().argsort().unsqueeze(1)      # a random order of the rows
        use_roar = ranks < int(p_roar * b + 1e-9)
    else:
        use_roar = coin < p_roar
    if combine:
        s_roar = torch.where(torch.isinf(s_roar), s_roar, s_logn)
    return torch.where(use_roar, s_roar, s_logn)


def sample_snr(cfg: ScheduleConfig, shape: tuple[int, int],
               generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """Draw per-token SNRs [B, L] from the schedule named in ``cfg``."""
    if cfg.name == "roar":
        return roar(shape, generator, device)
    if cfg.name == "lognormal":
        return lognormal(shape, generator, device, cfg.mu, cfg.sigma, cfg.per_token)
    if cfg.name == "mixed":
        return mixed(shape, generator, device, cfg.p_roar, cfg.mu, cfg.sigma,
                     cfg.per_token, cfg.combine, exact=cfg.roar_share == "exact")
    raise ConfigError(f"unknown SNR schedule '{cfg.name}'; allowed: roar, lognormal, mixed")


class LogLinearSchedule:
    """MDLM's log-linear noise: ``alpha_t = 1 - (1 - eps) t``, ``sigma_t = -log alpha_t``.

    ``move_chance(t) = 1 - alpha_t`` is the probability that a token is masked at time t;
    ``loss_weight(t) = -alpha'_t / (1 - alpha_t) = 1 / t`` is the NELBO weight of the
    masked-token cross-entropy.
    """

    def __init__(self, eps: float = 1e-3):
        self.eps = eps

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        return 1 - (1 - self.eps) * t

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        return -torch.log1p(-(1 - self.eps) * t)

    def move_chance(self, t: torch.Tensor) -> torch.Tensor:
        return (1 - self.eps) * t

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        dsigma = (1 - self.eps) / (1 - (1 - self.eps) * t)
        return dsigma / torch.expm1(self.sigma(t))

    @staticmethod
    def sample_t(batch: int, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu", sampling_eps: float = 1e-3,
                 antithetic: bool = True) -> torch.Tensor:
        """Training times in [sampling_eps, 1]: stratified (low-discrepancy) when antithetic."""
        u = torch.rand(1 if antithetic else batch, generator=generator, device=device)
        if antithetic:
            u = (u + torch.arange(batch, device=device) / batch) % 1
        return (1 - sampling_eps) * u + sampling_eps
