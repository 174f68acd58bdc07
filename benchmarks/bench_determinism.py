"""What deterministic algorithms cost, and what they buy, measured in one run.

    python benchmarks/bench_determinism.py [--kind all|dsl|mdlm|ar] [--threads 2] [--steps 8]

For each model kind (tiny preset, |V| = 4096, batch 16 x 128, fp32 on CPU): training
tokens/s with ``torch.use_deterministic_algorithms`` on and off, timed in alternating
rounds on the same model so that background load hits both alike; then two identical
short trainings from the same seed in each mode and the largest weight difference
between them (0 means bit-identical).
"""

from __future__ import annotations

import argparse
import time

import torch

from _common import pick_device, table, write_result
from bench_train import make_step
from dslm.models import build_model
from dslm.models.config import preset
from dslm.perf import sync


def _train(cfg, kind, device, x, steps):
    torch.manual_seed(0)
    model = build_model(cfg).to(device).train()
    step = make_step(model, kind, device, use_amp=False)
    for _ in range(steps):
        step(x)
    return [p.detach().clone() for p in model.parameters()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", default="all", choices=["all", "dsl", "mdlm", "ar"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    kinds = ["dsl", "mdlm", "ar"] if args.kind == "all" else [args.kind]
    rows, results = [], []
    for kind in kinds:
        cfg = preset("tiny", kind=kind, dropout=0.0, vocab_size=4096)
        x = torch.randint(0, cfg.vocab_size, (16, cfg.seq_len), generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        model = build_model(cfg).to(device).train()
        step = make_step(model, kind, device, use_amp=False)
        times = {True: 0.0, False: 0.0}
        for _ in range(args.rounds):
            for det in (True, False):
                torch.use_deterministic_algorithms(det, warn_only=True)
                step(x)
                sync(device)
                t0 = time.perf_counter()
                for _ in range(args.steps):
                    step(x)
                sync(device)
                times[det] += time.perf_counter() - t0
        tok = 16 * cfg.seq_len * args.steps * args.rounds
        diffs = {}
        for det in (True, False):
            torch.use_deterministic_algorithms(det, warn_only=True)
            a, b = _train(cfg, kind, device, x, 4), _train(cfg, kind, device, x, 4)
            diffs[det] = max(float((p - q).abs().max()) for p, q in zip(a, b))
        torch.use_deterministic_algorithms(False)
        on, off = tok / times[True], tok / times[False]
        rows.append({"kind": kind, "threads": args.threads, "tok/s det": f"{on:,.0f}",
                     "tok/s free": f"{off:,.0f}", "det/free": f"{on / off:.3f}",
                     "max |dw| det": f"{diffs[True]:.1e}", "max |dw| free": f"{diffs[False]:.1e}"})
        results.append({"kind": kind, "tokens_per_s_deterministic": on, "tokens_per_s_free": off,
                        "ratio": on / off, "max_weight_diff_deterministic": diffs[True],
                        "max_weight_diff_free": diffs[False]})
    print(table(rows, list(rows[0])))
    path = write_result("determinism", {"device": str(device), "threads": args.threads,
                                        "steps": args.steps, "rounds": args.rounds, "runs": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
