"""The human-readable outputs of a sweep: ``sweep.md`` (a table) and ``sweep.png``.

Every number sits on two compute axes: T, the step budget a sampler was given (the
axis ReMDM and the paper compare), and NFE, the network calls it really made (dslm's
count: cache hits are free, a final argmax "noise removal" call counts). The table has
both columns; the plot has MAUVE and gen PPL against NFE (top row) and against T
(bottom row), log-scale x, one line per model + sampler, with the reference data's own
figure (held-out text vs held-out text, the ceiling) and the AR baseline as horizontal
lines.
"""

from __future__ import annotations

import math
from pathlib import Path

from dslm.io import atomic_write_bytes, atomic_write_text

COLUMNS = ("model", "sampler", "T", "NFE", "MAUVE", "gen PPL", "entropy", "seconds")


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}"
    return str(value)


def _with_ci(rec: dict, key: str, digits: int) -> str:
    """``value (low-high)`` when the record carries a 95% interval ``<key>_ci``, else the value."""
    ci = rec.get(f"{key}_ci")
    if not ci:
        return _fmt(rec.get(key), digits)
    return f"{_fmt(rec.get(key), digits)} ({_fmt(ci['low'], digits)}-{_fmt(ci['high'], digits)})"


def _row(model, sampler, rec: dict) -> list[str]:
    return [model, sampler, _fmt(rec.get("steps")), _fmt(rec.get("nfe")), _with_ci(rec, "mauve", 3),
            _with_ci(rec, "gen_ppl", 1), _fmt(rec.get("entropy")), _fmt(rec.get("seconds"), 2)]


def current_points(doc: dict) -> list[dict]:
    """The finished points of the sweep's current plan, in plan order (model, sampler,
    steps). A folder resumed under other settings (e.g. another ``num_samples``) keeps
    the earlier points in ``sweep.json`` for reuse; they are not this sweep's results.
    A document without a plan (older sweeps) gives every point."""
    points = doc.get("points", {})
    plan = doc.get("plan") or []
    if not plan:
        return list(points.values())
    return [points[k] for k in plan if k in points]


def ordered_points(doc: dict) -> list[dict]:
    """Finished points in the order model, sampler, steps of the sweep's plan."""
    return current_points(doc)


def markdown_table(doc: dict) -> str:
    """The sweep table (one row per finished point, plus reference and AR rows) and notes."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for rec in ordered_points(doc):
        lines.append("| " + " | ".join(_row(rec["model"], rec["sampler"], rec)) + " |")
    if doc.get("ar_baseline"):
        ar = doc["ar_baseline"]
        lines.append("| " + " | ".join(_row("AR baseline", ar.get("sampler", "ar"), ar)) + " |")
    if doc.get("reference"):
        lines.append("| " + " | ".join(_row("reference data", "-", doc["reference"])) + " |")
    s = doc.get("settings", {})
    text = ["# Sweep results", "",
            f"{s.get('num_samples', '?')} samples per point; judge `{s.get('judge')}`"
            + (f" (FALLBACK judge: {s['judge_fallback']})" if s.get("judge_fallback") else "") + ", "
            f"MAUVE features `{s.get('featurizer')}`, reference `{s.get('reference')}`; "
            "entropy in nats (per-sample unigram, averaged); MAUVE and gen PPL with a 95% "
            "bootstrap interval over samples where recorded (dslm.evaluate.intervals); "
            "T = the step budget, NFE = the "
            "network calls made (cache hits free, a final argmax call counted).", "", *lines]
    notes = doc.get("skipped", [])
    if notes:
        text += ["", "Skipped:"] + [f"- {n['model']} / {n['sampler']}: {n['reason']}" for n in notes]
    return "\n".join(text) + "\n"


#: The panels of sweep.png: (metric key, axis label, y scale).
PANELS = (("mauve", "MAUVE", "MAUVE (higher is better)", "linear"),
          ("gen_ppl", "gen PPL", "gen PPL under the judge (lower is better)", "log"))


#: The compute axes: (record key, axis label, title word).
AXES = (("nfe", "NFE (network calls per sample batch)", "NFE"),
        ("steps", "T (step budget)", "T"))


def _panel(ax, doc: dict, metric: str, title: str, label: str, yscale: str,
           axis: tuple[str, str, str] = AXES[0]) -> None:
    """One metric vs NFE (or T): a line per model + sampler, reference and AR baseline as levels."""
    xkey, xlabel, xword = axis
    lines: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for rec in ordered_points(doc):
        if rec.get(metric) is not None and rec.get(xkey):
            lines.setdefault((rec["model"], rec["sampler"]), []).append((rec[xkey], rec[metric]))
    for (model, sampler), pts in lines.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{model} / {sampler}")
    for key, name, style in (("reference", "reference data", "--"), ("ar_baseline", "AR baseline", ":")):
        m = (doc.get(key) or {}).get(metric)
        if m is not None:
            ax.axhline(m, color="gray" if key == "reference" else "black", linestyle=style, label=name)
    ax.set_xscale("log")
    nfes = sorted({p[0] for pts in lines.values() for p in pts})
    if nfes:
        from matplotlib.ticker import NullFormatter

        ax.set_xticks(nfes, [str(n) for n in nfes])
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(label)
    ax.set_yscale(yscale)
    if metric == "mauve":
        ax.set_ylim(0, 1.05)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"{title} vs {xword}")


def plot_png(doc: dict) -> bytes:
    """PNG bytes: MAUVE and generative perplexity side by side, vs NFE (top) and vs T (bottom)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(len(AXES), len(PANELS), figsize=(13, 9), dpi=110, squeeze=False)
    for row, axis in zip(grid, AXES):
        for ax, panel in zip(row, PANELS):
            _panel(ax, doc, *panel, axis=axis)
    handles, labels = grid[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=3, frameon=False)
    buf = io.BytesIO()
    fig.tight_layout(rect=(0, 0.025 + 0.02 * ((len(labels) + 2) // 3), 1, 1))
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_report(doc: dict, out_dir: str | Path, plot: bool = True) -> None:
    """Write ``sweep.md`` (and ``sweep.png`` when ``plot``) into ``out_dir`` atomically."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "sweep.md", markdown_table(doc))
    if plot:
        atomic_write_bytes(out_dir / "sweep.png", plot_png(doc))
