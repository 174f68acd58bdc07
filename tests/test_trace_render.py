"""Trace pictures: every sampler family renders to GIF / PNG / HTML; the HTML parses and
fetches nothing; `dslm sample --trace/--live` and `dslm trace render` end to end."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser

import pytest
import torch

from conftest import tiny_model_config
from dslm.cli import main
from dslm.sampling import sample
from dslm.trace import TraceRecorder, read_trace
from dslm.trace.frames import build_frames
from dslm.trace.live import LiveView, live_enabled, live_text
from dslm.trace.render import render_trace

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")

#: one sampler per family (masked, ReMDM, ROAR, continuous, hybrid, AR) and DSL variants
FAMILIES = [("mdlm", "mdlm"), ("remdm-loop", "mdlm"), ("remdm-published", "mdlm"),
            ("roar-ar", "dsl"), ("dsl-mdlm", "dsl"), ("dsl-remdm-loop", "dsl"),
            ("dsl-continuous", "dsl"), ("hybrid", "dsl"), ("ar", "ar")]


class Tok:
    def decode(self, ids):
        return "".join("abcdefghij<>"[i] for i in ids) + ("\n" if 10 in ids else "")


def model_of(kind):
    from dslm.models import build_model

    torch.manual_seed(0)
    model = build_model(tiny_model_config(kind, vocab_size=12)).eval()
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


class Resources(HTMLParser):
    """Collects tags and every src/href an HTML page holds."""

    def __init__(self):
        super().__init__()
        self.tags, self.refs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for key, value in attrs:
            if key in ("src", "href", "srcset", "poster", "data"):
                self.refs.append((tag, key, value or ""))


def check_self_contained(text: str) -> Resources:
    parser = Resources()
    parser.feed(text)
    parser.close()
    assert "html" in parser.tags and "script" in parser.tags
    assert "link" not in parser.tags and "iframe" not in parser.tags
    for tag, key, value in parser.refs:
        assert not (tag == "script" and key == "src"), value
        assert value.startswith("data:") or value.startswith("#"), (tag, key, value[:60])
    assert "http://" not in text and "https://" not in text and "@import" not in text
    return parser


@pytest.mark.parametrize("name,kind", FAMILIES)
def test_every_sampler_family_renders(name, kind, tmp_path):
    from PIL import Image

    rec = TraceRecorder(max_sequences=2)
    sample(model_of(kind), name, 3, 16, 8, torch.Generator().manual_seed(0), trace=rec)
    path = rec.write(tmp_path / "t.jsonl", Tok())
    written = render_trace(path, tmp_path / "out")
    header, records = read_trace(path)
    frames = build_frames(header, records)
    gif = Image.open(written["gif"])
    assert gif.format == "GIF" and gif.n_frames == len(frames) >= 2
    png = Image.open(written["heatmap"])
    assert png.format == "PNG" and png.size[0] > 300
    page = written["html"].read_text()
    check_self_contained(page)
    assert '<meta name="viewport"' in page and "data:image/png;base64," in page
    # the last frame is the final tokens, as decoded pieces
    assert frames[-1].final and all(c.kind == "committed" for row in frames[-1].rows for c in row)


def test_frames_show_evidence_only_where_dsl_has_snr():
    rec = TraceRecorder(max_sequences=1)
    sample(model_of("dsl"), "dsl-continuous", 1, 16, 6, torch.Generator().manual_seed(0), trace=rec)
    header, records = rec.header(Tok()), rec.records
    frames = build_frames(header, records)
    assert all(c.kind == "masked" for c in frames[0].rows[0])          # s = 0: nothing known
    assert all(c.kind == "evidence" for c in frames[-2].rows[0])       # s > 0, not committed
    assert all(0 <= c.prob <= 1 for c in frames[-2].rows[0])
    assert len(build_frames(header, records, max_frames=3)) == 3


def test_html_escapes_script_closing_in_token_text(tmp_path):
    class Evil:
        def decode(self, ids):
            return "</script><script src='https://x.example/a.js'>"

    rec = TraceRecorder(max_sequences=1)
    sample(model_of("mdlm"), "mdlm", 1, 16, 4, torch.Generator().manual_seed(0), trace=rec)
    written = render_trace(rec.write(tmp_path / "t.jsonl", Evil()), tmp_path / "o")
    page = written["html"].read_text()
    assert page.count("</script>") == 1
    parser = Resources()
    parser.feed(page)
    assert parser.tags.count("script") == 1


def test_control_characters_in_token_text_render_as_escapes(tmp_path):
    class Controls:                      # a BPE trained on a corpus may hold e.g. U+001D
        def decode(self, ids):
            return "a\x1d\x00b"

    rec = TraceRecorder(max_sequences=1)
    sample(model_of("mdlm"), "mdlm", 1, 16, 4, torch.Generator().manual_seed(0), trace=rec)
    written = render_trace(rec.write(tmp_path / "t.jsonl", Controls()), tmp_path / "o")
    assert written["gif"].stat().st_size > 0
    cells = [c for c in build_frames(*read_trace(tmp_path / "t.jsonl"))[-1].rows[0]]
    assert {c.text for c in cells} == {"a\\x1d\\x00b"}


# ---------------------------------------------------------------- live view


def test_live_text_styles_cells():
    from dslm.trace.frames import Cell

    cells = [Cell("committed", "the", 1.0), Cell("masked", "", 0.2),
             Cell("evidence", "cat", 0.5), Cell("committed", "sat", 0.9, changed=True)]
    text = live_text(cells, "step 1")
    assert text.plain == "step 1\nthe _ cat sat"
    styles = {text.plain[s.start:s.end]: str(s.style) for s in text.spans}
    assert styles["the"] == "bold" and styles["_"] == "grey50"
    assert styles["cat"].startswith("rgb(") and "green" in styles["sat"]


def test_live_view_draws_on_a_terminal_console():
    from rich.console import Console

    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=80, color_system=None)
    live = LiveView(Tok(), console=console, fps=1e9)
    sample(model_of("mdlm"), "mdlm", 2, 16, 4, torch.Generator().manual_seed(0), trace=live)
    live.close()
    shown = buf.getvalue()
    assert "final tokens" in shown and "NFE" in shown


def test_live_is_off_without_a_terminal():
    assert not live_enabled(io.StringIO())

    class Tty(io.StringIO):
        def isatty(self):
            return True
    assert live_enabled(Tty())


# ---------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from dslm.data.tokenizers import CharTokenizer, tokenizer_writer
    from dslm.models import build_model
    from dslm.models.checkpoint import save

    tok = CharTokenizer("abcdefghij")
    torch.manual_seed(0)
    model = build_model(tiny_model_config("dsl", vocab_size=tok.vocab_size))
    return save(model, tmp_path_factory.mktemp("ck") / "dsl", metadata={"tokenizer": tok.spec()},
                write_extra=tokenizer_writer(tok))


def test_cli_trace_and_live_fallback_then_render(ckpt, tmp_path, capsys):
    out, trace = tmp_path / "s.jsonl", tmp_path / "trace.jsonl"
    base = ["sample", "--ckpt", str(ckpt), "--sampler", "hybrid", "--steps", "6",
            "--num-samples", "3", "--seq-len", "12", "--seed", "1"]
    assert main(base + ["--out", str(tmp_path / "plain.jsonl")]) == 0
    assert main(base + ["--out", str(out), "--trace", str(trace), "--trace-sequences", "2",
                        "--live"]) == 0
    captured = capsys.readouterr()
    assert "--live is off: stdout is not a terminal" in captured.err
    plain = [json.loads(x)["tokens"] for x in (tmp_path / "plain.jsonl").read_text().splitlines()]
    traced = [json.loads(x)["tokens"] for x in out.read_text().splitlines()]
    assert plain == traced
    header, records = read_trace(trace)
    assert header["sampler"] == "hybrid" and header["pieces"]
    assert [r["rows"] for r in records if r["type"] == "final"] == [[0, 1]]
    assert main(["trace", "render", str(trace), "--out", str(tmp_path / "pics")]) == 0
    for name in ("trace.gif", "heatmap.png", "trace.html"):
        assert (tmp_path / "pics" / name).stat().st_size > 0


def test_cli_trace_errors(ckpt, tmp_path, capsys):
    base = ["sample", "--ckpt", str(ckpt), "--sampler", "mdlm", "--steps", "4",
            "--num-samples", "2", "--seq-len", "12", "--out", str(tmp_path / "s.jsonl")]
    assert main(base + ["--trace", str(tmp_path / "t.jsonl"), "--trace-sequences", "65"]) == 2
    assert main(base + ["--trace", str(tmp_path / "s.jsonl")]) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n")
    assert main(["trace", "render", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert main(["trace"]) == 2
    err = capsys.readouterr().err
    assert "--trace-sequences" in err and "same file" in err and "not JSON" in err
