"""Collect demo runs into docs/ and generate docs/EVIDENCE.md from them.

    python scripts/evidence.py collect RUN_DIR DEST      # copy one run's result files
    python scripts/evidence.py render [--out docs/EVIDENCE.md] [NAME=FOLDER ...]
    python scripts/evidence.py readme                    # the README's demo block from docs/demo

``collect`` copies demo.json, verdicts.{json,md}, reading.md and sweep/{sweep.json,
sweep.md,sweep.png} of a finished ``dslm demo --out RUN_DIR`` run into DEST (flat).
``render`` reads each NAME=FOLDER (default: embedded=docs/demo and every
docs/evidence/<corpus>/) and writes the per-corpus tables (dslm.evidence).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("demo.json", "verdicts.json", "verdicts.md", "reading.md",
         "sweep/sweep.json", "sweep/sweep.md", "sweep/sweep.png")


def collect(run: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for rel in FILES:
        src = run / rel
        if not src.is_file():
            raise SystemExit(f"evidence: {src} is missing (is the demo run finished?)")
        shutil.copyfile(src, dest / Path(rel).name)
    print(f"copied {len(FILES)} files from {run} to {dest}")


BEGIN, END = "<!-- demo:begin", "<!-- demo:end -->"


def readme_block(folder: Path) -> str:
    """The README's demo results: reading.md, verdicts.md, sweep.md and the generated
    table reading of one demo folder, unedited."""
    import json

    from dslm.evidence import stage_times, summary_table, table_reading

    demo = json.loads((folder / "demo.json").read_text(encoding="utf-8"))
    sweep = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
    reading = (folder / "reading.md").read_text(encoding="utf-8").replace("### ", "#### ")
    verdicts = (folder / "verdicts.md").read_text(encoding="utf-8").split("\n", 1)[1]
    table = (folder / "sweep.md").read_text(encoding="utf-8").split("\n", 2)[2]
    return "\n".join([
        reading.strip(), "", verdicts.replace("## ", "#### ").strip(), "",
        "The table sweep (seed-0 models; `docs/demo/sweep.md`):", "",
        "![sweep](docs/demo/sweep.png)", "", table.strip(), "",
        table_reading(sweep, demo).strip(), "",
        stage_times(demo), "",
        "The same demo on every corpus tried (`docs/EVIDENCE.md` has each corpus's tables):", "",
        *summary_table(default_corpora())])


def readme(folder: Path = ROOT / "docs" / "demo", path: Path = ROOT / "README.md") -> None:
    text = path.read_text(encoding="utf-8")
    a, b = text.index(BEGIN), text.index(END)
    head = text[a:text.index("\n", a) + 1]
    path.write_text(text[:a] + head + readme_block(folder) + "\n" + text[b:], encoding="utf-8")
    print(f"updated the demo block of {path} from {folder}")


def default_corpora() -> list[tuple[str, Path]]:
    out = [("embedded", ROOT / "docs" / "demo")]
    ev = ROOT / "docs" / "evidence"
    if ev.is_dir():
        out += [(p.name, p) for p in sorted(ev.iterdir()) if (p / "demo.json").is_file()]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("run", type=Path)
    c.add_argument("dest", type=Path)
    r = sub.add_parser("render")
    r.add_argument("--out", type=Path, default=ROOT / "docs" / "EVIDENCE.md")
    r.add_argument("corpora", nargs="*", metavar="NAME=FOLDER")
    sub.add_parser("readme")
    args = parser.parse_args(argv)
    if args.cmd == "readme":
        readme()
        return 0
    if args.cmd == "collect":
        collect(args.run, args.dest)
        return 0
    from dslm.evidence import evidence_markdown

    corpora = ([(s.split("=", 1)[0], Path(s.split("=", 1)[1])) for s in args.corpora]
               or default_corpora())
    args.out.write_text(evidence_markdown(corpora), encoding="utf-8")
    print(f"wrote {args.out} ({', '.join(n for n, _ in corpora)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
