"""Sampling throughput, sampler overhead and the NFE the cache saves, per sampler.

    python benchmarks/bench_sample.py [--preset tiny] [--hidden-size H] [--n-blocks N]
                                      [--vocab-size V] [--batch-size 8,32] [--steps 64]
                                      [--warmup-steps T] [--seq-len L] [--samplers a,b,...]
                                      [--models random,peaked] [--device auto] [--out DIR]

For every sampler, one batch of ``--batch-size`` sequences is drawn from a model of
the right kind after one warm-up batch at a realistic T (``--warmup-steps``, default
the measured T). Models: ``random`` (random weights, perturbed so the output depends
on the input: near-uniform token distributions) and ``peaked`` (the same with a
Zipf-shaped output bias and a sharper head, so most positions put their mass on a
few tokens, as a trained model does; the mean entropy of its token distributions at
the all-[MASK] / y = 0 state is printed). On a GPU the network runs as the samplers
run it (``dslm.perf.fast_network``: bf16 autocast, torch.compile by default). Reported: tokens/s = B L / wall time; overhead = share of the wall
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


def random_model(kind: str, args, device: torch.device, peaked: bool = False):
    torch.manual_seed(0)
    overrides = {key: getattr(args, key) for key in ("vocab_size", "hidden_size", "n_blocks")
                 if getattr(args, key)}
    if args.hidden_size:
        overrides["n_heads"] = max(1, args.hidden_size // 64)
    model = build_model(preset(args.preset, kind=kind, **overrides)).to(device).eval()
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(0.05 * torch.randn_like(p))
        if peaked:                      # Zipf prior over the vocabulary + a sharper head
            head = model.backbone.output_layer.linear
            rank = torch.randperm(head.bias.shape[0], generator=torch.Generator().manual_seed(1)) + 1
            head.bias.copy_(-2.0 * torch.log(rank.float()).to(device))
            head.weight.mul_(5.0)
    return model


def mean_entropy(model, seq_len: int, device: torch.device) -> float:
    """Mean entropy (nats) of p(x_i | all masked) (MDLM / AR at x = 0) over positions."""
    with torch.inference_mode():
        if model.kind == "dsl":
            out = model(torch.zeros(1, seq_len, model.config.embed_dim, device=device))
        elif model.kind == "mdlm":
            out = model(torch.full((1, seq_len), model.mask_id, device=device))[..., :model.vocab_size]
        else:
            out = model(torch.zeros(1, seq_len, dtype=torch.long, device=device))
        logp = torch.log_softmax(out.float(), dim=-1)
        return float(-(logp.exp() * logp).sum(-1).mean())


def measure(model, name: str, batch: int, seq_len: int, steps: int, warmup_steps: int | None = None,
            **options) -> dict:
    gen = torch.Generator().manual_seed(0)
    sample(model, name, batch, seq_len, warmup_steps or steps, gen, **options)     # warm-up
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
    ap.add_argument("--batch-size", default="32", help="one or more, comma-separated")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--warmup-steps", type=int, default=None, help="T of the warm-up batch (default: --steps)")
    ap.add_argument("--models", default="random", help="random, peaked or both (comma-separated)")
    ap.add_argument("--out", default=None, help="results folder or .json file")
    ap.add_argument("--seq-len", type=int, default=None)
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-cache-rows", action="store_true", help="skip the T = 4 L cache rows")
    args = ap.parse_args()
    device = pick_device(args.device)
    names = [n.strip() for n in args.samplers.split(",") if n.strip()]
    batches = [int(b) for b in str(args.batch_size).split(",")]
    rows, entropies, cfg, seq_len = [], {}, None, None
    for flavour in [m.strip() for m in args.models.split(",") if m.strip()]:
        peaked = flavour == "peaked"
        models = {kind: random_model(kind, args, device, peaked)
                  for kind in {SAMPLERS[n].kinds[0] for n in names}}
        cfg = next(iter(models.values())).config
        seq_len = args.seq_len or cfg.seq_len
        for kind, model in models.items():
            entropies[f"{flavour}/{kind}"] = round(mean_entropy(model, seq_len, device), 3)
        for batch in batches:
            for name in names:
                try:
                    row = measure(models[SAMPLERS[name].kinds[0]], name, batch, seq_len, args.steps,
                                  args.warmup_steps)
                except torch.cuda.OutOfMemoryError as e:
                    row = {"sampler": name, "kind": SAMPLERS[name].kinds[0], "batch": batch,
                           "steps": args.steps, "error": f"CUDA out of memory ({str(e)[:120]})"}
                    torch.cuda.empty_cache()
                row = {"model": flavour, **row}
                rows.append(row)
                print(table(rows[-1:], list(rows[-1])).splitlines()[-1], flush=True)
                if (args.out or "").endswith(".json"):    # a timeout keeps the rows so far
                    write_result("sample", {"preset": args.preset, "seq_len": seq_len,
                                            "device": str(device), "entropy_nats": entropies,
                                            "rows": rows}, args.out)
        if not args.no_cache_rows:
            mdlm = models.get("mdlm") or random_model("mdlm", args, device, peaked)
            for batch in (1, batches[-1]):
                row = measure(mdlm, "mdlm", batch, seq_len, 4 * seq_len, args.warmup_steps)
                rows.append({"model": flavour, **row, "sampler": "mdlm (cache, T=4L)"})
        del models
    columns = ["model", "sampler", "kind", "batch", "steps", "nfe", "cache_saved", "tokens_per_s",
               "wall_s", "network_s", "overhead_pct"]
    print(f"mean entropy of p(x_i | nothing revealed), nats: {entropies}")
    print(table(rows, columns))
    path = write_result("sample", {"preset": args.preset, "seq_len": seq_len, "device": str(device),
                                   "model": {k: getattr(cfg, k) for k in (
                                       "vocab_size", "hidden_size", "n_blocks", "n_heads")},
                                   "entropy_nats": entropies, "rows": rows}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
