"""The demo's report.html: traces per sampler family, the side-by-side, the analyses hook,
self-contained and phone-readable; built from a synthetic demo folder in seconds."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_model_config
from dslm.demo import _labels, load_demo_config
from dslm.evaluate.sweep import _safe
from test_trace_render import Resources

pytest.importorskip("matplotlib")
pytest.importorskip("PIL")


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    from dslm.data.tokenizers import CharTokenizer, tokenizer_writer
    from dslm.models import build_model
    from dslm.models.checkpoint import save

    out = tmp_path_factory.mktemp("demo")
    tok = CharTokenizer("abcdefghij")
    torch.manual_seed(0)
    for stage, kind in (("mdlm-control", "mdlm"), ("dsl", "dsl"), ("ar", "ar")):
        model = build_model(tiny_model_config(kind, vocab_size=tok.vocab_size))
        save(model, out / stage / "checkpoint", metadata={"tokenizer": tok.spec()},
             write_extra=tokenizer_writer(tok))
    cfg = load_demo_config(None, [f"out={out}", "steps=[4,8]"])
    dsl_label, ctl_label = _labels(cfg)
    points = {}
    (out / "sweep" / "samples").mkdir(parents=True)
    for label, sampler, text in ((dsl_label, "dsl-remdm-loop", "DSL <says> hello"),
                                 (ctl_label, "remdm-loop", "control says bye")):
        rec = {"key": f"{label}|{sampler}|4", "model": label, "sampler": sampler, "steps": 4,
               "nfe": 4, "seq_len": 16, "seed": 0, "mauve": 0.5, "gen_ppl": 10.0,
               "entropy": 2.0, "seconds": 1.0}
        points[rec["key"]] = rec
        name = f"{_safe(label)}__{sampler}__T4__n2__L16__seed0.jsonl"
        (out / "sweep" / "samples" / name).write_text(
            json.dumps({"text": text, "tokens": [1]}) + "\n")
    (out / "sweep" / "sweep.json").write_text(json.dumps(
        {"points": points, "plan": list(points), "settings": {"num_samples": 2, "judge": "j"}}))
    (out / "reading.md").write_text("# Reading\n\n- dsl-remdm-loop vs remdm-loop: **tie** at T = 4\n")
    (out / "verdicts.md").write_text("| a | b |\n|---|---|\n| 1 | 2 |\n")
    (out / "analyze").mkdir()
    (out / "analyze" / "calibration.md").write_text("ECE of the DSL model: 0.01\n")
    from PIL import Image

    Image.new("RGB", (4, 4), "red").save(out / "analyze" / "reliability.png")
    (out / "demo.json").write_text(json.dumps({"stages": {"sweep": 1.0}, "cpu_stages": {"sweep": 2.0}}))
    return cfg, out


def test_demo_report_is_complete_and_self_contained(demo_folder):
    from dslm.report.html import write_demo_report
    from dslm.report.traces import FAMILIES, record_demo_traces

    cfg, out = demo_folder
    traces = record_demo_traces(cfg, out)
    assert [t["sampler"] for t in traces] == list(FAMILIES)
    assert all(t["steps"] == 4 for t in traces)
    page = write_demo_report(cfg, out, traces).read_text()
    parser = Resources()
    parser.feed(page)
    assert "link" not in parser.tags and "script" not in parser.tags and "iframe" not in parser.tags
    assert parser.refs and all(v.startswith(("data:image/png;base64,", "#")) for _, _, v in parser.refs)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "@media (max-width:640px)" in page
    assert "DSL &lt;says&gt; hello" in page and "control says bye" in page   # side by side, escaped
    assert "dsl-remdm-loop vs remdm-loop, T = 4" in page
    assert "<b>tie</b>" in page and "<td>1</td>" in page
    assert "ECE of the DSL model: 0.01" in page and "Calibration and self-correction" in page
    assert page.count("data:image/png;base64,") == 2 * len(FAMILIES) + 1
    assert "http://" not in page and "https://" not in page and "<link" not in page
    for fam in FAMILIES:
        assert f"<h3>{fam} on the" in page


def test_markdown_subset():
    from dslm.report.html import markdown_html

    got = markdown_html("## T\n\ntext `x` more\nwrapped\n\n- a\n- b\n\n| h |\n|---|\n| <v> |\n")
    assert "<h3>T</h3>" in got and "<p>text <code>x</code> more wrapped</p>" in got
    assert "<ul><li>a</li><li>b</li></ul>" in got and "<td>&lt;v&gt;</td>" in got
