"""Sampling wall time of two source trees side by side (old vs new), with a token check.

    git worktree add --detach /tmp/old <commit>
    python benchmarks/ab_sample.py --old-src /tmp/old/src [--new-src src] [--preset tiny]
        [--vocab-size 4096] [--batch-size 86] [--steps 32] [--samplers mdlm,remdm-loop,...]
        [--repeats 1] [--threads 1] [--out DIR]

Each measurement runs in a fresh subprocess with ``PYTHONPATH`` set to one tree (so the
two trees' ``dslm`` never mix), on the same random-weight model (``bench_sample``'s
``random``, built from the same seed by each tree) with the same generator seed, after
a small warm-up batch. Old and new alternate per sampler (and per repeat), so machine
load hits both alike. Prints wall seconds (best of ``--repeats``), the ratio old / new
and whether both trees drew identical tokens (a SHA-256 of the token tensor).
Writes ``benchmarks/results/ab_sample-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(args) -> None:
    """Run in the subprocess: one sampler, print one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(HERE))
    from bench_sample import random_model
    from dslm.sampling import SAMPLERS, sample

    device = torch.device("cpu")
    model = random_model(SAMPLERS[args.sampler].kinds[0], args, device)
    seq_len = args.seq_len or model.config.seq_len
    sample(model, args.sampler, 2, seq_len, 2, torch.Generator().manual_seed(1))      # warm-up
    res = sample(model, args.sampler, args.batch_size, seq_len, args.steps,
                 torch.Generator().manual_seed(0))
    s = res.stats[0]
    digest = hashlib.sha256(res.tokens.numpy().tobytes()).hexdigest()[:16]
    print(json.dumps({"wall_s": s["wall_seconds"], "network_s": s["network_seconds"],
                      "nfe": res.nfe, "tokens_sha": digest}))


def run_one(src: str, args, sampler: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve()),
           "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, __file__, "--worker", "--sampler", sampler, "--preset", args.preset,
           "--batch-size", str(args.batch_size), "--steps", str(args.steps),
           "--threads", str(args.threads)]
    for key in ("vocab_size", "hidden_size", "n_blocks", "seq_len"):
        if getattr(args, key):
            cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-src", default=None)
    ap.add_argument("--new-src", default=str(HERE.parent / "src"))
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--vocab-size", type=int, default=4096)
    ap.add_argument("--hidden-size", type=int, default=None)
    ap.add_argument("--n-blocks", type=int, default=None)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=86)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--samplers", default="mdlm,remdm-loop,dsl-mdlm,dsl-remdm-loop")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sampler", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    if not args.old_src:
        ap.error("--old-src is required (a checkout's src folder)")
    sys.path.insert(0, str(HERE))
    from _common import table, write_result

    rows = []
    for sampler in [n.strip() for n in args.samplers.split(",") if n.strip()]:
        old, new = [], []
        for _ in range(args.repeats):
            old.append(run_one(args.old_src, args, sampler))
            new.append(run_one(args.new_src, args, sampler))
        o = min(old, key=lambda r: r["wall_s"])
        n = min(new, key=lambda r: r["wall_s"])
        same = all(r["tokens_sha"] == o["tokens_sha"] for r in old + new)
        rows.append({"sampler": sampler, "batch": args.batch_size, "steps": args.steps,
                     "old_wall_s": round(o["wall_s"], 2), "new_wall_s": round(n["wall_s"], 2),
                     "ratio": round(o["wall_s"] / n["wall_s"], 2),
                     "old_net_s": round(o["network_s"], 2), "new_net_s": round(n["network_s"], 2),
                     "nfe": n["nfe"], "same_tokens": same})
        print(table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
    print(table(rows, list(rows[0])))
    path = write_result("ab_sample", {"old_src": args.old_src, "new_src": args.new_src,
                                      "preset": args.preset, "vocab_size": args.vocab_size,
                                      "threads": args.threads, "rows": rows}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
