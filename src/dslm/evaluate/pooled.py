"""MAUVE at the comparison points from every continuation seed's samples, pooled.

Each continuation seed contributes ``compare_samples`` texts per (model, sampler, T);
MAUVE of one seed's set (tens of texts) barely separates systems, so the verdict step
pools the seeds' texts (e.g. 3 x 86 = 258) and scores them against as many held-out
texts: MAUVE(P_samples, Q_held-out) with the sweep's featurizer, quantisation and
95% interval (:func:`dslm.evaluate.intervals.mauve_interval`, the quantisation fixed).

``mauve_by_count`` answers "how many samples does MAUVE need here": MAUVE of nested
subsets (the first n of each pooled set, n = 32, 64, ...) for the held-out text
against a second held-out draw (the ceiling) and for each pooled system. Where the
held-out ceiling and the systems' values are still close, n is too small to separate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dslm.errors import DSLMError


def point_texts(folder: Path, point: dict) -> list[str]:
    """The texts of one sweep point (its ``samples/<model>__<sampler>__T<steps>...`` file)."""
    from dslm.evaluate.sweep import _safe

    pattern = (f"{_safe(point['model'])}__{point['sampler']}__T{point['steps']}__n*"
               f"__seed{point.get('seed', '*')}.jsonl")
    files = sorted((Path(folder) / "samples").glob(pattern))
    if len(files) != 1:
        raise DSLMError(f"{folder}/samples: expected one samples file for {point['model']} "
                        f"{point['sampler']} T={point['steps']}, found {len(files)}")
    return [json.loads(line)["text"] for line in files[0].read_text(encoding="utf-8").splitlines()
            if line.strip()]


def pooled_sets(sweeps, pairs, steps) -> dict[tuple[str, str, int], tuple[list[str], list[str]]]:
    """(DSL texts, control texts) pooled over the seeds' sweeps per (DSL sampler,
    control sampler, T); ``sweeps`` are :class:`dslm.evaluate.compare.SeedSweep`."""
    from dslm.evaluate.compare import find_point

    out = {}
    for a, b in pairs:
        for t in steps:
            dsl, ctl = [], []
            for sw in sweeps:
                dsl += point_texts(sw.folder, find_point(sw.doc, sw.dsl_model, a, t))
                ctl += point_texts(sw.folder, find_point(sw.doc, sw.control_model, b, t))
            out[(a, b, t)] = (dsl, ctl)
    return out


def featurize(featurizer, texts: list[str], batch_size: int) -> np.ndarray:
    return featurizer.features(featurizer.encode(texts), batch_size, False)


def pooled_mauve(sets, featurizer, reference: list[str], second: list[str], batch_size: int = 32,
                 counts=(32, 64, 128, 256), seed: int = 25) -> dict:
    """MAUVE (and 95% interval) of every pooled set against ``reference``; the reference's
    own MAUVE against ``second``; MAUVE of nested subsets of size ``counts`` (and the
    full size) for the held-out ceiling and every set. JSON-ready."""
    from dslm.evaluate.intervals import mauve_interval
    from dslm.evaluate.mauve import SCALING_FACTOR, compute_mauve

    ref = featurize(featurizer, reference, batch_size)
    feats = {"held-out (second draw)": featurize(featurizer, second, batch_size)}
    for (a, b, t), (dsl, ctl) in sets.items():
        feats[f"{a} T={t}"] = featurize(featurizer, dsl, batch_size)
        feats[f"{b} T={t}"] = featurize(featurizer, ctl, batch_size)

    def mauve(p: np.ndarray, q: np.ndarray) -> dict:
        res = compute_mauve(p, q, "auto", SCALING_FACTOR, seed)
        ci = mauve_interval(p, q, res.mauve, res.num_buckets, SCALING_FACTOR, seed)
        return {"mauve": res.mauve, "mauve_ci": ci.as_dict(), "n": len(p)}

    points = {name: mauve(f, ref) for name, f in feats.items()}
    full = min(len(f) for f in feats.values())
    sizes = sorted({n for n in counts if n < full} | {full})
    by_count = {name: {str(n): float(compute_mauve(f[:n], ref[:n], "auto", SCALING_FACTOR, seed).mauve)
                       for n in sizes}
                for name, f in feats.items()}
    return {"num_reference": len(reference), "points": points, "by_count": by_count}


def markdown(result: dict) -> str:
    """Two tables: pooled MAUVE per set, and MAUVE by sample count."""
    lines = [f"MAUVE of the seeds' pooled samples vs {result['num_reference']} held-out texts "
             "(95% interval, quantisation fixed):", "",
             "| samples | n | MAUVE (95% CI) |", "|---|---|---|"]
    for name, p in result["points"].items():
        ci = p["mauve_ci"]
        lines.append(f"| {name} | {p['n']} | {p['mauve']:.3f} ({ci['low']:.3f}-{ci['high']:.3f}) |")
    sizes = sorted(next(iter(result["by_count"].values())), key=int)   # JSON keys are strings
    lines += ["", "MAUVE by sample count (the first n of each set vs the first n held-out texts):", "",
              "| samples | " + " | ".join(f"n={n}" for n in sizes) + " |",
              "|---|" + "---|" * len(sizes)]
    for name, row in result["by_count"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[n]:.3f}" for n in sizes) + " |")
    return "\n".join(lines) + "\n"
