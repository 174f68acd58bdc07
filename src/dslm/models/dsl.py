"""The DSL denoiser: ``f_theta(y) -> logits [B, L, V]`` with no time or SNR input.

Input converter (docs/MATH.md §4, keys K = [E; 0]): the localized vector y_i is read
softly against the unit-sphere table E plus an all-zero [MASK] key,

    p_i = softmax(beta * [<y_i, e_1>, ..., <y_i, e_V>, 0] + b)      over V + 1 slots
    h_i = p_i @ W_in                                               (W_in: [V + 1, hidden])

so h_i is the expected input embedding under a soft reading of y_i: y_i = 0 gives the
[MASK] embedding (weight ``mask_weight`` = 0.99 by default via b_mask = log(99 V)), a
committed y_i = snr_max e_x gives the embedding of x. ``W_in`` is the backbone's
``vocab_embed.embedding``, so an MDLM checkpoint's input table (mask row included)
initialises it directly; the output layer is MDLM's minus the [MASK] row.

Why this converter (the paper's choice; ``input_scores`` = y K^T + b is what the fused
``input_embedding`` computes from ``input_keys`` and ``input_bias``): it
needs only the evidence ``y E^T`` (the sufficient statistic of y for x, §1.3), it is
exactly MDLM's input at both endpoints, and it is bounded for any SNR.

``beta`` (learnable) starts at ``model.input_beta``; 0 means automatic: with
``beta_init=calibrated`` the smallest beta for which a committed token puts at least
``mask_weight`` of the weight on its own slot (checked on up to 64 tokens of E), with
``beta_init=inv_sqrt_d`` the reference code's 1 / sqrt(d). The resolved value is
written back into the config, so a saved checkpoint rebuilds the same model.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from dslm.diffusion.channel import normalize_rows, unit_sphere_embeddings
from dslm.models.config import ModelConfig
from dslm.models.dit import DiT
from dslm.models.fused import HeadLoss, soft_embedding


def _mask_bias(vocab_size: int, mask_weight: float) -> float:
    """b_mask such that the [MASK] slot has weight ``mask_weight`` at y = 0."""
    return math.log(mask_weight / (1 - mask_weight) * vocab_size)


def calibrate_beta(embeddings: torch.Tensor, snr_max: float, mask_weight: float,
                   sample: int = 64) -> float:
    """Smallest beta giving a committed token weight >= mask_weight (bisection)."""
    v = embeddings.shape[0]
    idx = torch.linspace(0, v - 1, min(sample, v)).long()
    ell = snr_max * embeddings[idx].double() @ embeddings.double().t()      # [S, V]
    bias = torch.zeros(v + 1, dtype=torch.float64)
    bias[-1] = _mask_bias(v, mask_weight)
    zeros = torch.zeros(len(idx), 1, dtype=torch.float64)

    def worst(beta: float) -> float:
        p = torch.softmax(torch.cat([beta * ell, zeros], 1) + bias, dim=-1)
        return float(p[torch.arange(len(idx)), idx].min())

    lo, hi = 0.0, 1.0
    while worst(hi) < mask_weight and hi < 1e4:
        hi *= 2
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if worst(mid) >= mask_weight else (mid, hi)
    return hi


def initial_beta(cfg: ModelConfig, embeddings: torch.Tensor) -> float:
    """beta at creation: ``calibrate_beta`` (``beta_init=calibrated``) or 1 / sqrt(d)."""
    if cfg.beta_init == "inv_sqrt_d":
        return 1.0 / math.sqrt(embeddings.shape[1])
    return calibrate_beta(embeddings, cfg.snr_max, cfg.mask_weight)


class DSLDenoiser(nn.Module):
    kind = "dsl"
    fused_head = True      # forward(y, targets=, weights=) -> HeadLoss (dslm.diffusion.losses)
    #: ModelConfig fields only a DSL model has (a fine-tune from an MDLM sets them).
    OWN_FIELDS = ("embed_dim", "embed_seed", "freeze_embed", "snr_max", "mask_weight",
                  "beta_init", "norm_conditioning", "activation_checkpointing")

    @staticmethod
    def head_gemms(cfg: ModelConfig, tokens: int) -> list[tuple[int, int, int]]:
        """(M, K, N) of the matmuls outside the blocks: W_in [V+1 -> h] on the evidence,
        the evidence <y, E> [d -> V] and the output head [h -> V]."""
        v = cfg.vocab_size
        return [(tokens, cfg.hidden_size, v), (tokens, cfg.embed_dim, v), (tokens, v + 1, cfg.hidden_size)]

    @staticmethod
    def objective(schedule, train, eos_id: int | None = None):
        """``dsl_loss`` with the run's SNR schedule and recipe flags (``dslm.diffusion.losses``)."""
        from dslm.diffusion.losses import dsl_loss

        ignore_id = eos_id if train.loss_exclude_eos else None

        def dsl(model, x0, generator):
            return dsl_loss(model, x0, schedule, generator,
                            loss_on_revealed=train.loss_on_revealed, mix_lambda=train.mix_lambda,
                            ignore_id=ignore_id, mix_formula=train.mix_formula)
        return dsl

    def __init__(self, cfg: ModelConfig, embeddings: torch.Tensor | None = None):
        super().__init__()
        v, d = cfg.vocab_size, cfg.embed_dim
        if embeddings is None:
            gen = torch.Generator().manual_seed(cfg.embed_seed)
            embeddings = unit_sphere_embeddings(v, d, gen)
        else:
            if tuple(embeddings.shape) != (v, d):
                raise ValueError(f"embedding table {tuple(embeddings.shape)} != ({v}, {d})")
            embeddings = normalize_rows(embeddings.float())
        if cfg.input_beta <= 0:
            cfg = dataclasses.replace(cfg, input_beta=initial_beta(cfg, embeddings))
        self.config = cfg
        self.vocab_size = v
        self.snr_max = cfg.snr_max
        if cfg.freeze_embed:
            self.register_buffer("embed_directions", embeddings.clone())
        else:
            self.embed_directions = nn.Parameter(embeddings.clone())
        self.input_beta = nn.Parameter(torch.tensor(float(cfg.input_beta)))
        bias = torch.zeros(v + 1)
        bias[v] = _mask_bias(v, cfg.mask_weight)
        self.input_bias = nn.Parameter(bias)
        self.backbone = DiT(v + 1, v, cfg.hidden_size, cfg.n_blocks, cfg.n_heads, cfg.cond_dim,
                            cfg.mlp_ratio, cfg.dropout, causal=False,
                            activation_checkpointing=cfg.activation_checkpointing)

    @classmethod
    def from_tensors(cls, cfg: ModelConfig, tensors: dict) -> "DSLDenoiser":
        """The model for saved ``tensors``: the table E comes from the file, never from
        the seed, and beta is never re-calibrated (the file holds it)."""
        if "embed_directions" not in tensors:
            raise ValueError("checkpoint is missing tensor 'embed_directions'")
        if cfg.input_beta <= 0:
            cfg = dataclasses.replace(cfg, input_beta=1.0)
        return cls(cfg, embeddings=tensors["embed_directions"])

    @property
    def embeddings(self) -> torch.Tensor:
        """The unit-sphere table E [V, d] (rows re-normalised if trained)."""
        e = self.embed_directions
        return e if self.config.freeze_embed else F.normalize(e, dim=-1)

    def input_keys(self) -> torch.Tensor:
        """``beta K`` with K = [E; 0]: the V token keys and the all-zero [MASK] key, [V + 1, d]."""
        e = self.embeddings.float()
        return torch.cat([self.input_beta * e, e.new_zeros(1, e.shape[1])])

    def input_scores(self, y: torch.Tensor) -> torch.Tensor:
        """Converter scores ``beta y K^T + b`` over V + 1 slots: [B, L, d] -> [B, L, V + 1].

        One fused matmul-add; the [MASK] slot's score is b_mask (its key is 0).
        """
        flat = y.float().reshape(-1, y.shape[-1])
        scores = torch.addmm(self.input_bias, flat, self.input_keys().t())
        return scores.view(*y.shape[:-1], self.vocab_size + 1)

    def input_embedding(self, y: torch.Tensor) -> torch.Tensor:
        """h = softmax(converter scores) @ W_in: [B, L, d] -> [B, L, hidden].

        A fused function (``fused.soft_embedding``): the float32 softmax over V + 1 slots
        (padded to a multiple of 64) is recomputed in backward instead of kept.
        """
        w_in = self.backbone.vocab_embed.embedding
        # the residual stream keeps the weights' dtype (fp32) under autocast, as in MDLM
        return soft_embedding(y, self.input_keys(), self.input_bias, w_in)

    def forward(self, y: torch.Tensor, *, targets: torch.Tensor | None = None,
                weights: torch.Tensor | None = None):
        """Logits [B, L, V] of the clean tokens given y [B, L, d]; no time or SNR input.

        With ``targets`` x [B, L] and ``weights`` w [B, L]: a ``HeadLoss`` (sum_i w_i CE_i,
        CE [B, L]) from the fused head cross-entropy (no [B, L, V] logits kept).
        """
        sigma = None
        if self.config.norm_conditioning:
            sigma = torch.log1p(y.float().norm(dim=-1).mean(dim=-1))
        h = self.input_embedding(y)
        if targets is None:
            return self.backbone.forward_hidden(h, sigma)
        return HeadLoss(*self.backbone.head_cross_entropy(self.backbone.features(h, sigma),
                                                          targets, weights))
