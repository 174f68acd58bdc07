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


def nucleus(probs: torch.Tensor, top_p: float, first_k: int = 64,
            keys: torch.Tensor | None = None) -> torch.Tensor:
    """Rows of ``probs`` [K, V] restricted to their nucleus and renormalised.

    One stable descending sort per row (no data-dependent loop, no host sync): a token
    is kept when the sorted cumulative mass up to and including it is ``<= top_p``; the
    most likely token always stays. ``keys`` (optional, e.g. the float32 logits the
    probabilities came from) are sorted instead of ``probs``: any keys that order the
    row as ``probs`` does, ties included (p = g(key) with g non-decreasing), give the same
    result, and a 32-bit sort costs about half a 64-bit one. ``first_k`` is unused (kept
    for compatibility).
    """
    if top_p >= 1.0 or probs.shape[0] == 0:
        return probs
    if keys is None:
        keys = probs
        sorted_keys, idx = probs.sort(dim=-1, descending=True, stable=True)
        top = sorted_keys
    else:
        sorted_keys, idx = keys.sort(dim=-1, descending=True, stable=True)
        top = probs.gather(-1, idx)
    keep = top.cumsum(dim=-1) <= top_p           # a prefix of the sorted row (cumsum grows)
    keep[:, 0] = True
    # the kept tokens are the first m of the stable order: every key above the m-th key,
    # and of the keys equal to it (stable: in index order) those up to its index; one
    # elementwise mask in the original order instead of a scatter
    cut = keep.sum(dim=-1, keepdim=True) - 1
    kappa, last = sorted_keys.gather(-1, cut), idx.gather(-1, cut)
    positions = torch.arange(probs.shape[-1], device=probs.device)
    kept_mask = (keys > kappa) | ((keys == kappa) & (positions <= last))
    kept = torch.where(kept_mask, probs, 0.0)
    return kept / kept.sum(dim=-1, keepdim=True)


def token_probs(scores: torch.Tensor, opts: TokenOptions) -> torch.Tensor:
    """float64 ``nucleus(softmax(scores / tau))`` for rows of log-probs (up to a
    constant per row, e.g. logits) [K, V]."""
    logits = scores.double()
    if opts.temperature != 1.0:
        logits = logits / opts.temperature
    # softmax(double(s) / tau) is non-decreasing in s: sorting the (32-bit) scores orders
    # the row as its probabilities, ties included
    keys = scores if scores.dtype in (torch.float32, torch.bfloat16, torch.float16) else None
    return nucleus(torch.softmax(logits, dim=-1), opts.top_p, keys=keys)


#: Columns per block of the two-level inverse-CDF search (``_invert_cdf``).
CDF_BLOCK = 256


def _last_positive(vals: torch.Tensor) -> torch.Tensor:
    """Index of the last entry > 0 per row of ``vals`` [K, n] (0 for a row with none):
    an argmax over the flipped boolean map (1 byte per entry, no int64 temporary)."""
    positive = vals > 0
    last = vals.shape[-1] - 1 - positive.flip(-1).view(torch.uint8).argmax(dim=-1)
    return torch.where(positive.any(dim=-1), last, 0)


def _invert_cdf_dense(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The first v with F(v) > u F(V) per row (dense float64 CDF), never past the last p > 0.
    Few kernels: the choice for the few rows a masked step draws (``draw_tokens``)."""
    cdf = probs.double().cumsum(dim=-1)
    ids = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).squeeze(-1)
    positions = torch.arange(probs.shape[-1], device=probs.device)
    last = torch.where(probs > 0, positions, 0).amax(dim=-1)        # last token with p > 0
    return torch.minimum(ids, last)


def _invert_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The first v with F(v) > u F(V) per row (float64 CDF), never a token with p = 0.

    Two-level search, so no [K, V] float64 CDF is written: block sums of ``CDF_BLOCK``
    columns (float64 accumulation) and their cumulative sum locate the block holding the
    crossing, then the CDF inside that one block (its float64 prefix + the block's
    entries) locates the token. Mathematically the dense rule ``searchsorted(cumsum(p),
    u F(V))``; only the summation order of the float64 CDF differs, so a draw can differ
    from the dense one only when u F(V) lies within float64 rounding (~1e-16) of a CDF
    step. The crossing v has F(v) > F(v - 1), i.e. p_v > 0; where rounding leaves no
    crossing (u F(V) rounded up to F(V)), the last token with p > 0 is taken.
    """
    k, v = probs.shape
    blk = min(CDF_BLOCK, v)
    v0 = v - v % blk
    sums = probs[:, :v0].reshape(k, v0 // blk, blk).sum(dim=-1, dtype=torch.float64)
    if v0 < v:
        sums = torch.cat([sums, probs[:, v0:].sum(dim=-1, keepdim=True, dtype=torch.float64)], 1)
    cum = sums.cumsum(dim=-1)                                          # [K, blocks]
    target = u.to(torch.float64) * cum[:, -1:]                         # [K, 1]
    block = torch.searchsorted(cum, target, right=True).clamp_(max=cum.shape[1] - 1)
    base = torch.where(block > 0, cum.gather(1, (block - 1).clamp_min(0)), 0.0)
    cols = block * blk + torch.arange(blk, device=probs.device)        # [K, blk]
    vals = probs.gather(1, cols.clamp(max=v - 1)).double().masked_fill_(cols >= v, 0.0)
    local = torch.cat([base, vals], dim=1).cumsum(dim=-1)              # F at the block's start, inside it
    j = torch.searchsorted(local, target, right=True) - 1              # [K, 1]; blk: none
    ids = (block * blk + j.clamp(max=blk - 1)).squeeze(-1)
    # no crossing found: the last p > 0 in this block, else in the last block with mass
    in_block = (vals > 0).any(dim=-1)
    last_block = _last_positive(sums)[:, None]
    cols2 = last_block * blk + torch.arange(blk, device=probs.device)
    vals2 = probs.gather(1, cols2.clamp(max=v - 1)).masked_fill_(cols2 >= v, 0)
    fallback = torch.where(in_block, block.squeeze(-1) * blk + _last_positive(vals),
                           last_block.squeeze(-1) * blk + _last_positive(vals2))
    return torch.where(j.squeeze(-1) < blk, ids, fallback)


def categorical(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One draw per row of ``probs`` [K, V] (rows need not sum to 1), by inverting the
    float64 CDF at one float64 uniform per row: the first v with F(v) > u F(V)."""
    u = torch.rand(probs.shape[0], 1, generator=generator, dtype=torch.float64,
                   device=probs.device)
    return _invert_cdf(probs, u)      # K = every position: the two-level search (no [K, V] CDF)


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
    rows = draw_rows(scores.shape[-1])
    if k <= rows:                       # one chunk (a masked step's few rows): fewest kernels
        probs = token_probs(scores, opts)
        ids = _invert_cdf_dense(probs, u)
        return ids, probs.gather(-1, ids[:, None]).squeeze(-1)
    ids = torch.empty(k, dtype=torch.long, device=scores.device)
    p_ids = torch.empty(k, dtype=torch.float64, device=scores.device)
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
    """Calls ``fn`` and counts each call (one NFE) and the seconds spent inside it.

    The tracing hook: ``observer`` (given by ``sample(trace=...)``) sees every call after
    it is counted, with what the sampler last declared about its state
    (``note(tokens=, snr=)``: the discrete state [B, L] and, for DSL, a callable giving
    the per-position SNR [B, L]). Observers only read; without one ``note`` is a no-op.
    """

    def __init__(self, fn: Callable[..., torch.Tensor], device: torch.device, observer=None):
        from dslm.perf import fast_network

        self.fn = fast_network(fn, device)
        self.sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.nfe = 0
        self.seconds = 0.0
        self.observer = observer
        self.noted: dict[str, Any] = {}

    def note(self, **state) -> None:
        """Declare the sampler's state for the next call (kept only while observed)."""
        if self.observer is not None:
            self.noted = state

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        self.sync()
        start = time.perf_counter()
        out = self.fn(*args, **kwargs)
        self.sync()
        self.seconds += time.perf_counter() - start
        self.nfe += 1
        if self.observer is not None:
            self.observer(self, args, kwargs, out)
        return out


@dataclass
class Run:
    """What a sampler is given besides the model and its options; ``net`` is the counted
    network that ``sample()`` owns (samplers call it, never replace it)."""

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
