"""Pieces every sampler shares: token draws, conditioning, and the counted network call.

* Token draws are categorical draws in float64 (inverse CDF at a float64 uniform: one
  random number per token instead of |V| Gumbel variables, same distribution), after
  a temperature ``tau`` (``softmax(log p / tau)``) and a nucleus cut (top-p).
* Nucleus (ReMDM's rule): sort p descending, keep the tokens whose cumulative mass,
  themselves included, is ``<= top_p`` (the most likely token always stays), and
  renormalise: one stable sort per row, no host sync. Rows are drawn in bounded
  chunks (``DRAW_CHUNK_ELEMENTS``), so no [K, V] float64 temporary grows with K.
* Conditioning: ``Constraints`` = a boolean map ``fixed`` [N, L] of positions given
  from the start (a prompt prefix and/or infilled positions) and their ``ids``; no
  sampler ever changes them.
* ``Network`` wraps the model: every real call counts as one function evaluation
  (NFE) and its wall time is measured, so overhead = wall time outside the network.
  On a GPU the call runs under bf16 autocast with TF32 matmuls and, by default,
  through ``torch.compile`` (``dslm.perf.compile_enabled``: ``DSLM_COMPILE=0`` turns
  it off); scores come back as float32 and token draws stay float64. On the CPU the
  network runs eagerly in float32 (unchanged).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from dslm.errors import SamplingError


@dataclass
class SampleResult:
    """``tokens`` [N, L] (long, CPU); ``nfe`` = the most network calls any batch made;
    ``stats`` = one dict per batch (nfe, cache hits, network and wall seconds, ...)."""

    tokens: torch.Tensor
    nfe: int
    stats: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TokenOptions:
    """How a token is drawn from p(x_i | state): temperature and nucleus mass."""

    temperature: float = 1.0
    top_p: float = 1.0

    def validate(self) -> None:
        if not self.temperature > 0:
            raise SamplingError(f"option 'temperature' must be > 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise SamplingError(f"option 'top_p' must be in (0, 1], got {self.top_p}")


# ---------------------------------------------------------------- token draws


#: Rows of a [K, V] float64 temporary drawn at once: K is split so that each chunk holds
#: at most this many elements (64 Mi elements = 512 MiB of float64), whatever K is.
DRAW_CHUNK_ELEMENTS = 2 ** 26


def nucleus(probs: torch.Tensor, top_p: float, first_k: int = 64) -> torch.Tensor:
    """Rows of ``probs`` [K, V] restricted to their nucleus and renormalised.

    One stable descending sort per row (no data-dependent loop, no host sync): a token
    is kept when the sorted cumulative mass up to and including it is ``<= top_p``; the
    most likely token always stays. ``first_k`` is unused (kept for compatibility).
    """
    if top_p >= 1.0 or probs.shape[0] == 0:
        return probs
    top, idx = probs.sort(dim=-1, descending=True, stable=True)
    keep = top.cumsum(dim=-1) <= top_p
    keep[:, 0] = True
    kept = torch.zeros_like(probs).scatter_(-1, idx, top.mul_(keep))
    return kept / kept.sum(dim=-1, keepdim=True)


def token_probs(scores: torch.Tensor, opts: TokenOptions) -> torch.Tensor:
    """float64 ``nucleus(softmax(scores / tau))`` for rows of log-probs (up to a
    constant per row, e.g. logits) [K, V]."""
    logits = scores.double()
    if opts.temperature != 1.0:
        logits = logits / opts.temperature
    return nucleus(torch.softmax(logits, dim=-1), opts.top_p)


def _invert_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The first v with F(v) > u F(V) per row (float64 CDF), never past the last p > 0."""
    cdf = probs.double().cumsum(dim=-1)
    ids = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(-1)
    positions = torch.arange(probs.shape[-1], device=probs.device)
    last = torch.where(probs > 0, positions, 0).amax(dim=-1)        # last token with p > 0
    return torch.minimum(ids, last)


def categorical(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One draw per row of ``probs`` [K, V] (rows need not sum to 1), by inverting the
    float64 CDF at one float64 uniform per row: the first v with F(v) > u F(V)."""
    u = torch.rand(probs.shape[0], 1, generator=generator, dtype=torch.float64,
                   device=probs.device)
    return _invert_cdf(probs, u)


def draw_rows(width: int) -> int:
    """Rows per chunk of a [K, ``width``] float64 draw."""
    return max(1, DRAW_CHUNK_ELEMENTS // max(width, 1))


def draw_tokens(scores: torch.Tensor, opts: TokenOptions,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row of log-probs (or logits) [K, V]; returns (ids [K], their
    probability after temperature and nucleus [K]).

    The K uniforms are drawn first (the same random stream for any chunking), then rows
    are processed in chunks of ``draw_rows(V)``, so the float64 temporaries stay bounded.
    """
    k = scores.shape[0]
    u = torch.rand(k, 1, generator=generator, dtype=torch.float64, device=scores.device)
    ids = torch.empty(k, dtype=torch.long, device=scores.device)
    p_ids = torch.empty(k, dtype=torch.float64, device=scores.device)
    rows = draw_rows(scores.shape[-1])
    for s in range(0, k, rows):
        probs = token_probs(scores[s:s + rows], opts)
        ids[s:s + rows] = _invert_cdf(probs, u[s:s + rows])
        p_ids[s:s + rows] = probs.gather(-1, ids[s:s + rows, None]).squeeze(-1)
    return ids, p_ids


def uniform(shape: tuple[int, ...], generator: torch.Generator,
            device: torch.device) -> torch.Tensor:
    """U(0, 1) in float64 (the per-position reveal/remask coin)."""
    return torch.rand(shape, generator=generator, device=device, dtype=torch.float64)


def device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """``generator`` if it lives on ``device``, else a generator there seeded from it."""
    if torch.device(generator.device).type == device.type:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def model_device(model: torch.nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


# ---------------------------------------------------------------- conditioning


@dataclass
class Constraints:
    """Positions fixed from the start: ``fixed`` [N, L] bool and their ``ids`` [N, L]."""

    fixed: torch.Tensor
    ids: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.fixed.shape)

    def rows(self, start: int, stop: int, device: torch.device) -> "Constraints":
        return Constraints(self.fixed[start:stop].to(device), self.ids[start:stop].to(device))

    def apply(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens`` with every fixed position set to its given id."""
        return torch.where(self.fixed, self.ids, tokens)


def _as_ids(value, name: str) -> torch.Tensor:
    try:
        t = torch.as_tensor(value).cpu()
    except (TypeError, ValueError, RuntimeError):
        raise SamplingError(f"{name} must be a list or tensor of token ids") from None
    if t.numel() and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        raise SamplingError(f"{name} must hold integer token ids, got {t.dtype}")
    return t.long()


def _rows(t: torch.Tensor, num_samples: int, name: str) -> torch.Tensor:
    if t.dim() == 1:
        return t.unsqueeze(0).expand(num_samples, -1)
    if t.dim() != 2 or t.shape[0] != num_samples:
        raise SamplingError(f"{name} must have shape [P] or [{num_samples}, P], got {tuple(t.shape)}")
    return t


def build_constraints(num_samples: int, seq_len: int, vocab_size: int,
                      prefix=None, infill=None) -> Constraints:
    """Merge a prompt ``prefix`` ([P] or [N, P] ids) and ``infill`` = (mask, ids), each
    [L] or [N, L], into one :class:`Constraints`; bad shapes or ids raise SamplingError."""
    fixed = torch.zeros(num_samples, seq_len, dtype=torch.bool)
    ids = torch.zeros(num_samples, seq_len, dtype=torch.long)
    if infill is not None:
        if not (isinstance(infill, (tuple, list)) and len(infill) == 2):
            raise SamplingError("infill must be a pair (mask [L] of fixed positions, ids [L])")
        mask = torch.as_tensor(infill[0]).cpu()
        if mask.dtype != torch.bool:
            raise SamplingError(f"infill mask must be boolean, got {mask.dtype}")
        mask = _rows(mask, num_samples, "infill mask")
        given = _rows(_as_ids(infill[1], "infill ids"), num_samples, "infill ids")
        if mask.shape[-1] != seq_len or given.shape != mask.shape:
            raise SamplingError(f"infill mask and ids must both cover the {seq_len} positions, "
                                f"got {tuple(mask.shape)} and {tuple(given.shape)}")
        fixed |= mask
        ids = torch.where(mask, given, ids)
    if prefix is not None:
        given = _rows(_as_ids(prefix, "prompt"), num_samples, "prompt")
        p = given.shape[-1]
        if p > seq_len:
            raise SamplingError(f"the prompt has {p} tokens, longer than the sequence ({seq_len})")
        clash = fixed[:, :p] & (ids[:, :p] != given)
        if bool(clash.any()):
            raise SamplingError("the prompt and the infill give different tokens for one position")
        fixed[:, :p] = True
        ids[:, :p] = given
    if bool(fixed.any()):
        used = ids[fixed]
        if int(used.min()) < 0 or int(used.max()) >= vocab_size:
            raise SamplingError(f"a given token id is outside the vocabulary [0, {vocab_size})")
    return Constraints(fixed, ids)


# ---------------------------------------------------------------- the counted network


class Network:
    """Calls ``fn`` and counts each call (one NFE) and the seconds spent inside it."""

    def __init__(self, fn: Callable[..., torch.Tensor], device: torch.device):
        from dslm.perf import fast_network

        self.fn = fast_network(fn, device)
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.nfe = 0
        self.seconds = 0.0

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        self.sync()
        start = time.perf_counter()
        out = self.fn(*args, **kwargs)
        self.sync()
        self.seconds += time.perf_counter() - start
        self.nfe += 1
        return out


@dataclass
class Run:
    """What a sampler is given besides the model and its options."""

    constraints: Constraints
    steps: int
    generator: torch.Generator
    device: torch.device
    tick: Callable[[], None] = lambda: None
    net: Network | None = None
    # observer(k, x_before, x_after, drawn, remask): called by the masked-diffusion loops
    # after each step with the batch's states; it must not modify them (dslm.analyze)
    observer: Callable[..., None] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.constraints.shape

    def stats(self, **extra) -> dict[str, Any]:
        return {"nfe": self.net.nfe if self.net else 0,
                "network_seconds": self.net.seconds if self.net else 0.0, **extra}


def tokens_per_call(free: int, steps: int) -> int:
    """k = ceil(free / steps): enough tokens per call to finish within ``steps`` calls."""
    return max(1, math.ceil(free / max(steps, 1)))
