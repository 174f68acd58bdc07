"""One token-state interface over the MDLM and DSL denoisers, for the discrete samplers.

A discrete state is ``x`` [B, L] with the [MASK] id ``V`` at unrevealed positions.
``scores(x, move_chance)`` returns log p(x_i = v | state) over the V real tokens, up
to a constant per position (``common.token_probs`` normalises only the rows drawn):

* MDLM: the SUBS log-probs of ``model(x, sigma)``; ``sigma = -log(1 - (1 - eps) t)``
  of the log-linear schedule at ``t = move_chance`` is fed only if the model uses time.
* DSL: the state is read as localized vectors: revealed -> the clean point
  ``y_i = snr_max e_{x_i}``; masked -> ``y_i = 0`` (SNR 0), or, after a remask with
  ``renoise_snr = s_r > 0``, a fresh draw ``y_i = s_r e_{x_old} + sqrt(s_r) eps`` that
  keeps soft evidence of the old token; then the logits f(y).

``cache_exact`` says the output depends on the state alone, so a step that changed
nothing may reuse the last output ("no change, no call").
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from dslm.diffusion.channel import clean_point
from dslm.diffusion.schedules import LogLinearSchedule
from dslm.sampling import rows
from dslm.sampling.common import Network


@runtime_checkable
class MaskedDenoiser(Protocol):
    """What the discrete samplers need of an MDLM: |V|, the [MASK] id V and
    ``model(x, sigma)`` -> logits over V + 1 ids."""

    vocab_size: int
    mask_id: int

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor: ...


@runtime_checkable
class LocalizingDenoiser(Protocol):
    """What the DSL samplers (discrete and continuous) need of a DSL model: |V|, the
    unit-sphere table E [V, d], ``snr_max`` and ``model(y)`` -> logits f(y)."""

    vocab_size: int
    snr_max: float
    embeddings: torch.Tensor

    def __call__(self, y: torch.Tensor) -> torch.Tensor: ...


class MDLMState:
    def __init__(self, model: MaskedDenoiser, net: Network):
        self.model = model
        self.net = net
        self.vocab_size = model.vocab_size
        self.mask_id = model.mask_id
        self.uses_time = bool(getattr(model, "uses_time", False))
        self.cache_exact = not self.uses_time
        self.schedule = LogLinearSchedule()

    def scores(self, x: torch.Tensor, move_chance: torch.Tensor | float) -> torch.Tensor:
        sigma = None
        if self.uses_time:
            t = torch.as_tensor(move_chance, dtype=torch.float32, device=x.device)
            sigma = self.schedule.sigma(t.reshape(-1).expand(x.shape[0]).clamp(0, 1))
        return self.net(x, sigma)[..., : self.vocab_size]

    def row_scores(self, x: torch.Tensor, move_chance: torch.Tensor | float):
        """``scores``, computed only on the rows indexed (``rows.RowScores``) where possible."""
        if not rows.enabled(self.model, self.net, x.numel()):
            return self.scores(x, move_chance)
        sigma = None
        if self.uses_time:
            t = torch.as_tensor(move_chance, dtype=torch.float32, device=x.device)
            sigma = self.schedule.sigma(t.reshape(-1).expand(x.shape[0]).clamp(0, 1))
        return rows.mdlm_scores(self.model, self.net, x, sigma)

    def remasked(self, x_old: torch.Tensor, remask: torch.Tensor) -> None:
        """MDLM keeps no soft evidence: a remasked token is plain [MASK]."""


class DSLState:
    def __init__(self, model: LocalizingDenoiser, net: Network, generator: torch.Generator, renoise_snr: float = 0.0):
        self.model = model
        self.net = net
        self.generator = generator
        self.vocab_size = model.vocab_size
        self.mask_id = model.vocab_size
        self.embeddings = model.embeddings.detach().float()
        self.snr_max = float(model.snr_max)
        self.renoise_snr = float(renoise_snr)
        self.cache_exact = True
        self.soft: torch.Tensor | None = None          # y of masked positions, [B, L, d]
        self.converter = rows.ConverterCache()          # row_scores' converter outputs by key

    def localized(self, x: torch.Tensor) -> torch.Tensor:
        """y [B, L, d] of a discrete state: clean points where revealed, soft/0 where masked."""
        masked = x == self.mask_id
        y = clean_point(x.masked_fill(masked, 0), self.embeddings, self.snr_max)
        rest = self.soft if self.soft is not None else torch.zeros((), device=y.device)
        return torch.where(masked.unsqueeze(-1), rest, y)

    def scores(self, x: torch.Tensor, move_chance=None) -> torch.Tensor:
        self.net.note(tokens=x, snr=lambda: self.snr(x))
        return self.net(self.localized(x))

    def row_scores(self, x: torch.Tensor, move_chance=None):
        """``scores``, computed only on the rows indexed (``rows.RowScores``) where possible;
        the converter runs once per distinct y row (key: the token, [MASK], or the position
        for a soft remask)."""
        if not rows.enabled(self.model, self.net, x.numel()):
            return self.scores(x, move_chance)
        masked = x == self.mask_id
        key = torch.where(masked, self.mask_id, x)
        if self.soft is not None:
            soft = masked & (self.soft.abs().sum(-1) > 0)
            unique = self.mask_id + 1 + torch.arange(x.numel(), device=x.device).view_as(x)
            key = torch.where(soft, unique, key)
        return rows.dsl_scores(self.model, self.net, self.localized(x), key, x, self.converter)

    def snr(self, x: torch.Tensor) -> torch.Tensor:
        """Per-position SNR [B, L] of the state (for traces): snr_max revealed, 0 masked,
        ``renoise_snr`` where a remasked token kept soft evidence."""
        masked = x == self.mask_id
        rest = torch.zeros(x.shape, device=x.device)
        if self.soft is not None:
            rest = torch.where(self.soft.abs().sum(-1) > 0, self.renoise_snr, 0.0)
        return torch.where(masked, rest, self.snr_max)

    def remasked(self, x_old: torch.Tensor, remask: torch.Tensor) -> None:
        """Re-noise remasked tokens to SNR ``s_r`` instead of 0 (when ``renoise_snr > 0``)."""
        if self.renoise_snr <= 0 or not bool(remask.any()):
            return
        if self.soft is None:
            self.soft = torch.zeros(*x_old.shape, self.embeddings.shape[1], device=x_old.device)
        e = self.embeddings[x_old[remask]]
        eps = torch.randn(e.shape, generator=self.generator, device=e.device)
        s = self.renoise_snr
        self.soft[remask] = s * e + s ** 0.5 * eps


def token_state(model, net: Network, generator: torch.Generator, renoise_snr: float = 0.0):
    """The token-state view of an MDLM or DSL ``model`` (told apart by what they offer)."""
    if isinstance(model, LocalizingDenoiser):
        return DSLState(model, net, generator, renoise_snr)
    return MDLMState(model, net)
