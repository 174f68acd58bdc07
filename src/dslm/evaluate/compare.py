"""DSL vs the MDLM control: a verdict per sampler pair and step budget, and its reading.

Input: one or more sweep results (``sweep.json`` documents), one per continuation seed,
each holding the DSL model and the MDLM control sampled with matched samplers
(e.g. ``dsl-mdlm`` vs ``mdlm``) at the same T, every point with ``per_sample`` judge
scores (see :mod:`dslm.evaluate.stats`). For each pair and T the samples of all seeds
are pooled (sample i of DSL seed s is paired with sample i of control seed s) and a
paired bootstrap, stratified by seed, gives the 95% interval of the gen-PPL ratio
``R = PPL_DSL / PPL_control`` and of the mean per-sample entropy difference. Verdict:
``better`` (R's interval below 1), ``worse`` (above 1) or ``tie``.

:func:`reading_markdown` turns the table into plain sentences (the README's reading).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dslm.errors import DSLMError
from dslm.evaluate import stats
from dslm.evaluate.entropy import unigram_entropy


@dataclass
class SeedSweep:
    """One continuation seed: the sweep document holding its two models (labels
    ``dsl_model`` and ``control_model``) and the sweep folder (for ``samples/``)."""

    seed: int
    doc: dict
    dsl_model: str
    control_model: str
    folder: Path | None = None


@dataclass
class Comparison:
    """One row of the verdict table."""

    dsl_sampler: str
    control_sampler: str
    steps: int
    seeds: list[int]
    num_pairs: int
    ppl_dsl: float
    ppl_control: float
    ratio: stats.Interval
    verdict: str
    per_seed_ratio: list[float] = field(default_factory=list)
    entropy_diff: stats.Interval | None = None

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["ratio"] = self.ratio.as_dict()
        d["entropy_diff"] = self.entropy_diff.as_dict() if self.entropy_diff else None
        return d


def find_point(doc: dict, model: str, sampler: str, steps: int) -> dict:
    """The point of ``doc``'s current plan for (model label, sampler, T) (not a point an
    earlier run of the folder left with another sample count); DSLMError if absent."""
    from dslm.evaluate.report import current_points

    for point in current_points(doc):
        if point.get("model") == model and point.get("sampler") == sampler \
                and int(point.get("steps", -1)) == steps:
            return point
    raise DSLMError(f"the sweep has no point for model '{model}', sampler {sampler}, T={steps}")


def _sample_entropies(sweep: SeedSweep, point: dict) -> np.ndarray | None:
    """Per-sample unigram entropy (nats): from ``per_sample['entropy']`` or the samples file."""
    per = point.get("per_sample") or {}
    if "entropy" in per:
        return np.asarray(per["entropy"], dtype=np.float64)
    if sweep.folder is None:
        return None
    from dslm.evaluate.sweep import _safe   # the samples file name of a sweep point

    pattern = (f"{_safe(point['model'])}__{point['sampler']}__T{point['steps']}__n*"
               f"__seed{point.get('seed', '*')}.jsonl")
    files = sorted((sweep.folder / "samples").glob(pattern))
    if len(files) != 1:
        return None
    rows = [json.loads(line) for line in files[0].read_text(encoding="utf-8").splitlines() if line.strip()]
    return np.asarray([unigram_entropy(r["tokens"]) for r in rows], dtype=np.float64)


def compare(sweeps: list[SeedSweep], pairs: list[tuple[str, str]], steps: list[int],
            n_boot: int = stats.N_BOOT,
            seed: int = 0) -> list[Comparison]:
    """The verdict table: one :class:`Comparison` per (DSL sampler, control sampler) and T."""
    if not sweeps:
        raise DSLMError("no sweeps to compare")
    rows = []
    for dsl_sampler, ctl_sampler in pairs:
        for t in steps:
            a_parts, b_parts, strata, ea_parts, eb_parts, per_seed = [], [], [], [], [], []
            for sw in sweeps:
                pa = find_point(sw.doc, sw.dsl_model, dsl_sampler, t)
                pb = find_point(sw.doc, sw.control_model, ctl_sampler, t)
                a = stats.per_sample_scores(pa, f"{sw.dsl_model} {dsl_sampler} T={t}")
                b = stats.per_sample_scores(pb, f"{sw.control_model} {ctl_sampler} T={t}")
                if len(a) != len(b):
                    raise DSLMError(f"seed {sw.seed}, T={t}: {dsl_sampler} has {len(a)} samples, "
                                    f"{ctl_sampler} {len(b)}; paired sets must match")
                a_parts.append(a)
                b_parts.append(b)
                strata += [sw.seed] * len(a)
                per_seed.append(float(stats._ppl_ratio(a, b)))
                ea_parts.append(_sample_entropies(sw, pa))
                eb_parts.append(_sample_entropies(sw, pb))
            a, b = np.concatenate(a_parts), np.concatenate(b_parts)
            ratio = stats.genppl_ratio(a, b, strata, n_boot=n_boot, seed=seed)
            ent = None
            if all(e is not None for e in ea_parts + eb_parts):
                ea, eb = np.concatenate(ea_parts), np.concatenate(eb_parts)
                if len(ea) == len(eb) == len(a):
                    ent = stats.mean_difference(ea, eb, strata, n_boot=n_boot, seed=seed)
            rows.append(Comparison(
                dsl_sampler, ctl_sampler, t, [sw.seed for sw in sweeps], len(a),
                float(np.exp(a[:, 0].sum() / a[:, 1].sum())),
                float(np.exp(b[:, 0].sum() / b[:, 1].sum())),
                ratio, stats.ratio_verdict(ratio), per_seed, ent))
    return rows


@dataclass
class AcrossBases:
    """One (sampler pair, T) over base MDLM seeds: each base's pooled ratio R_j (its own
    paired bootstrap verdict), their geometric mean and a 95% t-interval of the mean
    log ratio, so the base models count as the random draws they are."""

    dsl_sampler: str
    control_sampler: str
    steps: int
    bases: list[int]
    ratios: list[float]
    base_verdicts: list[str]
    ratio: stats.Interval
    verdict: str

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["ratio"] = self.ratio.as_dict()
        return d


def across_bases(tables: dict[int, list[Comparison]], level: float = stats.LEVEL) -> list[AcrossBases]:
    """Per (pair, T): ``exp(mean_j log R_j +- t_{n-1} sd_j / sqrt(n))`` over the n base seeds'
    ratios R_j (``tables``: base seed -> its verdict table; n >= 2). The verdict is
    ``better`` / ``worse`` when that interval excludes 1. Unlike the pooled tables, whose
    bootstrap resamples texts of fixed models, this interval widens with the spread
    between base models."""
    from scipy.stats import t as student_t

    bases = sorted(tables)
    if len(bases) < 2:
        raise DSLMError("a comparison across base seeds needs at least 2 base seeds")
    q = float(student_t.ppf(0.5 + level / 2, len(bases) - 1))
    out = []
    for i, row in enumerate(tables[bases[0]]):
        rows = [tables[j][i] for j in bases]
        logs = np.log([r.ratio.estimate for r in rows])
        mean, half = float(logs.mean()), q * float(logs.std(ddof=1)) / np.sqrt(len(logs))
        interval = stats.Interval(float(np.exp(mean)), float(np.exp(mean - half)),
                                  float(np.exp(mean + half)), level)
        out.append(AcrossBases(row.dsl_sampler, row.control_sampler, row.steps, bases,
                               [float(r.ratio.estimate) for r in rows], [r.verdict for r in rows],
                               interval, stats.ratio_verdict(interval)))
    return out


def across_bases_markdown(rows: list[AcrossBases]) -> str:
    """The across-base-seeds table as Markdown."""
    lines = ["| DSL sampler | control sampler | T | base seeds | ratio per base | "
             "geometric mean (95% t-interval) | bases better / tie / worse | verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        counts = stats.verdict_split(stats.verdict_counts(r.base_verdicts))
        lines.append(
            f"| {r.dsl_sampler} | {r.control_sampler} | {r.steps} | {len(r.bases)} | "
            f"{' / '.join(f'{x:.2f}' for x in r.ratios)} | {r.ratio.estimate:.3f} "
            f"({r.ratio.low:.3f}, {r.ratio.high:.3f}) | {counts} | **{r.verdict}** |")
    return "\n".join(lines) + "\n"


def across_bases_sentences(rows: list[AcrossBases]) -> list[str]:
    """Plain sentences for the across-base-seeds table (no hand-written numbers)."""
    if not rows:
        return []
    n = len(rows[0].bases)
    text = [f"Across {n} base MDLMs (seeds {', '.join(str(b) for b in rows[0].bases)}; each "
            "base's own pooled ratio, a 95% t-interval of the mean log ratio over bases):"]
    for r in rows:
        counts = stats.verdict_split(stats.verdict_counts(r.base_verdicts))
        text.append(f"- {r.dsl_sampler} vs {r.control_sampler} at T = {r.steps}: {r.verdict} "
                    f"(geometric mean ratio {r.ratio.estimate:.2f}, 95% interval "
                    f"{r.ratio.low:.2f}-{r.ratio.high:.2f}; bases better / tie / worse {counts}).")
    totals = stats.verdict_counts(r.verdict for r in rows)
    text.append(f"Across base seeds DSL is better at {totals['better']}, tied at {totals['tie']} "
                f"and worse at {totals['worse']} of {len(rows)} points.")
    return text


def table_markdown(rows: list[Comparison]) -> str:
    """The verdict table as Markdown."""
    lines = ["| DSL sampler | control sampler | T | pairs | gen PPL DSL | gen PPL control | "
             "ratio (95% CI) | per-seed ratios | entropy diff (95% CI) | verdict |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ent = (f"{r.entropy_diff.estimate:+.3f} ({r.entropy_diff.low:+.3f}, {r.entropy_diff.high:+.3f})"
               if r.entropy_diff else "-")
        lines.append(
            f"| {r.dsl_sampler} | {r.control_sampler} | {r.steps} | {r.num_pairs} | {r.ppl_dsl:.1f} | "
            f"{r.ppl_control:.1f} | {r.ratio.estimate:.3f} ({r.ratio.low:.3f}, {r.ratio.high:.3f}) | "
            f"{' / '.join(f'{x:.2f}' for x in r.per_seed_ratio)} | {ent} | **{r.verdict}** |")
    return "\n".join(lines) + "\n"


#: an entropy drop (nats) beyond which a lower gen PPL may come from repetition
ENTROPY_CAVEAT = 0.05


def _phrase(r: Comparison) -> str:
    return (f"{r.verdict} at T = {r.steps} (gen PPL {r.ppl_dsl:.0f} vs {r.ppl_control:.0f}, "
            f"ratio {r.ratio.estimate:.2f}, 95% interval {r.ratio.low:.2f}-{r.ratio.high:.2f})")


def reading_markdown(rows: list[Comparison], judge: str, title: str = "",
                     extra: list[tuple[str, list[Comparison]]] | None = None,
                     bases: list[AcrossBases] | None = None) -> str:
    """Plain sentences generated from the verdict table(s): no hand-written numbers.

    ``rows`` is the main table (continuation seeds pooled); ``extra`` holds further
    tables, e.g. ``[("second base seed", rows2)]``, each read the same way; ``bases``
    the table across base seeds (:func:`across_bases`), if any.
    """
    out = [f"### {title}\n" if title else ""]

    def read(rows: list[Comparison], where: str) -> list[str]:
        if not rows:
            return [f"{where}: no comparison points."]
        seeds = ", ".join(str(s) for s in rows[0].seeds)
        n = rows[0].num_pairs
        pooled = (f"continuation seeds {seeds} pooled, a paired bootstrap stratified by seed"
                  if len(rows[0].seeds) > 1 else f"one continuation seed ({seeds}), a paired bootstrap")
        text = [f"{where}: gen PPL under {judge}, {n} paired samples per point ({pooled}), "
                "DSL fine-tune vs the MDLM control with the same number of updates."]
        pairs = list(dict.fromkeys((r.dsl_sampler, r.control_sampler) for r in rows))
        for a, b in pairs:
            sub = [r for r in rows if (r.dsl_sampler, r.control_sampler) == (a, b)]
            text.append(f"- {a} vs {b}: " + "; ".join(_phrase(r) for r in sub) + ".")
            low = [r for r in sub if r.entropy_diff and r.entropy_diff.high < -ENTROPY_CAVEAT]
            if low:
                ts = ", ".join(str(r.steps) for r in low)
                text.append(f"  DSL's samples have lower entropy at T = {ts} (by more than "
                            f"{ENTROPY_CAVEAT} nats at 95%): part of a lower gen PPL there may be "
                            "repetition, not better text.")
        counts = stats.verdict_counts(r.verdict for r in rows)
        summary = (f"In total DSL is better at {counts['better']}, tied at {counts['tie']} and "
                   f"worse at {counts['worse']} of {len(rows)} points.")
        if counts["worse"]:
            summary += " Where it is worse, this run does not support the claim that DSL wins."
        elif counts["better"] == len(rows):
            summary += " Every point favours DSL beyond the 95% interval."
        else:
            summary += " A tie means the data cannot tell the two apart at this scale."
        text.append(summary)
        spread = [r for r in rows if len(r.per_seed_ratio) > 1
                  and min(r.per_seed_ratio) < 1.0 < max(r.per_seed_ratio)]
        if spread:
            text.append(f"The seeds disagree in direction at {len(spread)} of {len(rows)} points "
                        "(per-seed ratios on both sides of 1).")
        return text

    lines = read(rows, "Continuation seeds")
    for where, more in extra or []:
        lines += [""] + read(more, where)
    if bases:
        lines += [""] + across_bases_sentences(bases)
    out += lines
    return "\n".join(out).strip() + "\n"
