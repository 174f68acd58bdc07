"""Network outputs computed only on the rows a masked-diffusion step reads (eager CPU path).

A masked step reads the posterior p(x_i | state) only at the positions it draws (the
still-masked ones, under carry-over), yet the model's forward computes the output head
[h -> V(+1)], MDLM's SUBS log-softmax and its carry-over over all B * L positions.
:class:`RowScores` splits one network call (one NFE) into

* the features ``F = final_norm(blocks(input))`` [B, L, h] of every position (the call),
* ``scores[where]``: the head and, for MDLM, SUBS, on the indexed rows only,

and the DSL input converter softmax(beta y K^T + b) @ W_in runs once per distinct
localized vector (every masked position without soft evidence reads y = 0, every position
revealed as token v reads y = snr_max e_v), then is gathered back to all positions; the
outputs for y = 0 and y = snr_max e_v are kept for the whole run (``ConverterCache``), so
each is computed once per batch rather than once per step.

Exactness: every operation is row-wise (row i of the head, of the log-softmax and of the
converter depends on row i of its input alone), so the selected rows equal the rows of the
full forward, provided the float32 kernels round a row the same way whatever the row
count. On the CPU's BLAS that holds once a GEMM has a dozen rows or more (a handful of
rows can take a different kernel), so a row subset is padded to at least ``MIN_ROWS``
rows and a model call smaller than that keeps the full forward. ``tests/test_sampling_rows.py``
checks the rows against the full forward bit for bit, and the fixed-seed reference
tokens (``tests/test_sampling_reference.py``) are unchanged.

Used only where the network runs eagerly (not under the GPU's compiled bf16 wrapper),
without a trace observer or forward hooks on the model (they read the full output), on
an MDLM or DSL denoiser in eval mode; ``DSLM_ROW_SCORES=0`` turns it off (the full
forward everywhere).
"""

from __future__ import annotations

import os
import time

import torch

from dslm.models.dsl import DSLDenoiser
from dslm.models.fused import chunk_rows, pad_rows, padded_linear, padded_size
from dslm.models.mdlm import NEG_INF, MDLMDenoiser

#: The fewest rows a row-restricted GEMM runs on (a smaller subset is padded with zeros).
MIN_ROWS = 64


def enabled(model, net, rows: int) -> bool:
    """Whether a call on ``rows`` positions may take the row-restricted path."""
    return (os.environ.get("DSLM_ROW_SCORES", "1") != "0" and net.fn is model
            and net.observer is None and type(model) in (MDLMDenoiser, DSLDenoiser)
            and not model.training and rows >= MIN_ROWS and not hooked(model))


def hooked(model) -> bool:
    """Whether forward hooks watch ``model`` (they must see its real forward calls)."""
    from torch.nn.modules import module as nn_module

    return bool(model._forward_hooks or model._forward_pre_hooks
                or nn_module._global_forward_hooks or nn_module._global_forward_pre_hooks)


def counted(net, fn, *args) -> torch.Tensor:
    """``fn(*args)`` as one counted, timed network call (as ``Network.__call__``)."""
    net.sync()
    start = time.perf_counter()
    out = fn(*args)
    net.sync()
    net.seconds += time.perf_counter() - start
    net.nfe += 1
    return out


def _padded(fn, rows: torch.Tensor) -> torch.Tensor:
    """``fn(rows)`` with ``rows`` [K, ...] padded with zero rows to at least MIN_ROWS."""
    k = rows.shape[0]
    return fn(pad_rows(rows, max(k, MIN_ROWS)))[:k]


def head_rows(model, feats: torch.Tensor) -> torch.Tensor:
    """The output head ``F W^T + b`` on feature rows [K, h] (as ``FinalLayer.forward``)."""
    linear = model.backbone.output_layer.linear
    return _padded(lambda f: padded_linear(f, linear.weight, linear.bias), feats)


def subs_rows(model: MDLMDenoiser, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """MDLM's SUBS log-probs over the V real tokens for feature rows [K, h] with input ids x [K]
    (``MDLMDenoiser.forward`` on those rows)."""
    logits = head_rows(model, feats).float()
    logits[..., model.mask_id] = NEG_INF
    logp = torch.log_softmax(logits, dim=-1)
    unmasked = x != model.mask_id
    if bool(unmasked.any()):
        carry = torch.full_like(logp, NEG_INF)
        carry.scatter_(-1, x.unsqueeze(-1), 0.0)
        logp = torch.where(unmasked.unsqueeze(-1), carry, logp)
    return logp[..., : model.vocab_size]


class RowScores:
    """One network call's scores, computed on demand for the indexed rows.

    ``scores[where]`` (``where``: a boolean map [B, L] or a pair of index tensors) gives
    the rows of the full output ``model(...)[..., :V]`` at those positions; the time
    spent counts as network time.
    """

    def __init__(self, net, feats: torch.Tensor, rows_fn, x: torch.Tensor):
        self.net, self.feats, self.rows_fn, self.x = net, feats, rows_fn, x

    def __getitem__(self, where) -> torch.Tensor:
        start = time.perf_counter()
        out = self.rows_fn(self.feats[where], self.x[where])
        self.net.seconds += time.perf_counter() - start
        return out


def mdlm_scores(model: MDLMDenoiser, net, x: torch.Tensor,
                sigma: torch.Tensor | None) -> RowScores:
    """The SUBS scores of ``model(x, sigma)`` (one NFE), rows on demand."""
    bb = model.backbone

    def features(x, sigma):
        return bb.features(bb.vocab_embed(x), sigma if model.uses_time else None)

    feats = counted(net, features, x, sigma)
    return RowScores(net, feats, lambda f, ids: subs_rows(model, f, ids), x)


def dsl_scores(model: DSLDenoiser, net, y: torch.Tensor, key: torch.Tensor,
               x: torch.Tensor, cache: "ConverterCache | None" = None) -> RowScores:
    """The logits of ``model(y)`` (one NFE), rows on demand; ``key`` [B, L] labels the rows
    of y: equal keys, equal rows (the converter runs once per key, and with ``cache`` once
    per key < V + 1 over the whole run)."""

    def features(y, key):
        sigma = None
        if model.config.norm_conditioning:
            sigma = torch.log1p(y.float().norm(dim=-1).mean(dim=-1))
        h = distinct_embedding(model, y, key, cache)
        return model.backbone.features(h, sigma)

    feats = counted(net, features, y, key)
    return RowScores(net, feats, lambda f, ids: head_rows(model, f), x)


class ConverterCache:
    """Converter outputs h(y) of the rows whose key is a token v < V (y = snr_max e_v) or
    the [MASK] id V (y = 0): they depend on the key alone while the weights are fixed, so
    one sampling run computes each once. Keys > V (soft remasks) are never kept."""

    def __init__(self):
        self.table: torch.Tensor | None = None      # [V + 1, H]
        self.done: torch.Tensor | None = None       # [V + 1] bool


def distinct_embedding(model: DSLDenoiser, y: torch.Tensor, key: torch.Tensor,
                       cache: ConverterCache | None = None) -> torch.Tensor:
    """``model.input_embedding(y)`` [B, L, H], the converter run once per distinct ``key``.

    The full converter runs on chunks of ``chunk_rows`` rows; within each chunk (the same
    chunks, so the same row counts are never undercut) only one row per key is computed.
    With a ``cache`` and a single chunk, rows already computed in an earlier call are reused.
    """
    flat, keys = y.reshape(-1, y.shape[-1]), key.reshape(-1)
    n = flat.shape[0]
    rows = chunk_rows(padded_size(model.vocab_size + 1))
    if cache is not None and MIN_ROWS <= n <= rows:
        h = _cached_embedding(model, flat, keys, cache)
        return h.view(*y.shape[:-1], h.shape[-1])
    parts = []
    for s in range(0, n, rows):
        ys, ks = flat[s:s + rows], keys[s:s + rows]
        if ys.shape[0] < MIN_ROWS:
            parts.append(model.input_embedding(ys))
            continue
        uniq, inverse, first = _distinct(ks)
        parts.append(_padded(model.input_embedding, ys[first])[inverse])
    h = parts[0] if len(parts) == 1 else torch.cat(parts)
    return h.view(*y.shape[:-1], h.shape[-1])


def _distinct(keys: torch.Tensor):
    """The distinct keys, each key's slot among them, and one position holding each."""
    uniq, inverse = torch.unique(keys, return_inverse=True)
    first = torch.empty(uniq.shape[0], dtype=torch.long, device=keys.device)
    first.scatter_(0, inverse, torch.arange(keys.shape[0], device=keys.device))
    return uniq, inverse, first


def _cached_embedding(model: DSLDenoiser, flat: torch.Tensor, keys: torch.Tensor,
                      cache: ConverterCache) -> torch.Tensor:
    slots = model.vocab_size + 1
    if cache.table is None:
        w_in = model.backbone.vocab_embed.embedding
        cache.table = torch.zeros(slots, w_in.shape[1], dtype=w_in.dtype, device=flat.device)
        cache.done = torch.zeros(slots, dtype=torch.bool, device=flat.device)
    uniq, inverse, first = _distinct(keys)
    kept = uniq < slots
    slot = uniq.clamp(max=slots - 1)
    todo = ~kept | ~cache.done[slot]
    h = cache.table[slot]                                         # [U, H]
    if bool(todo.any()):
        fresh = _padded(model.input_embedding, flat[first[todo]])
        h[todo] = fresh
        store = todo & kept
        cache.table[slot[store]] = h[store]
        cache.done[slot[store]] = True
    return h[inverse]
