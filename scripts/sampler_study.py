"""Paired sampler comparisons on trained checkpoints: entropy and judge NLL per sample.

    python scripts/sampler_study.py --group continuous|loop --dsl CKPT [--mdlm CKPT]
        [--steps 16,32] [--seeds 0,1,2] [--n 32] [--judge smollm2-135m|none|AR_CKPT]
        [--judge-tokens N] --out FILE.json

Every variant (a sampler and its options, listed in VARIANTS) is sampled with the same
seeds; sample i of seed r of every variant starts from the same generator state, so the
comparison with the group's baseline is paired by (seed, i). Recorded per set: the
sampled ids' mean unigram entropy (nats), repetition, and the judge's per-sample NLL and
token counts (gen PPL = exp(sum NLL / sum tokens)). The summary gives, per variant and
T, the mean over seeds and a 95% paired-bootstrap interval of the gen-PPL ratio to the
baseline (resampling (seed, i) pairs). ``--judge-tokens N`` > 0 makes the judge read only
the first N tokens of every text (``dslm.evaluate.textproc.TruncatedLM``, the demo's
``judge_tokens``); 0 scores the whole text. Resumable: finished sets are kept in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

#: name -> (model, sampler, options); the first of a group is its baseline.
VARIANTS = {
    "continuous": {
        "euler/snr_max/argmax": ("dsl", "dsl-continuous", {"drift": "mean", "decode": "argmax"}),
        "euler/5/argmax": ("dsl", "dsl-continuous", {"drift": "mean", "snr_end": 5.0,
                                                     "decode": "argmax"}),
        "euler/5/sample": ("dsl", "dsl-continuous", {"drift": "mean", "snr_end": 5.0,
                                                     "decode": "sample"}),
        "ancestral/snr_max/argmax": ("dsl", "dsl-continuous", {"drift": "sample",
                                                               "decode": "argmax"}),
        "ancestral/5/sample": ("dsl", "dsl-continuous", {"drift": "sample", "snr_end": 5.0,
                                                         "decode": "sample"}),
        "ancestral/5/argmax": ("dsl", "dsl-continuous", {"drift": "sample", "snr_end": 5.0,
                                                         "decode": "argmax"}),
        "ancestral/snr_max/sample": ("dsl", "dsl-continuous", {"drift": "sample",
                                                               "decode": "sample"}),
        "euler/snr_max/sample": ("dsl", "dsl-continuous", {"drift": "mean", "decode": "sample"}),
        "ancestral/snr_max/evidence": ("dsl", "dsl-continuous", {"drift": "sample",
                                                                 "decode": "evidence"}),
        "euler/snr_max/evidence": ("dsl", "dsl-continuous", {"drift": "mean",
                                                             "decode": "evidence"}),
        "hybrid/euler": ("dsl", "hybrid", {"drift": "mean"}),
        "hybrid/ancestral": ("dsl", "hybrid", {"drift": "sample"}),
        "dsl-mdlm": ("dsl", "dsl-mdlm", {}),
    },
    "loop": {
        "dsl-loop": ("dsl", "dsl-remdm-loop", {}),
        "dsl-mdlm": ("dsl", "dsl-mdlm", {}),
        "dsl-mdlm/top_p=0.9": ("dsl", "dsl-mdlm", {"top_p": 0.9}),
        "dsl-loop/renoise=5": ("dsl", "dsl-remdm-loop", {"renoise_snr": 5.0}),
        "dsl-loop/renoise=40": ("dsl", "dsl-remdm-loop", {"renoise_snr": 40.0}),
        "dsl-loop/renoise=60": ("dsl", "dsl-remdm-loop", {"renoise_snr": 60.0}),
        "dsl-loop/eta=max": ("dsl", "dsl-remdm-loop", {"eta": 0.111}),
        "dsl-loop/no-carry": ("dsl", "dsl-remdm-loop", {"carry_over": False}),
        "mdlm": ("mdlm", "mdlm", {}),
        "mdlm/top_p=0.9": ("mdlm", "mdlm", {"top_p": 0.9}),
        "remdm-loop": ("mdlm", "remdm-loop", {}),
    },
}


def summarize(doc: dict, group: str) -> dict:
    from dslm.evaluate.stats import genppl_ratio

    names = list(VARIANTS[group])
    base = names[0]
    out = {}
    for T in doc["steps"]:
        rows = {}
        for name in names:
            sets = [doc["sets"].get(f"{name}|T={T}|seed={s}") for s in doc["seeds"]]
            if any(s is None for s in sets):
                continue
            row = {"entropy": float(np.mean([s["entropy"] for s in sets])),
                   "entropy_per_seed": [round(s["entropy"], 3) for s in sets]}
            if sets[0].get("nll") is not None:
                ppl = [math.exp(sum(s["nll"]) / sum(s["tokens"])) for s in sets]
                row["gen_ppl_per_seed"] = [round(p, 1) for p in ppl]
                nll = np.concatenate([s["nll"] for s in sets])
                tok = np.concatenate([s["tokens"] for s in sets]).astype(float)
                row["gen_ppl_pooled"] = float(math.exp(nll.sum() / tok.sum()))
                ref = [doc["sets"][f"{base}|T={T}|seed={s}"] for s in doc["seeds"]]
                if name != base:
                    bn = np.concatenate([s["nll"] for s in ref])
                    bt = np.concatenate([s["tokens"] for s in ref]).astype(float)
                    row["ratio_to_base"] = float(math.exp(nll.sum() / tok.sum() - bn.sum() / bt.sum()))
                    iv = genppl_ratio(np.stack([nll, tok], 1), np.stack([bn, bt], 1))
                    row["ratio_95"] = (iv.low, iv.high)
            rows[name] = row
        out[f"T={T}"] = rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group", choices=sorted(VARIANTS), required=True)
    ap.add_argument("--dsl", required=True)
    ap.add_argument("--mdlm", default="")
    ap.add_argument("--steps", default="16,32")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--judge", default="smollm2-135m")
    ap.add_argument("--judge-tokens", type=int, default=0,
                    help="judge reads each text's first N tokens (0: all), as the demo's judge_tokens")
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.judge_tokens < 0:
        ap.error(f"--judge-tokens must be >= 0, got {args.judge_tokens}")
    torch.set_num_threads(1)

    from dslm.evaluate import judges
    from dslm.evaluate.entropy import mean_unigram_entropy, repetition_stats
    from dslm.models.checkpoint import open_checkpoint
    from dslm.evaluate.reference import load_reference
    from dslm.sampling import sample

    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.is_file() else {"sets": {}}
    doc.update(group=args.group, steps=[int(t) for t in args.steps.split(",")],
               seeds=[int(s) for s in args.seeds.split(",")], n=args.n, judge=args.judge,
               judge_tokens=args.judge_tokens,
               checkpoints={"dsl": args.dsl, "mdlm": args.mdlm})
    opened = {"dsl": open_checkpoint(args.dsl)}
    if args.mdlm:
        opened["mdlm"] = open_checkpoint(args.mdlm)
    models = {k: (o.model, o.tokenizer()) for k, o in opened.items()}
    judge = None if args.judge == "none" else judges.load_named(args.judge)
    if judge is not None and args.judge_tokens > 0:
        from dslm.evaluate.textproc import TruncatedLM
        judge = TruncatedLM(judge, args.judge_tokens)
    if judge is not None:
        doc["judge_identity"] = judges.identity(judge)

    def score(texts, ids):
        rec = {"entropy": mean_unigram_entropy(ids), **repetition_stats(ids)}
        if judge is not None:
            nll, tok = judge.nll_per_text(judge.encode(texts), batch_size=16)
            rec.update(nll=nll.tolist(), tokens=tok.tolist())
        return rec

    if "held-out" not in doc:
        tokenizer = models["dsl"][1]
        texts = load_reference("validation", args.n * len(doc["seeds"]), 0, checkpoint=args.dsl)
        doc["held-out"] = score(texts, [tokenizer.encode(t) for t in texts])
        out.write_text(json.dumps(doc))
    names = args.only.split(",") if args.only else list(VARIANTS[args.group])
    for T in doc["steps"]:
        for seed in doc["seeds"]:
            for name in names:
                key = f"{name}|T={T}|seed={seed}"
                kind, sampler, opts = VARIANTS[args.group][name]
                if key in doc["sets"] or kind not in models:
                    continue
                model, tokenizer = models[kind]
                gen = torch.Generator().manual_seed(1000 + seed)
                start = time.perf_counter()
                res = sample(model, sampler, args.n, model.config.seq_len, T, gen, **opts)
                seconds = time.perf_counter() - start
                ids = res.tokens.tolist()
                texts = [tokenizer.decode(i) for i in ids]
                doc["sets"][key] = {**score(texts, ids), "nfe": int(res.nfe),
                                    "sample_seconds": round(seconds, 2), "example": texts[0][:300]}
                doc["summary"] = summarize(doc, args.group)
                out.write_text(json.dumps(doc, indent=1))
                s = doc["sets"][key]
                ppl = math.exp(sum(s["nll"]) / sum(s["tokens"])) if "nll" in s else float("nan")
                print(f"{key}: entropy {s['entropy']:.3f} gen PPL {ppl:.1f}", flush=True)
    doc["summary"] = summarize(doc, args.group)
    out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
