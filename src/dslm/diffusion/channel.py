"""The localization channel (docs/MATH.md §1-3).

Tokens are points on the unit sphere: ``E`` in R^{|V| x d}, ``||e_v|| = 1``. A per-token
signal-to-noise ratio ``s_i >= 0`` corrupts token ``x_i`` through

    y_i = s_i * e_{x_i} + sqrt(s_i) * eps_i,        eps_i ~ N(0, I_d)

(the stochastic-localization process Y_t = t X + W_t observed at t = s_i).

* ``s_i = 0``  -> ``y_i = 0``: no information, the [MASK] state.
* ``s_i = inf`` -> the token is revealed. It is represented exactly and finitely as the
  noise-free point ``snr_max * e_{x_i}`` (never inf/NaN).

The log-likelihood is ``<y_i, e_v> - s_i ||e_v||^2 / 2 + c(y_i, s_i)``; with unit-norm
rows the middle term is the same for every v, so the posterior

    p(x | y) ∝ p_data(x) * prod_i exp(<y_i, e_{x_i}>)

depends on y alone. ``evidence`` computes ``ell_i(v) = <y_i, e_v>`` and
``posterior`` its softmax (the per-token posterior under a uniform prior).
"""

from __future__ import annotations

import math

import torch

#: Default finite SNR that stands for "revealed" (the DSL reference code: snr_max = 100).
SNR_MAX = 100.0


def normalize_rows(matrix: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale every row of ``matrix`` to unit L2 norm (rows of norm 0 are an error)."""
    norms = matrix.norm(dim=-1, keepdim=True)
    if bool((norms <= eps).any()):
        raise ValueError("cannot normalise an embedding row of zero norm")
    return matrix / norms


def unit_sphere_embeddings(vocab_size: int, dim: int,
                           generator: torch.Generator | None = None,
                           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Seeded random unit vectors: ``E[v] = g_v / ||g_v||`` with ``g_v ~ N(0, I_d)``."""
    if vocab_size < 1 or dim < 1:
        raise ValueError(f"need vocab_size >= 1 and dim >= 1, got {vocab_size}, {dim}")
    g = torch.randn(vocab_size, dim, generator=generator, dtype=torch.float64)
    return normalize_rows(g).to(dtype)


def revealed_mask(snr: torch.Tensor) -> torch.Tensor:
    """Positions whose SNR is infinite (revealed tokens)."""
    return torch.isinf(snr) & (snr > 0)


def localize(tokens: torch.Tensor, snr: torch.Tensor, embeddings: torch.Tensor,
             generator: torch.Generator | None = None,
             snr_max: float = SNR_MAX) -> torch.Tensor:
    """Sample ``y = s * e_x + sqrt(s) * eps`` for tokens [B, L] and per-token SNR [B, L].

    ``s = 0`` gives exactly ``y = 0``; ``s = inf`` gives the noise-free ``snr_max * e_x``.
    Returns ``y`` of shape [B, L, d] in the embeddings' dtype.
    """
    if tokens.shape != snr.shape:
        raise ValueError(f"tokens {tuple(tokens.shape)} and snr {tuple(snr.shape)} differ in shape")
    if bool((snr < 0).any()) or bool(torch.isnan(snr).any()):
        raise ValueError("snr must be >= 0 and not NaN")
    e = embeddings[tokens]                                   # [B, L, d]
    revealed = revealed_mask(snr)
    s = torch.where(revealed, torch.zeros_like(snr), snr).to(e.dtype).unsqueeze(-1)
    eps = torch.randn(e.shape, generator=generator, dtype=e.dtype, device=e.device)
    y = s * e + s.sqrt() * eps
    if bool(revealed.any()):
        y = torch.where(revealed.unsqueeze(-1), snr_max * e, y)
    return y


def clean_point(tokens: torch.Tensor, embeddings: torch.Tensor,
                snr_max: float = SNR_MAX) -> torch.Tensor:
    """The noise-free committed state ``snr_max * e_x`` of tokens [B, L] -> [B, L, d]."""
    return snr_max * embeddings[tokens]


def evidence(y: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """Per-token evidence ``ell_i(v) = <y_i, e_v>``: [B, L, d] x [V, d] -> [B, L, V]."""
    return torch.matmul(y, embeddings.to(y.dtype).t())


def posterior_mean(logits: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """``xhat = E[e_x | y] = softmax(logits) @ E``: [B, L, V] x [V, d] -> [B, L, d]."""
    return torch.softmax(logits.float(), dim=-1) @ embeddings


def posterior(y: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
    """Per-token posterior under a uniform prior: ``softmax_v <y_i, e_v>`` -> [B, L, V]."""
    return torch.softmax(evidence(y, embeddings).float(), dim=-1)


def gaussian_log_likelihood(y: torch.Tensor, snr: torch.Tensor,
                            embeddings: torch.Tensor) -> torch.Tensor:
    """Full ``log N(y_i; s_i e_v, s_i I)`` for every v: [B, L, d], [B, L] -> [B, L, V].

    Used by the exactness tests (the brute-force Bayes posterior); requires ``s > 0``.
    For unit-norm rows this equals ``evidence(y) + c(y, s)``; otherwise it keeps the
    ``- s ||e_v||^2 / 2`` term that makes the posterior depend on s.
    """
    s = snr.unsqueeze(-1).to(y.dtype)                        # [B, L, 1]
    d = y.shape[-1]
    diff = y.unsqueeze(-2) - s.unsqueeze(-1) * embeddings.to(y.dtype)   # [B, L, V, d]
    sq = (diff ** 2).sum(-1)                                 # [B, L, V]
    return -sq / (2 * s) - 0.5 * d * torch.log(2 * math.pi * s)
