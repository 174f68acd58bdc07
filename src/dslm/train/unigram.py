"""The unigram plateau: a reference denoiser that knows token frequencies and nothing else.

A masked-diffusion model that ignores its context predicts every masked token with the
training frequencies ``p(v)``; its NELBO per token has expectation

    H_1 = - sum_v p(v) log p(v)      (nats; the unigram entropy, EOS included)

(docs/RECIPE.md). A validation NELBO is an estimate over a few batches, each with its
own mask rates t and masks, and the 1/t weights make it noisy: on the demo's 8 x 16
validation sequences the same model scores 6.22 under one set of draws and 6.52 under
another. Comparing that estimate with the constant ``H_1`` mixes this noise into the
gap. :class:`UnigramDenoiser` is scored instead on *the same* draws (same x_0, t and
masks), so ``val_loss - val_unigram`` is a paired difference whose noise is that of the
model's advantage alone (~0.01 nats here).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: at most this many training tokens are counted (evenly spaced blocks) for ``p(v)``
MAX_COUNTED_TOKENS = 1 << 24


def token_counts(blocks, vocab_size: int, max_tokens: int = MAX_COUNTED_TOKENS) -> np.ndarray:
    """Token counts [V] of ``blocks`` [N, L]; past ``max_tokens`` tokens, of evenly spaced blocks."""
    n = len(blocks)
    per_block = int(np.asarray(blocks[0]).size) if n else 1
    rows = np.arange(n) if n * per_block <= max_tokens else \
        np.linspace(0, n - 1, max(1, max_tokens // per_block)).astype(np.int64)
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(rows), 4096):
        chunk = np.asarray(blocks[rows[start:start + 4096]]).ravel()
        counts += np.bincount(chunk, minlength=vocab_size)[:vocab_size]
    return counts


def unigram_entropy(counts: np.ndarray) -> float:
    """``H_1`` in nats of the distribution ``counts / counts.sum()``."""
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


class UnigramDenoiser(nn.Module):
    """MDLM-shaped denoiser whose output is ``log p(v)`` at every position, whatever x_t.

    ``p`` is the add-one-smoothed training frequency (a token unseen in training still
    has a finite loss). It has the attributes the MDLM loss reads (``mask_id``), so
    ``mdlm_loss(UnigramDenoiser(...), x0, g)`` is the plateau's NELBO on that draw.
    """

    fused_head = False

    def __init__(self, counts: np.ndarray, mask_id: int):
        super().__init__()
        smoothed = counts.astype(np.float64) + 1.0
        self.register_buffer("log_p", torch.tensor(np.log(smoothed / smoothed.sum()), dtype=torch.float32))
        self.mask_id = int(mask_id)

    def forward(self, xt: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        return self.log_p.expand(*xt.shape, -1)
