"""Activation memory of one training step: bytes saved for backward per sequence.

    python benchmarks/bench_memory.py [--preset small] [--seq-len 1024] [--kinds dsl,mdlm,ar]
                                      [--device cpu|cuda] [--bf16] [--batch-size B] [--out DIR]

For each model kind: the objective's forward (as ``dslm.train`` runs it) at batch 1 and
2, and the bytes autograd keeps for backward counted exactly with saved-tensors hooks
(each storage once, parameters and buffers excluded: ``dslm.perf.saved_tensor_bytes``).
``per_seq`` = bytes(2) - bytes(1) (what each extra sequence costs); ``fixed`` = bytes(1)
- per_seq (batch-independent, e.g. the fused head's weight-sized gradient). The largest
batch that fits in ``--gpu-gib`` (80) GiB: (capacity - state - fixed) / per_seq, with
state = 20 bytes per parameter (fp32 weights, gradients, AdamW's two moments, EMA).
Defaults: CPU, float32 (``--bf16``: under bf16 autocast, as training on a GPU).
On CUDA (``--device cuda``) it also runs full training steps (forward, backward, fused
AdamW) at ``--batch-size`` and reports ``torch.cuda.max_memory_allocated``.
Writes ``benchmarks/results/memory-<timestamp>.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import model_config, pick_device, table, training_loss, write_result
from dslm.models import build_model, count_parameters
from dslm.perf import saved_tensor_bytes

GIB = 2 ** 30


def saved_bytes(model, kind: str, batch: int, seq_len: int, device, bf16: bool) -> int:
    vocab = model.config.vocab_size
    x = torch.randint(0, vocab, (batch, seq_len), generator=torch.Generator().manual_seed(0)).to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def forward():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return training_loss(model, kind, x, gen).loss

    return saved_tensor_bytes(forward, model)


def cuda_peak(model, kind: str, batch: int, seq_len: int, device) -> dict:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=True)
    x = torch.randint(0, model.config.vocab_size, (batch, seq_len), device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    try:
        for _ in range(2):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = training_loss(model, kind, x, gen).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        return {"cuda_batch": batch, "cuda_peak_gib": round(peak / GIB, 3),
                "cuda_base_gib": round(base / GIB, 3)}
    except torch.cuda.OutOfMemoryError:
        return {"cuda_batch": batch, "cuda_peak_gib": "OOM"}
    finally:
        del opt
        model.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument("--kinds", default="dsl,mdlm,ar")
    ap.add_argument("--seq-len", type=int, default=None, help="default: the preset's (1024 for small)")
    ap.add_argument("--vocab-size", type=int, default=None)
    ap.add_argument("--hidden-size", type=int, default=None)
    ap.add_argument("--n-blocks", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="count under bf16 autocast")
    ap.add_argument("--batch-size", type=int, default=64, help="batch of the CUDA peak-memory steps")
    ap.add_argument("--gpu-gib", type=float, default=80.0)
    ap.add_argument("--out", default=None, help="results folder or .json file")
    args = ap.parse_args()
    device = pick_device(args.device)
    bf16 = args.bf16 or device.type == "cuda"
    rows, results = [], []
    for kind in [k.strip() for k in args.kinds.split(",") if k.strip()]:
        overrides = {k: v for k, v in (("hidden_size", args.hidden_size), ("n_blocks", args.n_blocks))
                     if v}
        if args.hidden_size:
            overrides["n_heads"] = max(1, args.hidden_size // 64)
        cfg = model_config(args.preset, kind, args.vocab_size, **overrides)
        seq_len = args.seq_len or cfg.seq_len
        torch.manual_seed(0)
        model = build_model(cfg).to(device).train()
        t0 = time.perf_counter()
        one = saved_bytes(model, kind, 1, seq_len, device, bf16)
        two = saved_bytes(model, kind, 2, seq_len, device, bf16)
        per_seq, fixed = two - one, 2 * one - two
        n_params = count_parameters(model)
        state = 20 * n_params
        fits = int((args.gpu_gib * GIB - state - fixed) // per_seq) if per_seq > 0 else None
        res = {"kind": kind, "seq_len": seq_len, "saved_batch1_bytes": one, "saved_batch2_bytes": two,
               "per_seq_bytes": per_seq, "fixed_bytes": fixed, "params": n_params,
               "state_bytes": state, "max_batch_in_gpu": fits, "seconds": time.perf_counter() - t0}
        if device.type == "cuda":
            res.update(cuda_peak(model, kind, args.batch_size, seq_len, device))
        results.append(res)
        rows.append({"kind": kind, "L": seq_len, "batch 1 GiB": f"{one / GIB:.3f}",
                     "per seq GiB": f"{per_seq / GIB:.3f}", "fixed GiB": f"{fixed / GIB:.3f}",
                     f"max batch ({args.gpu_gib:g} GiB)": fits,
                     **({"cuda peak GiB": res.get("cuda_peak_gib")} if device.type == "cuda" else {})})
        print(table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
        if (args.out or "").endswith(".json"):           # a timeout keeps the rows so far
            write_result("memory", {"device": str(device), "preset": args.preset, "bf16": bf16,
                                    "runs": results}, args.out)
        del model
    print(f"device {device}, {'bf16 autocast' if bf16 else 'float32'}, preset {args.preset}")
    print(table(rows, list(rows[0])))
    path = write_result("memory", {"device": str(device), "preset": args.preset, "bf16": bf16,
                                   "runs": results}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
