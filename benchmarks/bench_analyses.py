"""CPU cost of ``dslm.analyze.demo_analyses`` (calibration + self-correction) on a DSL model
and its MDLM control: CPU seconds (this process and its children) and wall seconds.

    PYTHONPATH=src python benchmarks/bench_analyses.py --dsl RUN/dsl --control RUN/mdlm-control \
        --judge RUN/ar [--data validation] [--threads 1] [--max-judged 10] [--out DIR]

The judge may be ``smollm2-135m`` (then give ``--reference RUN/ar`` for the wrong-token
count). CPU seconds are the budget figure; wall seconds depend on what else runs.
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dsl", required=True)
    p.add_argument("--control", required=True)
    p.add_argument("--judge", required=True)
    p.add_argument("--reference", default=None)
    p.add_argument("--data", default="validation")
    p.add_argument("--blocks", type=int, default=16)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--steps", default="8,16")
    p.add_argument("--max-judged", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from dslm.analyze import demo_analyses, held_out_blocks
    from dslm.api import open_model, tokenizer_of

    model = open_model(args.dsl)
    blocks = held_out_blocks(args.data, tokenizer_of(model), int(model.config.seq_len),
                             args.blocks, 0, args.dsl)          # data preparation not timed
    out = args.out or tempfile.mkdtemp(prefix="bench-analyses-")
    got = demo_analyses(args.dsl, args.control, blocks, args.judge, out, reference=args.reference,
                        steps=[int(t) for t in args.steps.split(",")], num_samples=args.samples,
                        num_blocks=args.blocks, max_judged=args.max_judged)
    print(json.dumps({"judge": args.judge, "threads": args.threads, "blocks": args.blocks,
                      "samples": args.samples, "steps": args.steps, "max_judged": args.max_judged,
                      "cpu_seconds": round(got["cpu_seconds"], 2),
                      "wall_seconds": round(got["wall_seconds"], 2), "out": out}, indent=1))


if __name__ == "__main__":
    main()
