"""Evidence from demo runs: the recipe's facts per run, and docs/EVIDENCE.md from run folders.

* :func:`recipe_facts` (written into ``demo.json`` by ``dslm demo``): each base MDLM's
  validation NELBO curve (nats per token, from ``metrics.jsonl``), with the unigram
  model's NELBO on the same validation draws where recorded (``val_unigram``,
  dslm.train.unigram), and the corpus's unigram entropy ``H_1 = -sum_v p(v) log p(v)``
  of the training blocks under the same tokenizer. A model on the unigram plateau has
  NELBO ~ H_1; the paired gap NELBO - val_unigram says how far below it a model is.
* :func:`evidence_markdown` renders one section per corpus from a folder holding that
  run's ``demo.json``, ``sweep.json`` and ``verdicts.json``: NELBO end vs H_1, gen PPL
  and MAUVE with 95% intervals for every sampler at every T, the verdict per pair and
  T, and the wall / CPU seconds per stage. No number in it is typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from dslm.errors import DSLMError
from dslm.evaluate.report import current_points
from dslm.evaluate.stats import verdict_counts, verdict_split


def nelbo_curve(run_dir: str | Path) -> list[list[float]]:
    """[[step, validation NELBO(, unigram NELBO on the same draws)], ...] of a training
    run's ``metrics.jsonl`` (the third item where the run recorded ``val_unigram``)."""
    from dslm.io import jsonl_lines_tolerant

    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [row for _, row in jsonl_lines_tolerant(path.read_text(encoding="utf-8"), path)]
    return [[int(r["step"]), round(float(r["val_loss"]), 4)]
            + ([round(float(r["val_unigram"]), 4)] if "val_unigram" in r else [])
            for r in rows if "val_loss" in r]


def recipe_facts(data_cfg, base_runs: dict[str, Path]) -> dict:
    """``{"unigram_entropy": H_1, "nelbo": {run: curve}}`` for ``demo.json``."""
    from dslm.data.prepare import prepare_data
    from dslm.train.unigram import token_counts, unigram_entropy

    data = prepare_data(data_cfg, progress=False)
    return {"unigram_entropy": round(unigram_entropy(token_counts(data.train, data.tokenizer.vocab_size)), 4),
            "nelbo": {name: nelbo_curve(path) for name, path in base_runs.items()}}


# -- EVIDENCE.md -------------------------------------------------------------------------

def _load(folder: Path, name: str) -> dict:
    path = folder / name
    if not path.is_file():
        raise DSLMError(f"evidence folder {folder} has no {name}")
    return json.loads(path.read_text(encoding="utf-8"))


def _ci(rec: dict, key: str, digits: int) -> str:
    value = rec.get(key)
    if value is None:
        return "-"
    ci = rec.get(f"{key}_ci")
    text = f"{value:.{digits}f}"
    return f"{text} ({ci['low']:.{digits}f}-{ci['high']:.{digits}f})" if ci else text


def _short_model(label: str) -> str:
    return "DSL" if label.startswith("DSL") else "MDLM" if label.startswith("MDLM") else label


def sampler_table(sweep: dict) -> list[str]:
    """One row per (model, sampler): gen PPL and MAUVE with 95% CIs at each T."""
    points = current_points(sweep)
    steps = sorted({int(p["steps"]) for p in points})
    rows: dict[tuple[str, str], dict[int, dict]] = {}
    for p in points:
        rows.setdefault((_short_model(p["model"]), p["sampler"]), {})[int(p["steps"])] = p
    head = ["model / sampler"] + [f"gen PPL T={t}" for t in steps] + [f"MAUVE T={t}" for t in steps]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (model, sampler), by_t in rows.items():
        cells = [_ci(by_t[t], "gen_ppl", 0) if t in by_t else "-" for t in steps]
        cells += [_ci(by_t[t], "mauve", 3) if t in by_t else "-" for t in steps]
        lines.append(f"| {model} / {sampler} | " + " | ".join(cells) + " |")
    for key, name in (("ar_baseline", "AR baseline (T = L)"), ("reference", "held-out text")):
        rec = sweep.get(key)
        if rec:
            cells = [_ci(rec, "gen_ppl", 0)] + ["〃"] * (len(steps) - 1)
            cells += [_ci(rec, "mauve", 3)] + ["〃"] * (len(steps) - 1)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def verdict_table(verdicts: dict) -> list[str]:
    lines = ["| base seed | DSL sampler vs control | T | pairs | gen PPL DSL / control | "
             "ratio (95% CI) | verdict |", "|---|---|---|---|---|---|---|"]
    for base, rows in verdicts.get("tables", {}).items():
        for r in rows:
            ratio = r["ratio"]
            lines.append(f"| {base.replace('base seed ', '')} | {r['dsl_sampler']} vs "
                         f"{r['control_sampler']} | {r['steps']} | {r['num_pairs']} | "
                         f"{r['ppl_dsl']:.0f} / {r['ppl_control']:.0f} | {ratio['estimate']:.3f} "
                         f"({ratio['low']:.3f}-{ratio['high']:.3f}) | **{r['verdict']}** |")
    return lines


def across_bases_table(rows: list[dict]) -> list[str]:
    """``verdicts.json``'s ``across_bases`` rows as a Markdown table."""
    from dslm.evaluate.compare import AcrossBases, across_bases_markdown
    from dslm.evaluate.stats import Interval

    objs = [AcrossBases(**{**r, "ratio": Interval(**r["ratio"])}) for r in rows]
    return across_bases_markdown(objs).strip().split("\n")


def _verdict_counts(verdicts: dict) -> dict[str, int]:
    """better / tie / worse over every base seed's table of ``verdicts.json``."""
    return verdict_counts(r["verdict"] for rows in verdicts.get("tables", {}).values() for r in rows)


def corpus_section(name: str, folder: Path) -> list[str]:
    """The Markdown section of one corpus's run folder."""
    demo, sweep, verdicts = (_load(folder, f) for f in ("demo.json", "sweep.json", "verdicts.json"))
    recipe = demo.get("recipe", {})
    h1 = recipe.get("unigram_entropy")
    out = [f"## {name}", ""]
    for run, curve in recipe.get("nelbo", {}).items():
        if curve and h1 is not None:
            out.append(f"- `{run}`: " + plateau_sentence(curve, h1))
    s = sweep.get("settings", {})
    trunc = (s.get("text_decoding") or {}).get("truncate_tokens")
    out += ["", f"Table sweep (seed-0 models, {s.get('num_samples')} samples per point): judge "
            f"`{s.get('judge')}`{' (FALLBACK)' if s.get('judge_fallback') else ''} "
            f"(judge dtype {s.get('judge_dtype', 'float32')}), MAUVE features "
            f"`{s.get('featurizer')}`" + (f", each text's first {trunc} judge tokens" if trunc else "")
            + "; 95% bootstrap intervals over samples (MAUVE: conditional on its quantisation).", ""]
    out += sampler_table(sweep)
    out += ["", table_reading(sweep, demo).strip()]
    c = _verdict_counts(verdicts)
    out += ["", f"Verdicts (paired bootstrap, stratified by continuation seed; judge "
            f"`{verdicts.get('judge')}`): DSL better at {c['better']}, tied at {c['tie']}, worse at "
            f"{c['worse']} of {sum(c.values())} points.", ""]
    out += verdict_table(verdicts)
    if verdicts.get("across_bases"):
        out += ["", "Across base seeds (each base's pooled ratio one draw; 95% t-interval of the "
                "mean log ratio over bases):", ""]
        out += across_bases_table(verdicts["across_bases"])
    if verdicts.get("pooled_mauve"):
        from dslm.evaluate.pooled import markdown as pooled_markdown

        out += ["", pooled_markdown(verdicts["pooled_mauve"]).strip()]
    out += ["", stage_times(demo), ""]
    if (folder / "reading.md").is_file():
        out += [(folder / "reading.md").read_text(encoding="utf-8").replace("### ", "#### "), ""]
    return out


def plateau_gap(curve: list) -> float | None:
    """NELBO minus the unigram model's NELBO on the same validation draws, at the curve's end."""
    end = curve[-1] if curve else []
    return end[1] - end[2] if len(end) > 2 else None


def plateau_sentence(curve: list, h1: float) -> str:
    """Where a base MDLM's validation NELBO curve ends against the unigram plateau."""
    end = curve[-1]
    text = (f"validation NELBO {curve[0][1]:.2f} at step {curve[0][0]} -> {end[1]:.2f} at step "
            f"{end[0]}; unigram entropy H_1 = {h1:.2f}")
    gap = plateau_gap(curve)
    if gap is None:
        return text + f" ({abs(h1 - end[1]):.2f} nats {'below' if end[1] < h1 else 'ABOVE'} it)"
    return text + (f"; the unigram model scores {end[2]:.2f} on the same validation draws, so the "
                   f"model is {abs(gap):.2f} nats {'below' if gap < 0 else 'ABOVE'} the plateau")


def demo_wall(demo: dict) -> float:
    """The run's elapsed wall seconds (stages side by side), else the sum of its stages'."""
    return float(demo.get("wall_seconds") or demo.get("total_seconds") or 0.0)


def _stage_threads(demo: dict):
    """Torch threads per stage: recorded, else 1 for worker processes (dslm.stagepool's
    default), else the run's own thread count."""
    if "stage_threads" in demo:
        return demo["stage_threads"]
    if demo.get("workers", 1) > 1:
        return 1
    return (demo.get("environment") or {}).get("torch_threads", "?")


def stage_times(demo: dict) -> str:
    """One sentence: every stage's wall / CPU seconds, the run's elapsed wall and CPU total."""
    stages, cpu = demo.get("stages", {}), demo.get("cpu_stages", {})
    env = demo.get("environment", {})
    workers = demo.get("workers", 1)
    threads = _stage_threads(demo)
    how = (f"{workers} stage processes side by side, {threads} torch thread each" if workers > 1
           else f"one process, torch threads {threads}")
    return (f"Stage times (wall s / CPU s; {env.get('cpu_count', demo.get('cpu_count'))} cores, {how}): "
            + ", ".join(f"{k} {stages[k]:.0f}/{cpu.get(k, 0):.0f}" for k in stages)
            + f". Elapsed {demo_wall(demo):.0f} s wall, {demo.get('total_cpu_seconds', 0):.0f} CPU-s"
            + (" (summed over resumed invocations: not one run's budget)." if resumed(demo) else "."))


def resumed(demo: dict) -> bool:
    """Whether the demo folder was finished by more than one invocation (its times add up)."""
    return float(demo.get("wall_before") or 0.0) > 0.0


def evidence_markdown(corpora: list[tuple[str, Path]]) -> str:
    """docs/EVIDENCE.md: a summary line per corpus, then one section per corpus."""
    head = ["# Evidence on several corpora (generated by scripts/evidence.py)", "",
            "Each section is generated from the files of one `dslm demo` run (demo.json, "
            "sweep.json, verdicts.json, reading.md) copied next to it; rerun "
            "`python scripts/evidence.py render` after a new run.", "",
            "Protocol. Every corpus runs `dslm demo` with the repository's defaults, only "
            "`--corpus` changed (seed 0): two base MDLMs (seeds 0 and 1), DSL fine-tune vs an "
            "equal-update MDLM control from each (three continuation seeds from base 0, one from "
            "base 1), a table sweep of the seed-0 pair at T = 8/16/32 (32 samples per point), and "
            "paired comparisons of dsl-mdlm vs mdlm and dsl-remdm-loop vs remdm-loop at the same "
            "T: 86 samples per continuation seed, so 258 pooled pairs per point from base 0 (the "
            "second base: as many as each section's table says). Gen PPL is SmolLM2-135M's "
            "perplexity of each text's first 64 SmolLM2 tokens (lower is better); MAUVE compares "
            "all-MiniLM-L6-v2 features of the samples with held-out text (higher is better), at "
            "the comparison points on the 258 pooled samples. Intervals are 95% percentile "
            "bootstraps over samples; a verdict is `better` / `worse` when the paired interval of "
            "the gen-PPL ratio DSL / control lies below / above 1, else `tie`. The judge's "
            "precision is each section's `judge dtype`. Wall seconds depend on what else ran on "
            "the machine; CPU-seconds (user + system) measure the work. A section whose name "
            "gives a number of base seeds ran `base_seeds=N extra_base_samples=86`: N base MDLMs, "
            "86 pairs per point for each base after the first, and a verdict across base seeds "
            "(each base's ratio one draw, a 95% t-interval over bases).", "",
            *summary_table(corpora)]
    body = []
    for name, folder in corpora:
        body += [""] + corpus_section(name, folder)
    return "\n".join(head + body).rstrip() + "\n"


def summary_table(corpora: list[tuple[str, Path]]) -> list[str]:
    """One line per corpus: NELBO end vs H_1, verdict counts, the run's wall and CPU seconds."""
    lines = ["| corpus | MDLM NELBO end (base seed 0 / 1) | minus the unigram model on the same draws "
             "| unigram entropy | DSL better / tie / worse "
             "(2 pairs x 3 T x each base seed) | pairs per point (base seed 0) | demo wall s | "
             "demo CPU-s | stage processes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, folder in corpora:
        demo, verdicts = _load(folder, "demo.json"), _load(folder, "verdicts.json")
        recipe = demo.get("recipe", {})
        curve = (recipe.get("nelbo") or {}).get("mdlm") or [[0, float("nan")]]
        curve1 = (recipe.get("nelbo") or {}).get("mdlm-b1")
        ends = f"{curve[-1][1]:.2f}" + (f" / {curve1[-1][1]:.2f}" if curve1 else "")
        gaps = " / ".join("-" if g is None else f"{g:+.2f}"
                          for g in [plateau_gap(curve)] + ([plateau_gap(curve1)] if curve1 else []))
        c = _verdict_counts(verdicts)
        lines.append(f"| {name} | {ends} | {gaps} | {recipe.get('unigram_entropy', float('nan')):.2f} | "
                     f"{verdict_split(c)} of {sum(c.values())} | {_pairs(verdicts)} | "
                     f"{demo_wall(demo):.0f}{' (resumed)' if resumed(demo) else ''} | "
                     f"{demo.get('total_cpu_seconds', 0):.0f}{' (resumed)' if resumed(demo) else ''} | "
                     f"{demo.get('workers', 1)} x "
                     f"{_stage_threads(demo)} "
                     "thread |")
    return lines


def _pairs(verdicts: dict) -> str:
    rows = next(iter(verdicts.get("tables", {}).values()), [])
    return str(rows[0]["num_pairs"]) if rows else "-"


def table_reading(sweep: dict, demo: dict | None = None) -> str:
    """Plain sentences generated from a table sweep (and the recipe facts in ``demo``)."""
    points = current_points(sweep)
    ref, ar = sweep.get("reference") or {}, sweep.get("ar_baseline") or {}
    text = []
    if points and ref.get("gen_ppl"):
        ppl = [p["gen_ppl"] for p in points if p.get("gen_ppl")]
        mv = [p["mauve"] for p in points if p.get("mauve") is not None]
        text.append(f"Held-out text scores gen PPL {ref['gen_ppl']:.0f}"
                    + (f" and MAUVE {ref['mauve']:.2f} (against a second held-out draw)"
                       if ref.get("mauve") is not None else "")
                    + f"; the diffusion samplers' points span gen PPL {min(ppl):.0f}-{max(ppl):.0f}"
                    + (f" and MAUVE {min(mv):.3f}-{max(mv):.3f}" if mv else "")
                    + (f", the AR baseline {ar['gen_ppl']:.0f}" if ar.get("gen_ppl") else "")
                    + ": every tiny model is far from the data, so the table checks the pipeline "
                    "and the direction of effects, not the paper's numbers.")
    best = sorted((p for p in points if p.get("gen_ppl")), key=lambda p: p["gen_ppl"])
    if best:
        b = best[0]
        text.append(f"Lowest gen PPL: {_short_model(b['model'])} / {b['sampler']} at T = {b['steps']} "
                    f"({_ci(b, 'gen_ppl', 0)}).")
    cont = [p for p in points if p["sampler"] == "dsl-continuous" and p.get("entropy") is not None]
    if cont and ref.get("entropy"):
        ents = ", ".join(f"{p['entropy']:.2f} (T = {p['steps']})" for p in sorted(cont, key=lambda p: p["steps"]))
        ok = all(abs(p["entropy"] - ref["entropy"]) <= 0.1 * ref["entropy"]
                 for p in cont if p["steps"] >= 16)
        text.append(f"`dsl-continuous` entropy {ents} vs {ref['entropy']:.2f} for held-out text: "
                    + ("within 10% at T >= 16 (no collapse)." if ok else "NOT within 10% at T >= 16."))
    recipe = (demo or {}).get("recipe") or {}
    curve = (recipe.get("nelbo") or {}).get("mdlm")
    if curve and recipe.get("unigram_entropy") is not None:
        text.append("The base MDLM (seed 0): " + plateau_sentence(curve, recipe["unigram_entropy"]) + ".")
    return " ".join(text) + "\n"
