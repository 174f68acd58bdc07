"""`dslm demo`: train MDLM, fine-tune DSL vs. an MDLM control, train the AR baseline, sweep, verdicts."""

from __future__ import annotations

HELP = ("the main job (CPU; about 2,000 CPU-seconds, 17-18 minutes on 2 cores, see the README's Budget): "
        "MDLM -> DSL fine-tune vs. MDLM control over seeds, "
        "step-budget sweep (table + plot), paired-bootstrap verdicts and their reading")


def add_arguments(parser) -> None:
    parser.add_argument("--config", default=None, metavar="YAML",
                        help="the demo's settings (default: configs/demo.yaml); flags and key=value win")
    parser.add_argument("--out", default=None, help="output folder (resumable; default results/demo)")
    parser.add_argument("--configs", default=None, help="folder holding the run files (configs/tiny-*.yaml)")
    parser.add_argument("--corpus", default=None, metavar="FILE",
                        help="train on this corpus: plain text (documents separated by blank lines) "
                             "or JSON lines with a 'text' field; default: the embedded one")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run of a few minutes (configs/demo-quick.yaml on top): checks the pipeline only")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="DemoConfig overrides, e.g. mdlm_steps=1000 steps=[8,32,128]")


def run(args) -> int:
    from pathlib import Path

    from dslm.demo import load_demo_config, run_demo

    flags = {k: getattr(args, k) for k in ("out", "configs", "corpus") if getattr(args, k) is not None}
    cfg = load_demo_config(args.config, args.overrides, quick=args.quick, flags=flags)
    doc = run_demo(cfg)
    sweep = Path(cfg.out) / "sweep"
    print()
    print((sweep / "sweep.md").read_text(encoding="utf-8") if (sweep / "sweep.md").is_file() else doc)
    reading = Path(cfg.out) / "reading.md"
    if reading.is_file():
        print(reading.read_text(encoding="utf-8"))
    print(f"table: {sweep / 'sweep.md'}\nplot:  {sweep / 'sweep.png'}\n"
          f"verdicts: {Path(cfg.out) / 'verdicts.md'}\nreading: {reading}\n"
          f"stage times: {Path(cfg.out) / 'demo.json'}\nreport: {Path(cfg.out) / 'report.html'}")
    return 0
