"""Where a sampler's time outside the network goes: torch.profiler over one batch.

    python benchmarks/profile_sample.py [--preset small] [--samplers remdm-loop,dsl-continuous]
                                        [--batch-size 8] [--steps 16] [--device auto] [--rows 18]

For each sampler (random-weight model as ``bench_sample``'s ``random``): one warm-up
batch, then one profiled batch; prints the operators by self device time and by self
host time, and the count of host-device synchronisations (``cudaStreamSynchronize``,
``cudaDeviceSynchronize``, ``cudaMemcpy*``). The network's own kernels appear too
(GEMMs, attention); everything else is the sampler's.
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from _common import pick_device
from bench_sample import random_model
from dslm.sampling import SAMPLERS, sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--vocab-size", type=int, default=None)
    ap.add_argument("--hidden-size", type=int, default=None)
    ap.add_argument("--n-blocks", type=int, default=None)
    ap.add_argument("--samplers", default="remdm-loop,dsl-continuous")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--rows", type=int, default=18)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if gpu else [])
    for name in [n.strip() for n in args.samplers.split(",") if n.strip()]:
        model = random_model(SAMPLERS[name].kinds[0], args, device)
        seq_len = args.seq_len or model.config.seq_len
        gen = torch.Generator().manual_seed(0)
        sample(model, name, args.batch_size, seq_len, args.steps, gen)
        with profile(activities=acts) as prof:
            res = sample(model, name, args.batch_size, seq_len, args.steps, gen)
        s = res.stats[0]
        wall, net = s["wall_seconds"], s["network_seconds"]
        events = prof.key_averages()
        syncs = {e.key: e.count for e in events
                 if "Synchronize" in e.key or e.key.startswith("cudaMemcpy")}
        print(f"\n### {name}, batch {args.batch_size}, T = {args.steps}: wall {wall:.3f}s, network "
              f"{net:.3f}s, outside {100 * (wall - net) / wall:.1f}% (under the profiler); syncs {syncs}")
        key = "self_device_time_total" if gpu else "self_cpu_time_total"
        print(events.table(sort_by=key, row_limit=args.rows, max_name_column_width=48))
        if gpu:
            print(events.table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=48))
        del model


if __name__ == "__main__":
    main()
