"""Training's vocabulary-wide work on the rows that need it (exact; on by default on the CPU).

The head cross-entropy and the DSL converter cost O(rows x V) each, forward and backward.
Two row sets of a training batch need none of it:

* **Zero-weight rows of the head.** ``sum_i w_i CE_i`` and all its gradients do not
  depend on a row with ``w_i = 0`` (a revealed DSL position unless ``loss_on_revealed``,
  an unmasked MDLM position, an ``ignore_id`` token): the head's cross-entropy runs on the
  rows with ``w_i != 0`` only; ``CE_i`` reads 0 on the others (no caller reads it there).
* **y = 0 rows of the DSL converter** (s = 0: the masked positions of ROAR sequences).
  There ``p = softmax(0 K^T + b) = softmax(b) = p0`` for every such row, so
  ``h_i = h0 = p0^T W_in`` is computed once (one row through the converter). Its
  parameter gradients are linear in the rows' upstream gradients g_i, so that one row
  receives ``sum_i g_i`` (dK gets ``gs^T y_i = 0`` from these rows, as in the full path).
  The gradient with respect to y_i itself is the converter's Jacobian at y = 0,
      dL/dy_i = M g_i,   M = K^T diag(p0) W_in - c h0^T  [d, H],   c = K^T p0,
  formed as the linear term ``h_i = h0 + y_i M`` (exactly h0, since y_i = 0).

Both change only float32 rounding (sums in another order), never the math
(``tests/test_train_rows.py`` compares loss and every gradient with the full path).

On the CPU the training (gradient) path also runs in row chunks of about
``CPU_CHUNK_ELEMENTS`` elements: the [rows, V] temporaries stay in the last-level cache
and are reused instead of being fresh pages every step (a whole [2048, 4160] float32 converter
softmax is 34 MB, which glibc serves as new zero-filled pages each time). Evaluation and
sampling (no gradient) keep ``fused.chunk_rows``, so their outputs are unchanged.

Switch: ``DSLM_TRAIN_ROWS`` = ``auto`` (default: on for CPU tensors), ``0`` (off: the
full-rows path everywhere) or ``1`` (on for every device; on a GPU each call then costs a
host sync for the row count, and ``torch.compile`` graphs never take this path).
"""

from __future__ import annotations

import os

import torch

from dslm.errors import ConfigError
from dslm.models import fused

#: Elements of one [rows, V] chunk in CPU training (4 MiB of float32). At the tiny size
#: (one thread, batch 16) 2^19 and 2^21-2^22 elements were slower, 1.5 x 2^20 the same
#: (benchmarks/README.md).
CPU_CHUNK_ELEMENTS = 2 ** 20
#: Fewest rows per CPU chunk (a GEMM over fewer rows runs far below peak).
MIN_CHUNK_ROWS = 64
ENV = "DSLM_TRAIN_ROWS"


def enabled(t: torch.Tensor) -> bool:
    """Row skipping and CPU chunks for a training call on ``t`` (``DSLM_TRAIN_ROWS``)."""
    if torch.compiler.is_compiling():           # data-dependent row counts: never traced
        return False
    mode = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "0", "1"):
        raise ConfigError(f"{ENV} must be auto, 0 or 1, got '{mode}'")
    if mode == "0":
        return False
    return mode == "1" or t.device.type == "cpu"


def chunk_rows(width: int, device: torch.device) -> int:
    """Rows per chunk of a [rows, width] training temporary on ``device``."""
    rows = fused.chunk_rows(width)
    if device.type != "cpu":
        return rows
    return min(rows, max(MIN_CHUNK_ROWS, CPU_CHUNK_ELEMENTS // max(width, 1)))


def head_cross_entropy(h, weight, bias, target, token_weight, classes, cd):
    """``(sum_i w_i CE_i, CE [N])`` of ``fused.linear_cross_entropy``'s gradient path on the
    rows with ``w_i != 0`` (CE = 0 on the others; all rows when none has w_i != 0)."""
    n = h.shape[0]
    rows = chunk_rows(fused.padded_size(weight.shape[0]), h.device)
    keep = token_weight.nonzero().squeeze(1)
    if keep.numel() in (0, n):
        return fused._LinearCrossEntropy.apply(h, weight, bias, target, token_weight, classes, cd, rows)
    total, ce = fused._LinearCrossEntropy.apply(h.index_select(0, keep), weight, bias, target[keep],
                                                token_weight[keep], classes, cd, rows)
    return total, ce.new_zeros(n).index_copy_(0, keep, ce)


def soft_embedding(y, keys, bias, w_in, cd):
    """``fused.soft_embedding``'s gradient path for y [N, d] with the y = 0 rows served by
    one converter row (h0) plus the linear term ``y_i M`` that carries dL/dy_i."""
    rows = chunk_rows(fused.padded_size(keys.shape[0]), y.device)
    zero = ~y.any(dim=1)
    idx_zero = zero.nonzero().squeeze(1)
    if idx_zero.numel() == 0:
        return fused._SoftEmbedding.apply(y, keys, bias, w_in, cd, rows)
    h0 = fused._SoftEmbedding.apply(y.new_zeros(1, y.shape[1]), keys, bias, w_in, cd, rows)
    with torch.no_grad():
        p0 = torch.softmax(bias, dim=-1)                                 # [S]
        wf = w_in.to(p0.dtype)
        c = p0 @ keys                                                     # [d]
        m = (keys * p0[:, None]).t() @ wf - c[:, None] * (p0 @ wf)[None]  # [d, H]
    y_zero = y.index_select(0, idx_zero)
    h_zero = (h0 + y_zero @ m).to(h0.dtype)                               # == h0: y_zero is 0
    out = h0.new_empty(y.shape[0], h0.shape[1])
    if idx_zero.numel() == y.shape[0]:
        return out.index_copy(0, idx_zero, h_zero)
    idx_rest = (~zero).nonzero().squeeze(1)
    h_rest = fused._SoftEmbedding.apply(y.index_select(0, idx_rest), keys, bias, w_in, cd, rows)
    return out.index_copy(0, idx_rest, h_rest).index_copy(0, idx_zero, h_zero)
