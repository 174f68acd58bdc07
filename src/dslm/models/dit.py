"""The Diffusion Transformer backbone shared by the DSL, MDLM and AR models.

Pre-norm transformer blocks with rotary position embeddings (rotate-half, base 10000,
queries and keys only), attention through ``scaled_dot_product_attention``
(bidirectional, or causal for the AR model), a 4x tanh-GELU MLP, and adaLN-zero
modulation of every norm by a conditioning vector ``c = SiLU(sigma_map(sigma))``.
With no time input ``sigma = 0`` and every adaLN output is a learned constant.

Parameter names follow MDLM's DiT (``vocab_embed.embedding``, ``sigma_map.mlp.*``,
``blocks.{i}.attn_qkv.weight``, ``output_layer.linear.*``, ...) so the public MDLM
checkpoint maps onto it one to one (see ``dslm.models.mdlm_import``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from dslm.models.fused import gelu_linear, linear_cross_entropy, padded_linear


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation ``x * (1 + scale) + shift`` (shift, scale broadcast over L)."""
    return torch.addcmul(shift, x, 1 + scale)


class LayerNorm(nn.Module):
    """LayerNorm with a weight and no bias, computed in float32 (as MDLM)."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = F.layer_norm(x.float(), (self.dim,), self.weight.float())
        return out.to(x.dtype) if x.dtype != torch.float32 else out


class Rotary(nn.Module):
    """Rotary position embedding tables, cached per sequence length."""

    def __init__(self, head_dim: int, base: float = 10_000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._cache: tuple[int, torch.device, torch.Tensor, torch.Tensor] | None = None

    def forward(self, seq_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        c = self._cache
        if c is None or c[0] != seq_len or c[1] != device:
            t = torch.arange(seq_len, device=device, dtype=torch.float32)
            freqs = torch.outer(t, self.inv_freq.to(device))
            emb = torch.cat((freqs, freqs), dim=-1)            # [L, head_dim]
            c = (seq_len, device, emb.cos()[None, None], emb.sin()[None, None])
            self._cache = c
        return c[2], c[3]


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` [..., L, Dh] by the position tables [L, Dh] (rotate-half layout)."""
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of a scalar time (256 wide), then a 2-layer SiLU MLP."""

    def __init__(self, cond_dim: int, frequency_size: int = 256):
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(nn.Linear(frequency_size, cond_dim), nn.SiLU(),
                                 nn.Linear(cond_dim, cond_dim))

    @staticmethod
    def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
        half = dim // 2
        freqs = torch.exp(-math.log(max_period)
                          * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t[:, None].float() * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.timestep_embedding(t, self.frequency_size))


class DiTBlock(nn.Module):
    """``x + gate * Attn(modulate(norm1(x)))``, then ``x + gate * MLP(modulate(norm2(x)))``."""

    def __init__(self, dim: int, n_heads: int, cond_dim: int, mlp_ratio: int = 4,
                 dropout: float = 0.0, causal: bool = False):
        super().__init__()
        self.n_heads = n_heads
        self.causal = causal
        self.dropout = dropout
        self.norm1 = LayerNorm(dim)
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.norm2 = LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(approximate="tanh"),
                                 nn.Linear(mlp_ratio * dim, dim))
        self.adaLN_modulation = nn.Linear(cond_dim, 6 * dim)
        nn.init.zeros_(self.adaLN_modulation.weight)
        nn.init.zeros_(self.adaLN_modulation.bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                c: torch.Tensor) -> torch.Tensor:
        b, length, dim = x.shape
        mod = self.adaLN_modulation(c)[:, None].to(x.dtype)   # [B or 1, 1, 6 dim]
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = mod.chunk(6, dim=-1)

        h = modulate(self.norm1(x), shift_a, scale_a)
        qkv = self.attn_qkv(h).view(b, length, 3, self.n_heads, dim // self.n_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)                          # [3, B, H, L, Dh]
        qk = apply_rotary(qkv[:2], cos, sin)                      # q and k in one pass
        # a copy of v: attention keeps it for backward, and a view would keep all of qkv
        v = qkv[2].contiguous()
        a = F.scaled_dot_product_attention(qk[0], qk[1], v, is_causal=self.causal)
        a = a.transpose(1, 2).reshape(b, length, dim)
        x = torch.addcmul(x, gate_a, self._dropout(self.attn_out(a)))

        h = modulate(self.norm2(x), shift_m, scale_m)
        return torch.addcmul(x, gate_m, self._dropout(self._mlp(h)))

    def _mlp(self, h: torch.Tensor) -> torch.Tensor:
        """``self.mlp(h)`` keeping only the first layer's output for backward (fused.gelu_linear)."""
        fc1, fc2 = self.mlp[0], self.mlp[2]
        return gelu_linear(fc1(h), fc2.weight, fc2.bias)

    def _dropout(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.dropout, True) if self.training and self.dropout > 0 else x


class FinalLayer(nn.Module):
    """``linear(modulate(norm_final(x)))`` -> logits (zero-initialised, as MDLM).

    The linear head runs padded to a multiple of 64 outputs (``fused.padded_linear``).
    """

    def __init__(self, dim: int, out_dim: int, cond_dim: int):
        super().__init__()
        self.norm_final = LayerNorm(dim)
        self.linear = nn.Linear(dim, out_dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.adaLN_modulation = nn.Linear(cond_dim, 2 * dim)
        nn.init.zeros_(self.adaLN_modulation.weight)
        nn.init.zeros_(self.adaLN_modulation.bias)

    def features(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The head's input ``modulate(norm_final(x))`` [B, L, hidden]."""
        shift, scale = self.adaLN_modulation(c)[:, None].to(x.dtype).chunk(2, dim=-1)
        return modulate(self.norm_final(x), shift, scale)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return padded_linear(self.features(x, c), self.linear.weight, self.linear.bias)


class EmbeddingLayer(nn.Module):
    """Input embedding matrix [in_vocab, hidden]; looked up by id or mixed by a soft reading."""

    def __init__(self, dim: int, vocab: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(vocab, dim))
        nn.init.kaiming_uniform_(self.embedding, a=math.sqrt(5))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding[ids]


class DiT(nn.Module):
    """Backbone: input embedding table, blocks, final adaLN layer and linear head.

    ``forward_hidden(h, sigma)`` runs the blocks on input vectors h [B, L, hidden]
    (token embeddings, or the DSL converter's expected embedding) and returns logits
    [B, L, out_dim]. ``sigma`` [B] is the time input; ``None`` means zeros.
    """

    def __init__(self, in_vocab: int, out_dim: int, hidden_size: int, n_blocks: int,
                 n_heads: int, cond_dim: int, mlp_ratio: int = 4, dropout: float = 0.0,
                 causal: bool = False, activation_checkpointing: bool = False):
        super().__init__()
        self.hidden_size = hidden_size
        self.activation_checkpointing = activation_checkpointing
        self.vocab_embed = EmbeddingLayer(hidden_size, in_vocab)
        self.sigma_map = TimestepEmbedder(cond_dim)
        self.rotary_emb = Rotary(hidden_size // n_heads)
        self.blocks = nn.ModuleList(
            DiTBlock(hidden_size, n_heads, cond_dim, mlp_ratio, dropout, causal)
            for _ in range(n_blocks))
        self.output_layer = FinalLayer(hidden_size, out_dim, cond_dim)

    def condition(self, sigma: torch.Tensor | None, device: torch.device) -> torch.Tensor:
        """``c = SiLU(sigma_map(sigma))``; with no time input one row serves the batch."""
        if sigma is None:
            sigma = torch.zeros(1, device=device)
        return F.silu(self.sigma_map(sigma))

    def forward_hidden(self, h: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        return self._blocks(h, sigma, self.output_layer)

    def features(self, h: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        """The output head's input [B, L, hidden] (``forward_hidden`` = head(features))."""
        return self._blocks(h, sigma, self.output_layer.features)

    def _blocks(self, h: torch.Tensor, sigma: torch.Tensor | None, final) -> torch.Tensor:
        c = self.condition(sigma, h.device)
        cos, sin = self.rotary_emb(h.shape[1], h.device)
        for block in self.blocks:
            if self.activation_checkpointing and self.training:
                h = _checkpoint(block, h, cos, sin, c, use_reentrant=False)
            else:
                h = block(h, cos, sin, c)
        return final(h, c)

    def head_cross_entropy(self, features: torch.Tensor, targets: torch.Tensor,
                           weights: torch.Tensor, classes: int | None = None):
        """``(sum_i w_i CE_i, CE [B, L])`` of the head on ``features`` (fused.linear_cross_entropy):
        the [B, L, V] logits are never materialised."""
        head = self.output_layer.linear
        return linear_cross_entropy(features, head.weight, head.bias, targets, weights, classes)

    def forward(self, ids: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_hidden(self.vocab_embed(ids), sigma)
