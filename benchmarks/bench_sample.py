"""Sampling throughput, sampler overhead and the NFE the cache saves, per sampler.

    python benchmarks/bench_sample.py [--preset tiny] [--hidden-size H] [--n-blocks N]
                                      [--vocab-size V] [--batch-size 32] [--steps 64]
                                      [--seq-len L] [--samplers a,b,...] [--device auto]

For every sampler, one batch of ``--batch-size`` sequences is drawn from a model of
the right kind (random weights, perturbed so the output depends on the input) after
one warm-up batch. Reported: tokens/s = B L / wall time; overhead = share of the wall
time spent outside the network calls (what the sampler itself costs; goal <= 5%);
NFE and the calls the "no change, no call" cache skipped. The cache only skips a call
when no sequence of the batch changed, so it saves calls when T is large against L:
the ``cache`` rows run mdlm with T = 4 L at batch 1 and at the benchmark batch.
Writes ``benchmarks/results/sample-<timestamp>.json``.
"""

from __future__ import annotations

import argparse

import torch

from _common import pick_device, table, write_result
from dslm.models import build_model
from dslm.models.config import preset
from dslm.sampling import SAMPLERS, sample


def random_model(kind: str, args, device: torch.device):
    torch.manual_seed(0)
    overrides = {key: getattr(args, key) for key in ("vocab_size", "hidden_size", "n_blocks")
                 if getattr(args, key)}
    model = build_model(preset(args.preset, kind=kind, **overrides)).to(device).eval()
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def measure(model, name: str, batch: int, seq_len: int, steps: int, **options) -> dict:
    gen = torch.Generator().manual_seed(0)
    sample(model, name, batch, seq_len, 2, gen, **options)                # warm-up
    result = sample(model, name, batch, seq_len, steps, gen, **options)
    s = result.stats[0]
    wall, net = s["wall_seconds"], s["network_seconds"]
    return {"sampler": name, "kind": model.kind, "batch": batch, "steps": steps,
            "nfe": result.nfe, "cache_saved": s.get("cache_hits", 0),
            "tokens_per_s": round(batch * seq_len / wall, 1), "wall_s": round(wall, 3),
            "network_s": round(net, 3), "overhead_pct": round(100 * (wall - net) / wall, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--vocab-size", type=int, default=None)
    ap.add_argument("--hidden-size", type=int, default=None)
    ap.add_argument("--n-blocks", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-cache-rows", action="store_true", help="skip the T = 4 L cache rows")
    args = ap.parse_args()
    device = pick_device(args.device)
    names = [n.strip() for n in args.samplers.split(",") if n.strip()]
    models = {kind: random_model(kind, args, device)
              for kind in {SAMPLERS[n].kinds[0] for n in names}}
    seq_len = args.seq_len or next(iter(models.values())).config.seq_len
    rows = []
    for name in names:
        rows.append(measure(models[SAMPLERS[name].kinds[0]], name, args.batch_size, seq_len,
                            args.steps))
        print(table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
    if not args.no_cache_rows:
        mdlm = models.get("mdlm") or random_model("mdlm", args, device)
        for batch in (1, args.batch_size):
            row = measure(mdlm, "mdlm", batch, seq_len, 4 * seq_len)
            rows.append({**row, "sampler": "mdlm (cache, T=4L)"})
    columns = ["sampler", "kind", "batch", "steps", "nfe", "cache_saved", "tokens_per_s",
               "wall_s", "network_s", "overhead_pct"]
    print(table(rows, columns))
    cfg = next(iter(models.values())).config
    path = write_result("sample", {"preset": args.preset, "seq_len": seq_len,
                                   "model": {k: getattr(cfg, k) for k in (
                                       "vocab_size", "hidden_size", "n_blocks", "n_heads")},
                                   "device": str(device), "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
