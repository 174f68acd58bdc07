"""`dslm demo`: train MDLM, fine-tune DSL vs. an MDLM control, train the AR judge, sweep."""

from __future__ import annotations

HELP = ("the main job on the embedded corpus (CPU, ~15 min): MDLM -> DSL fine-tune vs. MDLM "
        "control, AR judge, step-budget sweep (table + plot)")


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="results/demo", help="output folder (resumable)")
    parser.add_argument("--configs", default="", help="folder holding configs/tiny-{mdlm,dsl,ar}.yaml")
    parser.add_argument("--quick", action="store_true",
                        help="a ~2 minute smoke run (few steps, few samples): checks the pipeline only")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="DemoConfig overrides, e.g. mdlm_steps=1000 steps=[8,32,128]")


QUICK = ["mdlm_steps=30", "extra_steps=20", "ar_steps=30", "num_samples=16", "steps=[4,8]",
         "samplers=[mdlm,dsl-remdm-loop]", "extra_points=[hybrid:8]"]


def run(args) -> int:
    from pathlib import Path

    from dslm.config import load
    from dslm.demo import DemoConfig, run_demo

    overrides = (QUICK if args.quick else []) + [f"out={args.out}", f"configs={args.configs}"]
    cfg = load(DemoConfig, None, overrides + list(args.overrides))
    doc = run_demo(cfg)
    sweep = Path(cfg.out) / "sweep"
    print()
    print((sweep / "sweep.md").read_text(encoding="utf-8") if (sweep / "sweep.md").is_file() else doc)
    print(f"table: {sweep / 'sweep.md'}\nplot:  {sweep / 'sweep.png'}\n"
          f"stage times: {Path(cfg.out) / 'demo.json'}")
    return 0
