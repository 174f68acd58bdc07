"""Causal (autoregressive) language model on the same backbone.

It is the offline judge for generative perplexity, the MAUVE featurizer for offline
work, and the AR baseline row of every sweep. ``forward(x)`` returns logits [B, L, V]
where position i predicts ``x_i`` from ``x_{<i}``: the input is shifted right by one
and starts with a learned BOS slot (id V), so every token of x is scored.
"""

from __future__ import annotations

import torch
from torch import nn

from dslm.models.config import ModelConfig
from dslm.models.dit import DiT
from dslm.models.fused import HeadLoss


class ARModel(nn.Module):
    kind = "ar"
    fused_head = True      # forward(x, targets=, weights=) -> HeadLoss

    @staticmethod
    def head_gemms(cfg: ModelConfig, tokens: int) -> list[tuple[int, int, int]]:
        """(M, K, N) of the output head [h -> V]."""
        return [(tokens, cfg.hidden_size, cfg.vocab_size)]

    @staticmethod
    def objective(schedule, train, eos_id: int | None = None):
        """``ar_loss``: next-token NLL."""
        from dslm.diffusion.losses import ar_loss

        return lambda model, x0, generator: ar_loss(model, x0, generator)

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.vocab_size = cfg.vocab_size
        self.bos_id = cfg.vocab_size
        self.backbone = DiT(cfg.vocab_size + 1, cfg.vocab_size, cfg.hidden_size, cfg.n_blocks,
                            cfg.n_heads, cfg.cond_dim, cfg.mlp_ratio, cfg.dropout, causal=True,
                            activation_checkpointing=cfg.activation_checkpointing)

    def shift_right(self, x: torch.Tensor) -> torch.Tensor:
        bos = torch.full_like(x[:, :1], self.bos_id)
        return torch.cat([bos, x[:, :-1]], dim=1)

    def forward(self, x: torch.Tensor, *, targets: torch.Tensor | None = None,
                weights: torch.Tensor | None = None):
        """Next-token logits [B, L, V]: logits[:, i] scores x[:, i] given x[:, :i].

        With ``targets`` and ``weights`` [B, L]: a ``HeadLoss`` (sum_i w_i CE_i, CE [B, L])
        from the fused head cross-entropy (targets = x for the next-token NLL).
        """
        if targets is None:
            return self.backbone(self.shift_right(x))
        bb = self.backbone
        feats = bb.features(bb.vocab_embed(self.shift_right(x)))
        return HeadLoss(*bb.head_cross_entropy(feats, targets, weights))

    def hidden_features(self, x: torch.Tensor) -> torch.Tensor:
        """Final-norm hidden states [B, L, hidden] of the causal model given all of x.

        Position i has read x_{<=i}; the last position is a sequence feature (MAUVE).
        """
        bb = self.backbone
        h = bb.vocab_embed(torch.cat([torch.full_like(x[:, :1], self.bos_id), x], dim=1))
        c = bb.condition(None, h.device)
        cos, sin = bb.rotary_emb(h.shape[1], h.device)
        for block in bb.blocks:
            h = block(h, cos, sin, c)
        return bb.output_layer.norm_final(h)[:, 1:]

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """Per-token log p(x_i | x_<i) [B, L] (float32)."""
        logp = torch.log_softmax(self(x).float(), dim=-1)
        return logp.gather(-1, x.unsqueeze(-1)).squeeze(-1)
