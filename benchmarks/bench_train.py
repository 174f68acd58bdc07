"""Training throughput and model FLOPs utilisation (MFU), measured in one run.

    python benchmarks/bench_train.py [--preset tiny|small] [--kind dsl|mdlm|ar]
                                     [--batch-size B] [--steps N] [--compile]

Each step is what ``dslm.train`` does per optimizer step: forward under autocast
(bf16 on GPU, fp32 on CPU), backward, gradient clipping, fused AdamW where
available. MFU = model FLOPs/s (``dslm.perf.train_flops_per_token``, attention
included) / the matmul peak measured on the model's own GEMM shapes in this run.
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import pick_device, table, write_result
from dslm.diffusion.losses import ar_loss, dsl_loss, mdlm_loss
from dslm.diffusion.schedules import ScheduleConfig
from dslm.models import build_model
from dslm.models.config import preset
from dslm.perf import gemm_shapes, matmul_peak, sync, train_flops_per_token


def make_step(model, kind: str, device: torch.device, use_amp: bool):
    sched = ScheduleConfig()
    params = [p for p in model.parameters() if p.requires_grad]
    fused = device.type == "cuda"
    opt = torch.optim.AdamW(params, lr=3e-4, fused=fused) if fused else torch.optim.AdamW(params, lr=3e-4)
    gen = torch.Generator(device=device).manual_seed(0)

    def step(x):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            if kind == "dsl":
                out = dsl_loss(model, x, sched, gen)
            elif kind == "mdlm":
                out = mdlm_loss(model, x, gen)
            else:
                out = ar_loss(model, x)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=None)
    ap.add_argument("--kind", default="all", choices=["all", "dsl", "mdlm", "ar"])
    ap.add_argument("--vocab-size", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = ap.parse_args()
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    name = args.preset or ("small" if gpu else "tiny")
    batch = args.batch_size or (64 if gpu else 16)
    steps = args.steps or (20 if gpu else 10)
    kinds = ["dsl", "mdlm", "ar"] if args.kind == "all" else [args.kind]
    rows, results = [], []
    peak = None
    for kind in kinds:
        extra = {"vocab_size": args.vocab_size} if args.vocab_size else ({"vocab_size": 4096} if name == "tiny" else {})
        cfg = preset(name, kind=kind, dropout=0.0, **extra)
        if peak is None:
            peak = matmul_peak(gemm_shapes(cfg, batch * cfg.seq_len), device,
                               torch.bfloat16 if gpu else torch.float32)
        torch.manual_seed(0)
        model = build_model(cfg).to(device).train()
        if args.compile:
            model = torch.compile(model)
        step = make_step(model, kind, device, use_amp=gpu)
        x = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), device=device)
        for _ in range(3):
            step(x)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = step(x)
        sync(device)
        dt = (time.perf_counter() - t0) / steps
        tok_s = batch * cfg.seq_len / dt
        flops = tok_s * train_flops_per_token(cfg)
        row = {"kind": kind, "preset": name, "batch": batch, "seq": cfg.seq_len,
               "tokens/s": f"{tok_s:,.0f}", "TFLOP/s": f"{flops / 1e12:.3f}",
               "MFU": f"{flops / peak:.1%}", "loss": f"{float(loss):.3f}"}
        rows.append(row)
        results.append({"kind": kind, "tokens_per_s": tok_s, "model_flops_per_s": flops,
                        "mfu": flops / peak, "step_seconds": dt})
        del model
    print(f"device {device}; matmul peak on the model's shapes: {peak / 1e9:.1f} GFLOP/s")
    print(table(rows, ["kind", "preset", "batch", "seq", "tokens/s", "TFLOP/s", "MFU", "loss"]))
    path = write_result("train", {"device": str(device), "preset": name, "batch": batch,
                                  "compile": args.compile, "peak_flops": peak, "runs": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
