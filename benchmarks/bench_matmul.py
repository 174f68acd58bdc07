"""The machine's achievable matmul peak on a model's own GEMM shapes.

    python benchmarks/bench_matmul.py [--preset tiny|small] [--kind dsl|mdlm] [--device auto]

fp32 on CPU, bf16 on GPU. Also prints a large square GEMM for reference; the ratio
"model shapes / square" says how much the model's shapes leave on the table.
"""

from __future__ import annotations

import argparse

import torch

from _common import pick_device, table, write_result
from dslm.models.config import preset
from dslm.perf import gemm_shapes, matmul_peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=None, help="tiny (CPU default) or small (GPU default)")
    ap.add_argument("--kind", default="dsl", choices=["dsl", "mdlm", "ar"])
    ap.add_argument("--vocab-size", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = pick_device(args.device)
    name = args.preset or ("small" if device.type == "cuda" else "tiny")
    extra = {"vocab_size": args.vocab_size} if args.vocab_size else ({"vocab_size": 4096} if name == "tiny" else {})
    cfg = preset(name, kind=args.kind, **extra)
    batch = args.batch_size or (64 if device.type == "cuda" else 16)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    tokens = batch * cfg.seq_len
    model_peak = matmul_peak(gemm_shapes(cfg, tokens), device, dtype)
    n = 4096 if device.type == "cuda" else 1024
    square = matmul_peak([(n, n, n)], device, dtype)
    rows = [{"gemms": f"{name} {args.kind} model shapes ({tokens} rows)", "GFLOP/s": f"{model_peak / 1e9:.1f}"},
            {"gemms": f"square {n}^3", "GFLOP/s": f"{square / 1e9:.1f}"}]
    print(f"device {device}, dtype {dtype}")
    print(table(rows, ["gemms", "GFLOP/s"]))
    print(f"ratio model-shapes / square: {model_peak / square:.2f}")
    path = write_result("matmul", {"device": str(device), "dtype": str(dtype), "preset": name,
                                   "kind": args.kind, "tokens": tokens, "model_peak_flops": model_peak,
                                   "square_peak_flops": square})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
