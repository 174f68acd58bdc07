"""The masked-diffusion (MDLM) denoiser: token ids over V + [MASK] -> SUBS log-probs.

SUBS parameterisation (Sahoo et al. 2024): the [MASK] logit is set to -inf (the model
never predicts [MASK]), and an unmasked input token is carried over unchanged
(log-prob 0 on itself, -inf elsewhere). The time input is ``sigma_t`` of the
log-linear schedule when ``time_conditioning`` is on, zeros otherwise (the public
OpenWebText checkpoint was trained without it, so its adaLN outputs are constants).

``shared_embed_init = s > 0`` adds, at creation only, one random vector
``s * std(W) * u`` (u ~ N(0, I)) to every row of the input table W: every token then
carries a common, content-free component, so an attention head can score keys by
position alone (rotary) from the first step, instead of first having to align 4096
rarely-updated embedding rows. It shortens the tiny MDLM's unigram plateau
(docs/RECIPE.md); the weights it produces are ordinary weights (checkpoints unchanged).
"""

from __future__ import annotations

import torch
from torch import nn

from dslm.models.config import ModelConfig
from dslm.models.dit import DiT
from dslm.models.fused import HeadLoss

#: Finite stand-in for -inf in log-probs (as MDLM), so 0 * NEG_INF stays finite.
NEG_INF = -1e6


class MDLMDenoiser(nn.Module):
    kind = "mdlm"
    fused_head = True      # forward(x, sigma, targets=, weights=) -> HeadLoss

    @staticmethod
    def head_gemms(cfg: ModelConfig, tokens: int) -> list[tuple[int, int, int]]:
        """(M, K, N) of the output head [h -> V+1] (the [MASK] logit included)."""
        return [(tokens, cfg.hidden_size, cfg.vocab_size + 1)]

    @staticmethod
    def objective(schedule, train, eos_id: int | None = None):
        """``mdlm_loss``: the NELBO under the log-linear schedule with SUBS
        (``train.mdlm_weighting=flat`` trains on the masked-token mean CE; in eval mode,
        validation always reports the NELBO)."""
        from dslm.diffusion.losses import mdlm_loss

        def mdlm(model, x0, generator):
            weighting = train.mdlm_weighting if model.training else "nelbo"
            return mdlm_loss(model, x0, generator, weighting=weighting)
        return mdlm

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.vocab_size = cfg.vocab_size
        self.mask_id = cfg.vocab_size
        self.backbone = DiT(cfg.vocab_size + 1, cfg.vocab_size + 1, cfg.hidden_size,
                            cfg.n_blocks, cfg.n_heads, cfg.cond_dim, cfg.mlp_ratio,
                            cfg.dropout, causal=False,
                            activation_checkpointing=cfg.activation_checkpointing)
        if cfg.shared_embed_init > 0:
            table = self.backbone.vocab_embed.embedding
            with torch.no_grad():
                table += cfg.shared_embed_init * table.std() * torch.randn(table.shape[1])

    @property
    def uses_time(self) -> bool:
        return self.config.time_conditioning

    def logits(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        """Raw backbone logits [B, L, V + 1] for token ids x [B, L] (mask id = V)."""
        return self.backbone(x, sigma if self.uses_time else None)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None,
                *, targets: torch.Tensor | None = None, weights: torch.Tensor | None = None):
        """SUBS log-probs [B, L, V + 1] (float32) of the clean tokens given x_t.

        With ``targets`` x_0 and ``weights`` w [B, L]: a ``HeadLoss`` (sum_i w_i CE_i, CE)
        where CE_i = -log p(x_0i | x_t) over the V real tokens ([MASK] has probability 0,
        as in SUBS), from the fused head cross-entropy. It equals the SUBS log-prob at
        masked positions; at unmasked ones SUBS gives 0, so w must be 0 there.
        """
        if targets is not None:
            bb = self.backbone
            feats = bb.features(bb.vocab_embed(x), sigma if self.uses_time else None)
            return HeadLoss(*bb.head_cross_entropy(feats, targets, weights, self.vocab_size))
        logits = self.logits(x, sigma).float()
        logits[..., self.mask_id] = NEG_INF
        logp = torch.log_softmax(logits, dim=-1)
        unmasked = (x != self.mask_id)
        if bool(unmasked.any()):
            carry = torch.full_like(logp, NEG_INF)
            carry.scatter_(-1, x.unsqueeze(-1), 0.0)
            logp = torch.where(unmasked.unsqueeze(-1), carry, logp)
        return logp
