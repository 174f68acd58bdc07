"""Memory-lean kernels for the vocabulary-wide layers and the MLP (exact, not approximate).

* **Padding.** A GEMM whose width is a vocabulary size (50257, 50258) runs on slow
  fallback kernels. Every vocabulary-wide weight is zero-padded per call to
  ``padded_size(n)`` (a multiple of ``PAD_MULTIPLE`` = 64) rows; padded slots get score
  ``MASKED`` = -1e30 in every softmax (probability exactly 0, as with -inf, without the
  -inf - (-inf) = NaN a fused kernel could form) and outputs are sliced back to the true
  width, so results are those of the unpadded model. Parameters keep their true shape
  (checkpoints, the MDLM hub layout, EMA and optimizer state are unchanged); the cost
  is one weight-sized copy per call.
* **Fused head cross-entropy** (``linear_cross_entropy``): ``sum_i w_i CE(h_i W^T + b,
  x_i)`` over row chunks, the logits of one chunk at a time; the gradients of h, W and b
  are formed chunk by chunk in the forward pass (the upstream gradient of a scalar is
  a scalar, applied in backward), so no [N, V] tensor outlives its chunk and no GEMM is
  repeated.
* **DSL converter** (``soft_embedding``): ``h = softmax(y K^T + b) W_in`` saving only
  y and the per-row log-normaliser; backward recomputes the softmax chunk by chunk.
* **GELU-linear** (``gelu_linear``): ``GELU_tanh(u) W^T + b`` saving u only; backward
  recomputes GELU(u) (an elementwise op) instead of keeping it.

Under autocast the GEMMs run in the autocast dtype (``compute_dtype``) and the
softmax / log-sum-exp in float32, as the plain modules do.

With gradients on CPU tensors, the head cross-entropy and the converter run only on the
rows that need them, in cache-sized chunks (``dslm.models.train_rows``, exact;
``DSLM_TRAIN_ROWS=0`` turns it off).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

#: Vocabulary-wide GEMM widths are padded to a multiple of this.
PAD_MULTIPLE = 64
#: The score of a padded slot: finite, so that no fused softmax / log-sum-exp (e.g. an
#: online softmax whose running max starts at -inf) ever forms -inf - (-inf) = NaN, and
#: low enough that exp(MASKED - max) is exactly 0 in float32 for any finite row max, as
#: -inf gives: outputs are bit-identical to masking with -inf.
MASKED = -1e30
#: Elements of one [rows, V] float32 chunk (256 MiB): bounds every vocabulary-wide temporary.
CHUNK_ELEMENTS = 2 ** 26


class HeadLoss(NamedTuple):
    """What a model returns when given targets: ``total`` = sum_i w_i CE_i (the
    differentiable scalar) and ``ce`` [B, L] (float32, no gradient)."""

    total: torch.Tensor
    ce: torch.Tensor


def padded_size(n: int) -> int:
    """``n`` rounded up to a multiple of PAD_MULTIPLE."""
    return -(-n // PAD_MULTIPLE) * PAD_MULTIPLE


def pad_rows(t: torch.Tensor, rows: int, value: float = 0.0) -> torch.Tensor:
    """``t`` [n, ...] extended with ``rows - n`` rows of ``value`` (``t`` itself if none)."""
    extra = rows - t.shape[0]
    if extra == 0:
        return t
    return torch.cat([t, t.new_full((extra, *t.shape[1:]), value)])


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a GEMM on ``x`` runs in: the autocast dtype when autocast is on."""
    kind = x.device.type
    if torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return x.dtype


def chunk_rows(width: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(width, 1))


def padded_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``x W^T + b`` [..., V] computed on W padded to ``padded_size(V)`` rows (a view)."""
    v = weight.shape[0]
    vp = padded_size(v)
    if vp == v:
        return F.linear(x, weight, bias)
    cd = compute_dtype(x) if torch.is_autocast_enabled(x.device.type) else weight.dtype
    w = pad_rows(weight.to(cd), vp)
    b = None if bias is None else pad_rows(bias.to(cd), vp)
    return F.linear(x, w, b)[..., :v]


def _no_autocast(t: torch.Tensor):
    """``torch.autocast(device, enabled=False)`` for a tensor's device (traceable by dynamo)."""
    return torch.autocast(t.device.type, enabled=False)


# ---------------------------------------------------------------- fused head cross-entropy


def _join(parts: list[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _ce_forward(h, weight, bias, target, token_weight, classes, cd, need_grad, rows=None):
    """Per-row CE [N] and, if ``need_grad``, (dCE/dh [N, H] in cd, dW [Vp, H], db [Vp]) of
    sum_i w_i CE_i, one row chunk at a time: logits z (float32, columns >= classes set to
    MASKED), log p = log_softmax(z), CE = -log p[x], dz = w (p - onehot(x))."""
    n, hidden = h.shape
    vp = padded_size(weight.shape[0])
    w = pad_rows(weight.to(cd), vp)
    b = None if bias is None else pad_rows(bias.to(cd), vp)
    hc = h.to(cd)
    ces, ghs = [], []
    gw = gb = None
    if need_grad:
        gw = torch.zeros(vp, hidden, dtype=torch.float32, device=h.device)
        gb = torch.zeros(vp, dtype=torch.float32, device=h.device) if bias is not None else None
    rows = rows or chunk_rows(vp)
    for s in range(0, n, rows):
        hs, t = hc[s:s + rows], target[s:s + rows, None]
        z = (torch.addmm(b, hs, w.t()) if b is not None else hs @ w.t()).float()
        if classes < vp:
            z[:, classes:] = MASKED
        logp = torch.log_softmax(z, dim=-1)
        ces.append(-logp.gather(1, t).squeeze(1))
        if not need_grad:
            continue
        g = logp.exp_()                                   # softmax; exactly 0 where MASKED
        g.scatter_add_(1, t, torch.full(t.shape, -1.0, dtype=g.dtype, device=g.device))
        g.mul_(token_weight[s:s + rows, None])
        gc = g.to(cd)
        ghs.append(gc @ w)
        if cd == torch.float32:
            gw.addmm_(gc.t(), hs)
        else:
            gw.add_(gc.t() @ hs)
        if gb is not None:
            gb.add_(g.sum(0))
    return _join(ces), ((_join(ghs), gw, gb) if need_grad else None)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, weight, bias, target, token_weight, classes, cd, rows=None):
        with _no_autocast(h):
            ce, (gh, gw, gb) = _ce_forward(h, weight, bias, target, token_weight, classes, cd, True,
                                           rows)
            total = (ce * token_weight).sum()
        v = weight.shape[0]
        ctx.dtypes = (h.dtype, weight.dtype, None if bias is None else bias.dtype)
        ctx.has_bias = bias is not None
        saved = (gh, gw[:v], gb[:v]) if bias is not None else (gh, gw[:v])
        ctx.save_for_backward(*saved)
        ctx.mark_non_differentiable(ce)
        return total, ce

    @staticmethod
    def backward(ctx, g_total, g_ce):
        saved = ctx.saved_tensors
        h_dtype, w_dtype, b_dtype = ctx.dtypes
        gh = saved[0].to(h_dtype) * g_total if ctx.needs_input_grad[0] else None
        gw = (saved[1] * g_total).to(w_dtype) if ctx.needs_input_grad[1] else None
        gb = (saved[2] * g_total).to(b_dtype) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gh, gw, gb, None, None, None, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         target: torch.Tensor, token_weight: torch.Tensor,
                         classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum_i w_i CE_i, CE [N])`` with ``CE_i = logsumexp_{v < C} z_iv - z_{i, x_i}``,
    ``z = h W^T + b`` (h [..., H], W [V_out, H], target / token_weight [...]).

    Only the first ``classes`` = C (default V_out) output columns are classes: the rest
    (MDLM's [MASK] column, padding) get probability 0. ``CE`` is float32 and carries no
    gradient; the scalar total does. Exactly ``F.cross_entropy`` of the plain head.
    """
    shape = target.shape
    h2 = h.reshape(-1, h.shape[-1])
    t = target.reshape(-1)
    w = token_weight.reshape(-1).float()
    classes = classes or weight.shape[0]
    cd = compute_dtype(h)
    need = torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad
                                        or (bias is not None and bias.requires_grad))
    from dslm.models import train_rows          # zero-weight rows skipped (CPU default)

    if need and train_rows.enabled(h2):
        total, ce = train_rows.head_cross_entropy(h2, weight, bias, t, w.detach(), classes, cd)
    elif need:
        total, ce = _LinearCrossEntropy.apply(h2, weight, bias, t, w.detach(), classes, cd)
    else:
        with torch.no_grad(), _no_autocast(h):
            ce, _ = _ce_forward(h2, weight, bias, t, w, classes, cd, False)
            total = (ce * w).sum()
    return total, ce.view(shape)


# ---------------------------------------------------------------- DSL converter


def _converter_chunk(ys, kp, bp):
    """softmax(y K^T + b) [r, Vp] (float32; exactly 0 on the padded slots, whose b is MASKED)."""
    return torch.softmax(torch.addmm(bp, ys, kp.t()), dim=-1)


def _wide(t: torch.Tensor) -> torch.Tensor:
    """float32 unless already float32 or float64."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


class _SoftEmbedding(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y, keys, bias, w_in, cd, rows=None):
        vp = padded_size(keys.shape[0])
        rows = rows or chunk_rows(vp)
        with _no_autocast(y):
            kp, bp = pad_rows(keys, vp), pad_rows(bias, vp, MASKED)
            wp = pad_rows(w_in.to(cd), vp)
            out = _join([(_converter_chunk(y[s:s + rows], kp, bp).to(cd) @ wp).to(w_in.dtype)
                         for s in range(0, y.shape[0], rows)])
        ctx.cd, ctx.rows = cd, rows
        ctx.save_for_backward(y, keys, bias, w_in)
        return out

    @staticmethod
    def backward(ctx, g_out):
        y, keys, bias, w_in = ctx.saved_tensors
        cd = ctx.cd
        v1 = keys.shape[0]
        vp = padded_size(v1)
        need_y, need_k, need_b, need_w = ctx.needs_input_grad[:4]
        with _no_autocast(y):
            kp, bp = pad_rows(keys, vp), pad_rows(bias, vp, MASKED)
            wp = pad_rows(w_in.to(cd), vp)
            gys = []
            gk = torch.zeros_like(kp) if need_k else None
            gb = torch.zeros_like(bp) if need_b else None
            gw = torch.zeros(vp, w_in.shape[1], dtype=y.dtype, device=y.device) if need_w else None
            rows = ctx.rows
            for s in range(0, y.shape[0], rows):
                ys = y[s:s + rows]
                p = _converter_chunk(ys, kp, bp)                   # recomputed, not saved
                go = g_out[s:s + rows].to(cd)
                if need_w:
                    gw.add_((p.to(cd).t() @ go).to(gw.dtype))
                gp = (go @ wp.t()).to(p.dtype)                     # dL/dp [r, Vp]
                gs = torch.ops.aten._softmax_backward_data(gp, p, -1, p.dtype)
                if need_y:
                    gys.append(gs @ kp)
                if need_k:
                    gk.addmm_(gs.t(), ys)
                if need_b:
                    gb.add_(gs.sum(0))
        return (_join(gys) if need_y else None, gk[:v1] if need_k else None,
                gb[:v1].to(bias.dtype) if need_b else None,
                gw[:v1].to(w_in.dtype) if need_w else None, None, None)


def soft_embedding(y: torch.Tensor, keys: torch.Tensor, bias: torch.Tensor,
                   w_in: torch.Tensor) -> torch.Tensor:
    """``softmax(y K^T + b) @ W_in`` for y [..., d], K [S, d], b [S], W_in [S, H] -> [..., H].

    The softmax is float32; the product with W_in runs in the autocast dtype (if on) and
    returns W_in's dtype. Saves y and the parameters only (the softmax is recomputed).
    """
    wide = torch.promote_types(torch.promote_types(_wide(y).dtype, _wide(keys).dtype), bias.dtype)
    flat = y.to(wide).reshape(-1, y.shape[-1])
    cd = compute_dtype(y) if torch.is_autocast_enabled(y.device.type) else w_in.dtype
    keys, bias = keys.to(wide), bias.to(wide)
    from dslm.models import train_rows          # y = 0 rows once, CPU chunks (CPU default)

    need = torch.is_grad_enabled() and any(t.requires_grad for t in (flat, keys, bias, w_in))
    if need and train_rows.enabled(flat):
        with _no_autocast(flat):
            out = train_rows.soft_embedding(flat, keys, bias, w_in, cd)
    else:
        out = _SoftEmbedding.apply(flat, keys, bias, w_in, cd)
    return out.view(*y.shape[:-1], w_in.shape[1])


# ---------------------------------------------------------------- GELU-linear


class _GeluLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, weight, bias):
        cd = u.dtype
        with _no_autocast(u):
            a = F.gelu(u, approximate="tanh")
            out = F.linear(a, weight.to(cd), None if bias is None else bias.to(cd))
        ctx.save_for_backward(u, weight, bias)
        return out

    @staticmethod
    def backward(ctx, g):
        u, weight, bias = ctx.saved_tensors
        cd = u.dtype
        with _no_autocast(u):
            g = g.to(cd)
            g2 = g.reshape(-1, g.shape[-1])
            gw = gb = gu = None
            if ctx.needs_input_grad[1]:
                a = F.gelu(u, approximate="tanh")
                gw = (g2.t() @ a.reshape(-1, a.shape[-1])).to(weight.dtype)
            if bias is not None and ctx.needs_input_grad[2]:
                gb = g2.sum(0).to(bias.dtype)
            if ctx.needs_input_grad[0]:
                ga = g @ weight.to(cd)
                gu = torch.ops.aten.gelu_backward(ga, u, approximate="tanh")
        return gu, gw, gb


def gelu_linear(u: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``GELU_tanh(u) W^T + b`` in u's dtype (the autocast dtype of the layer before), saving
    only u: backward recomputes the GELU."""
    if not (torch.is_grad_enabled() and (u.requires_grad or weight.requires_grad)):
        return F.linear(F.gelu(u, approximate="tanh"), weight.to(u.dtype),
                        None if bias is None else bias.to(u.dtype))
    return _GeluLinear.apply(u, weight, bias)
