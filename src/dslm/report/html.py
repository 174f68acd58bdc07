"""``report.html``: the demo's results on one self-contained page (readable on a phone).

Sections, each present when the demo wrote its inputs: the generated reading and the
verdict table (``reading.md``, ``verdicts.md``), the sweep table (``sweep/sweep.json``)
and plot (``sweep/sweep.png``, inlined), a side-by-side of one sample per sampler and T
(the DSL fine-tune against the MDLM control with the same sampler seed: sample 0 of
each point), one trace per sampler family (``traces/``: heat-map and a filmstrip of
frames), the analyses (``analyze/``: every PNG inlined and every Markdown file shown,
the hook for ``dslm analyze``'s outputs), and the stage times (``demo.json``).
Images are data: URIs; the page fetches nothing.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from dslm.trace.html import CSS, png_uri

REPORT_CSS = CSS + """
.pair{display:grid;grid-template-columns:1fr 1fr;gap:8px;margin:6px 0 14px}
.pair>div{background:#fafafa;border:1px solid #ddd;border-radius:6px;padding:8px;
font-size:13px;white-space:pre-wrap;word-break:break-word}
.pair h4{margin:0 0 4px;font-size:12px;color:#555}
.muted{color:#666;font-size:13px}
figure{margin:10px 0}figcaption{font-size:12px;color:#555}
@media (max-width:640px){.pair{grid-template-columns:1fr}body{padding:8px}
td,th{padding:2px 4px;font-size:12px}}
"""

#: characters of a sample shown in the side-by-side
SAMPLE_CHARS = 360


def _inline(text: str) -> str:
    """Markdown inline marks (code, bold) on escaped text."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def markdown_html(md: str) -> str:
    """The small Markdown subset dslm writes (headings, bullets, pipe tables, paragraphs)."""
    out, para, rows, items = [], [], [], []

    def flush():
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()
        if items:
            out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()
        if rows:
            body = [r for r in rows if not re.fullmatch(r"\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?", r)]
            cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in body]
            head, rest = cells[0], cells[1:]
            out.append('<div class="scroll"><table><tr>' + "".join(f"<th>{_inline(c)}</th>" for c in head)
                       + "</tr>" + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r)
                                           + "</tr>" for r in rest) + "</table></div>")
            rows.clear()

    for line in md.splitlines():
        s = line.strip()
        if not s:
            flush()
        elif s.startswith("|"):
            if para or items:
                flush()
            rows.append(s)
        elif s.startswith("#"):
            flush()
            level = min(len(s) - len(s.lstrip("#")) + 1, 4)
            out.append(f"<h{level}>{_inline(s.lstrip('#').strip())}</h{level}>")
        elif s.startswith("- "):
            if para or rows:
                flush()
            items.append(s[2:])
        else:
            if rows or items:
                flush()
            para.append(s)
    flush()
    return "\n".join(out)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _first_text(path: Path) -> str | None:
    try:
        with path.open(encoding="utf-8") as f:
            line = f.readline()
        return json.loads(line).get("text")
    except (OSError, ValueError, AttributeError):
        return None


def _control_sampler(sampler: str, pairs: list[tuple[str, str]]) -> str:
    """The MDLM control's sampler shown beside a DSL sampler: the demo's matched pair,
    the same name when the sampler fits both kinds, else plain ``mdlm``."""
    matched = dict(pairs)
    if sampler in matched:
        return matched[sampler]
    return sampler if sampler == "roar-ar" else "mdlm"


def side_by_side(out: Path, doc: dict, pairs: list[tuple[str, str]], dsl_label: str,
                 ctl_label: str) -> str:
    """One DSL sample beside one control sample per DSL sampler and T (sample 0 of each
    point: the two points share the sampler seed)."""
    from dslm.evaluate.sweep import _safe

    samples = out / "sweep" / "samples"
    n = doc.get("settings", {}).get("num_samples")
    from dslm.evaluate.report import current_points

    points = {(r["model"], r["sampler"], r["steps"]): r for r in current_points(doc)}

    def text(label, sampler, steps):
        rec = points.get((label, sampler, steps))
        if rec is None:
            return None
        name = f"{_safe(label)}__{sampler}__T{steps}__n{n}__L{rec['seq_len']}__seed{rec['seed']}.jsonl"
        return _first_text(samples / name)

    parts = []
    for (label, sampler, steps) in sorted(points, key=lambda k: (k[1], k[2])):
        if label != dsl_label:
            continue
        control = _control_sampler(sampler, pairs)
        a, b = text(dsl_label, sampler, steps), text(ctl_label, control, steps)
        if a is None:
            continue
        cut = (lambda t: "(no sample)" if t is None else
               (t if len(t) <= SAMPLE_CHARS else t[:SAMPLE_CHARS] + "\u2026"))
        parts.append(f"<h4>{html.escape(sampler)} vs {html.escape(control)}, T = {steps}</h4>"
                     f'<div class="pair"><div><h4>DSL: {html.escape(sampler)}</h4>'
                     f"{html.escape(cut(a))}</div><div><h4>MDLM control: {html.escape(control)}"
                     f"</h4>{html.escape(cut(b))}</div></div>")
    return "\n".join(parts)


def _img(path: Path, alt: str, caption: str = "") -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img alt="{html.escape(alt)}" src="{png_uri(data)}">{cap}</figure>'


def traces_section(traces: list[dict]) -> str:
    parts = []
    for t in traces:
        budget = (f"L = {t.get('seq_len')}, one call per token" if t["sampler"] == "ar"
                  else f"T = {t['steps']}, L = {t.get('seq_len')}")
        parts.append(f"<h3>{html.escape(t['sampler'])} on the {html.escape(t['model'])} model: "
                     f"{budget}, NFE {t.get('nfe')}</h3>")
        parts.append(_img(Path(t["frames"]), f"{t['sampler']} frames",
                          "four frames, first to final tokens: committed black (green when just "
                          "committed), DSL evidence in blue (background = top-1 probability), "
                          "masked as underscores"))
        parts.append(_img(Path(t["heatmap"]), f"{t['sampler']} heat-map",
                          "top-1 posterior probability per position over network calls, and "
                          "the state (SNR for DSL, committed/masked otherwise)"))
    return "\n".join(parts)


def analyses_section(out: Path) -> str:
    """Whatever ``dslm analyze`` left in ``<out>/analyze/``: Markdown shown, PNGs inlined."""
    folder = out / "analyze"
    if not folder.is_dir():
        return ""
    parts = []
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".md":
            parts.append(markdown_html(path.read_text(encoding="utf-8")))
        elif path.suffix == ".png":
            parts.append(_img(path, path.stem, str(path.relative_to(out))))
    return "\n".join(parts)


def write_demo_report(cfg, out, traces: list[dict] | None = None) -> Path:
    """Write ``<out>/report.html`` from what the demo wrote; returns its path."""
    from dslm.demo import _labels
    from dslm.evaluate.report import markdown_table
    from dslm.io import atomic_write_text

    out = Path(out)
    dsl_label, ctl_label = _labels(cfg)
    doc = _read_json(out / "sweep" / "sweep.json")
    body = [f"<h1>dslm demo report</h1><p class=\"muted\">{html.escape(str(out))}: DSL fine-tune "
            "vs the MDLM control with the same number of updates, on the demo's corpus.</p>"
            '<p class="muted">Sections: <a href="#sweep">sweep</a> &middot; <a href="#samples">'
            'samples</a> &middot; <a href="#traces">traces</a> &middot; <a href="#times">stage '
            "times</a></p>"]
    for name in ("reading.md", "verdicts.md"):
        if (out / name).is_file():
            body.append(markdown_html((out / name).read_text(encoding="utf-8")))
    if doc:
        body.append('<div id="sweep"></div>' + markdown_html(markdown_table(doc)))
        body.append(_img(out / "sweep" / "sweep.png", "sweep plot",
                         "MAUVE and gen PPL against NFE and T"))
        pairs = side_by_side(out, doc, cfg.pairs(), dsl_label, ctl_label)
        if pairs:
            body.append("<h2 id=\"samples\">Samples side by side</h2><p class=\"muted\">Sample 0 of each point; "
                        "the two points share the sampler seed.</p>" + pairs)
    if traces:
        body.append("<h2 id=\"traces\">How a sequence forms: one trace per sampler family</h2>"
                    "<p class=\"muted\">One sequence per sampler, recorded with "
                    "<code>dslm sample --trace</code>'s recorder; files in "
                    "<code>traces/</code> (render any with <code>dslm trace render</code>).</p>"
                    + traces_section(traces))
    analyses = analyses_section(out)
    if analyses:
        body.append("<h2 id=\"analyses\">Calibration and self-correction</h2>" + analyses)
    times = _read_json(out / "demo.json")
    if times.get("stages"):
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td>"
                       f"<td>{times.get('cpu_stages', {}).get(k, '-')}</td></tr>"
                       for k, v in times["stages"].items())
        body.append("<h2 id=\"times\">Stage times</h2><div class=\"scroll\"><table><tr><th>stage</th>"
                    f"<th>wall s</th><th>CPU s</th></tr>{rows}</table></div>")
    page = ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>dslm demo report</title><style>{REPORT_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
    path = out / "report.html"
    atomic_write_text(path, page)
    return path
