"""Training throughput and model FLOPs utilisation (MFU), measured in one run.

    python benchmarks/bench_train.py [--preset tiny|small] [--kind all|dsl|mdlm|ar]
                                     [--batch-size 16,32,64] [--steps N] [--warmup W]
                                     [--compile auto|on|off] [--compile-scope blocks|model]
                                     [--device auto] [--out DIR]

Each step is what ``dslm.train`` does per optimizer step: the objective's forward
under autocast (bf16 on GPU, fp32 on CPU), backward, gradient clipping, AdamW built
by ``dslm.train.optim.build_optimizer`` (fused where training uses it), TF32 matmuls
on GPU as training sets them, ``torch.compile`` as training does (``auto``: as
``train.compile``; scope ``blocks`` (each transformer block) or ``model`` as
``train.compile_scope``; ``DSLM_TRAIN_ROWS`` is recorded in the JSON),
the CPU allocator setting of ``dslm.train.cpu_memory`` on a CPU (where the tree under
test has it).

MFU = model FLOP/s (``dslm.perf.train_flops_per_token``, attention included) divided
by (a) the hardware's dense bf16 spec (``dslm.perf.spec_peak``: H100 / H200 989, A100
312 TFLOP/s; GPUs only) and (b) a large square matmul measured in this run (bf16 on
GPU, fp32 on CPU; the only denominator on a CPU). The throughput of the model's own
GEMM shapes is printed as extra information ("shape-bound"), not as MFU.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from _common import model_config, pick_device, table, training_loss, write_result
from dslm.models import build_model
from dslm.perf import (compile_enabled, compile_model, compile_scope, gemm_shapes, matmul_peak,
                       spec_peak, square_peak, sync, train_flops_per_token)


def make_step(model, kind: str, device: torch.device, use_amp: bool, compiled: bool,
              backend: str = "inductor", scope: str = "blocks"):
    from dslm.train.config import TrainConfig
    from dslm.train.optim import build_optimizer

    if device.type == "cpu":
        try:                            # the CPU allocator setting dslm.train applies (if the tree has it)
            from dslm.train.cpu_memory import keep_freed_memory
        except ImportError:
            pass
        else:
            keep_freed_memory()
    opt, _ = build_optimizer(model, TrainConfig(lr=3e-4), device)
    params = [p for p in model.parameters() if p.requires_grad]
    forward = compile_model(model, scope, backend=backend) if compiled else model
    gen = torch.Generator(device=device).manual_seed(0)

    def step(x):
        # compiled: check each loss and gradient norm before the optimizer step (one host
        # sync per step); the first non-finite one is located (benchmarks/_nan_locator.py)
        # while the parameters are still those that gave it. (A check of the loss alone
        # fired one step late on an H100, 2026-11-27: the loss was finite, the compiled
        # gradients were not, and the optimizer step had already spread the NaN.)
        state = gen.get_state() if step.check else None
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = training_loss(View(forward, model), kind, x, gen)
        out.loss.backward()
        if step.check and not _finite_step(out.loss, params):
            from _nan_locator import locate

            step.check = False
            step.nan_report = locate(model, lambda m, xb, g: training_loss(View(m, model), kind, xb, g),
                                     x, gen, state, out.loss.detach(), use_amp, device,
                                     backend=backend)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return out.loss

    step.check = compiled and not getattr(make_step, "no_check", False)
    step.nan_report = None
    step.fused = any(g.get("fused") for g in opt.param_groups)
    step.model = model
    return step


def _finite_step(loss: torch.Tensor, params) -> bool:
    """Loss and every gradient finite (one host sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack(torch._foreach_norm(grads)) if grads else loss.new_zeros(1)
    return bool(torch.isfinite(loss.detach()) & torch.isfinite(norms).all())


class View:
    """The model as the losses see it: calls through ``forward`` (maybe compiled),
    attributes from the raw model (as ``dslm.train.objectives.TrainingView``)."""

    def __init__(self, forward, raw):
        self._forward, self._raw = forward, raw

    def __call__(self, *args, **kwargs):
        return self._forward(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._raw, name)


def run_batch(step, cfg, kind: str, batch: int, steps: int, warmup: int, device, gpu: bool,
              compiled: bool) -> dict:
    x = torch.randint(0, cfg.vocab_size, (batch, cfg.seq_len), device=device)
    t_warm = time.perf_counter()
    for _ in range(warmup):
        step(x)
    sync(device)
    warm_s = time.perf_counter() - t_warm
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        loss = step(x)
    sync(device)
    dt = (time.perf_counter() - t0) / steps
    cpu_dt = (time.process_time() - c0) / steps        # this process's CPU seconds (shared machines)
    out = {"kind": kind, "batch": batch, "seq_len": cfg.seq_len, "compile": compiled,
           "fused_adamw": step.fused, "step_seconds": dt, "warmup_seconds": warm_s,
           "tokens_per_s": batch * cfg.seq_len / dt, "cpu_seconds_per_step": cpu_dt,
           "tokens_per_cpu_s": batch * cfg.seq_len / cpu_dt, "loss": float(loss.detach())}
    if gpu:
        out["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    if getattr(step, "nan_report", None) is not None:
        out["nan_locator"], step.nan_report = step.nan_report, None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=None)
    ap.add_argument("--kind", default="all", choices=["all", "dsl", "mdlm", "ar"])
    ap.add_argument("--vocab-size", type=int, default=None)
    ap.add_argument("--hidden-size", type=int, default=None)
    ap.add_argument("--n-blocks", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--batch-size", default=None, help="one or more, comma-separated")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                    help="torch.compile the model (auto: as training, on GPU only)")
    ap.add_argument("--backend", default="inductor", help="torch.compile backend (aot_eager: a CPU smoke test)")
    ap.add_argument("--compile-scope", default=None, choices=["blocks", "model"],
                    help="what is compiled: each transformer block (default, as training) or the whole model")
    ap.add_argument("--peak-seconds", type=float, default=1.0, help="time spent on each matmul peak")
    ap.add_argument("--out", default=None, help="results folder or .json file")
    args = ap.parse_args()
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    if gpu:
        torch.set_float32_matmul_precision("high")            # TF32, as dslm.train sets it
    compiled = {"on": True, "off": False}.get(args.compile, compile_enabled(device))
    scope = compile_scope(args.compile_scope)
    name = args.preset or ("small" if gpu else "tiny")
    batches = [int(b) for b in (args.batch_size or ("64" if gpu else "16")).split(",")]
    steps = args.steps or (20 if gpu else 10)
    kinds = ["dsl", "mdlm", "ar"] if args.kind == "all" else [args.kind]
    dtype = torch.bfloat16 if gpu else torch.float32
    square = square_peak(device, dtype, min_seconds=args.peak_seconds)
    spec = spec_peak(torch.cuda.get_device_name(device)) if gpu else None
    rows, results = [], []
    columns = ["kind", "preset", "batch", "seq", "compile", "tokens/s", "TFLOP/s", "MFU spec",
               "MFU square", "shape-bound", "GiB", "loss"]

    def save():
        return write_result("train", {"device": str(device), "preset": name, "batches": batches,
                                      "compile": compiled, "compile_scope": scope if compiled else None,
                                      "train_rows": os.environ.get("DSLM_TRAIN_ROWS", "auto"),
                                      "square_peak_flops": square,
                                      "spec_peak_flops": spec, "steps": steps, "warmup": args.warmup,
                                      "runs": results}, out)

    out = args.out if (args.out or "").endswith(".json") else None
    setups = {}

    def setup(kind):
        """(config, shape-bound peak, step) of ``kind``: one model per kind for every batch size."""
        if kind not in setups:
            overrides = {k: v for k, v in (("hidden_size", args.hidden_size),
                                             ("n_blocks", args.n_blocks), ("seq_len", args.seq_len)) if v}
            if args.hidden_size:
                overrides["n_heads"] = max(1, args.hidden_size // 64)
            cfg = model_config(name, kind, args.vocab_size, **overrides)
            shape_peak = matmul_peak(gemm_shapes(cfg, batches[0] * cfg.seq_len), device, dtype,
                                     min_seconds=args.peak_seconds / 2)
            torch.manual_seed(0)
            model = build_model(cfg).to(device).train()
            setups[kind] = (cfg, shape_peak, make_step(model, kind, device, gpu, compiled, args.backend,
                                                                scope))
        return setups[kind]

    # batch-major: every kind at the first batch size before the next (a timeout keeps the most)
    for batch in batches:
        for kind in kinds:
            cfg, shape_peak, step = setup(kind)
            if gpu:
                torch.cuda.reset_peak_memory_stats(device)
            try:
                res = run_batch(step, cfg, kind, batch, steps, args.warmup, device, gpu, compiled)
            except torch.cuda.OutOfMemoryError as e:
                step.model.zero_grad(set_to_none=True)
                res = {"kind": kind, "batch": batch, "seq_len": cfg.seq_len, "compile": compiled,
                       "error": f"CUDA out of memory ({str(e).splitlines()[0][:160]})"}
            if gpu:
                torch.cuda.empty_cache()
            row = {"kind": kind, "preset": name, "batch": batch, "seq": cfg.seq_len,
                   "compile": scope if compiled else "off"}
            if "error" in res:
                rows.append({**row, "tokens/s": "OOM"})
                results.append(res)
            else:
                flops = res["tokens_per_s"] * train_flops_per_token(cfg)
                res.update(model_flops_per_s=flops, mfu_square=flops / square,
                           mfu_spec=flops / spec if spec else None, shape_bound=flops / shape_peak,
                           shape_peak_flops=shape_peak)
                results.append(res)
                rows.append({**row, "tokens/s": f"{res['tokens_per_s']:,.0f}",
                             "TFLOP/s": f"{flops / 1e12:.3f}",
                             "MFU spec": f"{flops / spec:.1%}" if spec else "-",
                             "MFU square": f"{flops / square:.1%}",
                             "shape-bound": f"{flops / shape_peak:.1%}",
                             "GiB": f"{res['max_memory_gib']:.1f}" if gpu else "-",
                             "loss": f"{res['loss']:.3f}"})
            print(table(rows[-1:], columns).splitlines()[-1], flush=True)
            if out:
                save()                                   # a timeout keeps the rows so far
    print(f"device {device} ({torch.cuda.get_device_name(device) if gpu else 'cpu'}); "
          f"square-matmul peak {square / 1e12:.3f} TFLOP/s ({dtype}); "
          f"spec {spec / 1e12 if spec else '-'} TFLOP/s")
    print(table(rows, columns))
    print(f"wrote {save()}")


if __name__ == "__main__":
    main()
