"""What tracing costs: sampling wall time with and without a ``TraceRecorder``, per sampler.

For each sampler, on the tiny preset (|V| = 4096, L = 128) with random weights, runs
``sample`` alternately without and with ``trace=TraceRecorder(max_sequences=4)``
(``--repeats`` pairs, after one warm-up pair) and prints the median wall times, their
ratio (traced / plain) and whether the tokens are identical (they must be).

    PYTHONPATH=src python benchmarks/bench_trace.py [--steps 16] [--batch 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _common import model_config, pick_device, table, write_result

SAMPLERS = {"mdlm": "mdlm", "remdm-loop": "mdlm", "dsl-mdlm": "dsl", "dsl-remdm-loop": "dsl",
            "roar-ar": "dsl", "dsl-continuous": "dsl", "hybrid": "dsl"}


def main() -> None:
    from dslm.models import build_model
    from dslm.sampling import sample
    from dslm.trace import TraceRecorder

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    device = pick_device(args.device)
    models, rows = {}, []
    for sampler, kind in SAMPLERS.items():
        if kind not in models:
            torch.manual_seed(0)
            models[kind] = build_model(model_config("tiny", kind)).to(device).eval()
        model = models[kind]
        length = model.config.seq_len

        def once(trace):
            start = time.perf_counter()
            out = sample(model, sampler, args.batch, length, args.steps,
                         torch.Generator().manual_seed(0), trace=trace)
            return time.perf_counter() - start, out.tokens

        once(None), once(TraceRecorder(max_sequences=4))          # warm-up pair
        plain, traced, same = [], [], True
        for _ in range(args.repeats):
            t0, a = once(None)
            t1, b = once(TraceRecorder(max_sequences=4))
            plain.append(t0)
            traced.append(t1)
            same &= torch.equal(a, b)
        p0, p1 = statistics.median(plain), statistics.median(traced)
        rows.append({"sampler": sampler, "plain_s": round(p0, 4), "traced_s": round(p1, 4),
                     "ratio": round(p1 / p0, 3), "same_tokens": same})
        print(table(rows[-1:], list(rows[-1])), flush=True)
    print()
    print(table(rows, list(rows[0])))
    path = write_result("trace", {"steps": args.steps, "batch": args.batch, "seq_len": length,
                                  "device": str(device), "rows": rows}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
