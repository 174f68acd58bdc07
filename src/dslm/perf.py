"""Model FLOPs and the machine's matmul peak, for throughput and MFU figures.

Model FLOPs per token (forward), for hidden H, L tokens, n blocks, |V| outputs:

    blocks:   n * (2 * 12 H^2          # qkv (3H^2), out (H^2), MLP (8H^2) multiply-adds
                   + 4 L H)             # attention scores Q K^T and the weighted sum A V
    head:     2 H V_out
    DSL input converter: 2 d V (evidence y E^T) + 2 (V + 1) H (soft embedding p W_in)

A training step costs 3x the forward (forward + backward through activations and
weights). MFU = achieved model FLOP/s / peak FLOP/s, where the peak is measured on
the model's own GEMM shapes (``matmul_peak``), the best a perfect implementation of
these matmuls reaches on this machine.
"""

from __future__ import annotations

import time

import torch

from dslm.models.config import ModelConfig


def forward_flops_per_token(cfg: ModelConfig, seq_len: int | None = None) -> float:
    """Forward FLOPs per token of the model described by ``cfg`` (attention included)."""
    h, v = cfg.hidden_size, cfg.vocab_size
    length = seq_len or cfg.seq_len
    ratio = cfg.mlp_ratio
    per_block = 2 * (4 + 2 * ratio) * h * h + 4 * length * h
    out_dim = v + 1 if cfg.kind == "mdlm" else v
    flops = cfg.n_blocks * per_block + 2 * h * out_dim
    if cfg.kind == "dsl":
        flops += 2 * cfg.embed_dim * v + 2 * (v + 1) * h
    return float(flops)


def train_flops_per_token(cfg: ModelConfig, seq_len: int | None = None) -> float:
    return 3.0 * forward_flops_per_token(cfg, seq_len)


def gemm_shapes(cfg: ModelConfig, tokens: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of the model's matmuls for ``tokens`` rows (one forward)."""
    h, v = cfg.hidden_size, cfg.vocab_size
    shapes = [(tokens, h, 3 * h), (tokens, h, h), (tokens, h, cfg.mlp_ratio * h),
              (tokens, cfg.mlp_ratio * h, h)] * cfg.n_blocks
    shapes.append((tokens, h, v + 1 if cfg.kind == "mdlm" else v))
    if cfg.kind == "dsl":
        shapes += [(tokens, cfg.embed_dim, v), (tokens, v + 1, h)]
    return shapes


def sync(device: torch.device) -> None:
    """Wait for queued GPU work (timing); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(shapes: list[tuple[int, int, int]], device: str | torch.device = "cpu",
                dtype: torch.dtype = torch.float32, min_seconds: float = 1.0) -> float:
    """Measured FLOP/s of running the GEMMs ``shapes`` back to back (best of repeats)."""
    device = torch.device(device)
    mats = [(torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype))
            for m, k, n in shapes]
    flops = sum(2.0 * m * k * n for m, k, n in shapes)
    for a, b in mats:  # warm-up
        a @ b
    sync(device)
    best, spent = float("inf"), 0.0
    while spent < min_seconds:
        t0 = time.perf_counter()
        for a, b in mats:
            a @ b
        sync(device)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return flops / best
