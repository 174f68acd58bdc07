"""How many samples MAUVE needs to separate text of known quality, per featurizer.

    python scripts/mauve_separation.py CKPT [--n 64,128,256] [--featurizers minilm,smollm2]
                                           [--model-samples FILE.jsonl] [--out FILE.json]

Reference P = n held-out blocks of the corpus CKPT was trained on (the validation split).
Each set Q below (n texts each) is scored as MAUVE(Q, P):
  held-out   n other held-out blocks (disjoint): the ceiling, should be near 1
  degraded   those blocks with 25% of their words replaced by random corpus words
  shuffled   those blocks with their words shuffled within each text
  unigram    words drawn independently from the held-out word frequencies (lengths matched)
  model      texts of a samples file (``--model-samples``), e.g. a weak model's output
A featurizer separates at n when held-out stays high while the degraded sets fall.
Featurizers: ``minilm`` (all-MiniLM-L6-v2 mean-pooled sentence embeddings) and
``smollm2`` (the judge's final-layer hidden state at the last token).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def degrade(texts, rng, pool, kind):
    out = []
    for t in texts:
        words = t.split()
        if kind == "shuffled":
            words = [words[i] for i in rng.permutation(len(words))]
        elif kind == "degraded":
            words = [pool[rng.integers(len(pool))] if rng.random() < 0.25 else w for w in words]
        else:                                   # unigram
            words = [pool[rng.integers(len(pool))] for _ in words]
        out.append(" ".join(words))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ckpt")
    ap.add_argument("--n", default="64,128,256")
    ap.add_argument("--featurizers", default="minilm,smollm2")
    ap.add_argument("--model-samples", default="")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="")
    args = ap.parse_args()

    from dslm.evaluate import judges
    from dslm.evaluate.mauve import compute_mauve
    from dslm.evaluate.reference import load_reference

    sizes = [int(v) for v in args.n.split(",")]
    n = max(sizes)
    pool_texts = load_reference("validation", 2 * n, args.seed, checkpoint=args.ckpt)
    ref, other = pool_texts[:n], pool_texts[n:]
    rng = np.random.default_rng(args.seed)
    words = [w for t in other for w in t.split()]
    sets = {"held-out": other}
    for kind in ("degraded", "shuffled", "unigram"):
        sets[kind] = degrade(other, rng, words, kind)
    if args.model_samples:
        from dslm.evaluate.samples import read_samples

        sets["model"] = [r["text"] for r in read_samples(args.model_samples)][:n]

    results = {"n": sizes, "reference": "validation", "checkpoint": args.ckpt, "mauve": {}, "seconds": {}}
    for name in args.featurizers.split(","):
        feat = judges.load_minilm() if name == "minilm" else judges.load_smollm2()
        start = time.perf_counter()
        f_ref = feat.features(feat.encode(ref), batch_size=16)
        feats = {k: feat.features(feat.encode(v), batch_size=16) for k, v in sets.items()}
        results["seconds"][name] = round(time.perf_counter() - start, 1)
        table = {}
        for k, f in feats.items():
            table[k] = {m: round(compute_mauve(f[:m], f_ref[:m]).mauve, 4)
                        for m in sizes if len(f) >= m}
        results["mauve"][name] = table
        print(name, json.dumps(table), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
