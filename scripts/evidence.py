"""Collect demo runs into docs/ and generate docs/EVIDENCE.md from them.

    python scripts/evidence.py collect RUN_DIR DEST      # copy one run's result files
    python scripts/evidence.py render [--out docs/EVIDENCE.md] [NAME=FOLDER ...]

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
    args = parser.parse_args(argv)
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
