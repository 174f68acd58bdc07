"""`dslm demo`: train MDLM, fine-tune DSL vs. an MDLM control, train the AR judge, sweep."""

from __future__ import annotations

HELP = ("the main job (CPU, < 20 min): MDLM -> DSL fine-tune vs. MDLM control over seeds, "
        "step-budget sweep (table + plot), paired-bootstrap verdicts and their reading")


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="results/demo", help="output folder (resumable)")
    parser.add_argument("--configs", default="", help="folder holding configs/tiny-{mdlm,dsl,ar}.yaml")
    parser.add_argument("--corpus", default="", metavar="FILE",
                        help="train on this corpus: plain text (documents separated by blank lines) "
                             "or JSON lines with a 'text' field; default: the embedded one")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run of a few minutes (few steps, few samples): checks the pipeline only")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="DemoConfig overrides, e.g. mdlm_steps=1000 steps=[8,32,128]")


QUICK = ["mdlm_steps=20", "extra_steps=10", "ar_steps=20", "num_samples=16", "steps=[4,8]",
         "samplers=[remdm-loop,dsl-remdm-loop]", "extra_points=[hybrid:8]", "seeds=2", "base_seeds=2",
         "compare=[dsl-remdm-loop:remdm-loop]", "compare_steps=[8]", "compare_samples=8"]


def run(args) -> int:
    from pathlib import Path

    from dslm.config import load
    from dslm.demo import DemoConfig, run_demo

    overrides = (QUICK if args.quick else []) + [f"out={args.out}", f"configs={args.configs}"]
    if args.corpus:
        overrides.append(f"corpus={args.corpus}")
    cfg = load(DemoConfig, None, overrides + list(args.overrides))
    doc = run_demo(cfg)
    sweep = Path(cfg.out) / "sweep"
    print()
    print((sweep / "sweep.md").read_text(encoding="utf-8") if (sweep / "sweep.md").is_file() else doc)
    reading = Path(cfg.out) / "reading.md"
    if reading.is_file():
        print(reading.read_text(encoding="utf-8"))
    print(f"table: {sweep / 'sweep.md'}\nplot:  {sweep / 'sweep.png'}\n"
          f"verdicts: {Path(cfg.out) / 'verdicts.md'}\nreading: {reading}\n"
          f"stage times: {Path(cfg.out) / 'demo.json'}")
    return 0
