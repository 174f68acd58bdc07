#!/usr/bin/env python
"""Build dslm's embedded offline corpus: Jane Austen's six novels, one document per chapter.

Source: the Debian package ``r-cran-janeaustenr`` (MIT-licensed R package by Julia Silge
carrying the public-domain Project Gutenberg texts), read without R through PyPI
``rdata``. Run once by a maintainer; the result is committed as
``src/dslm/resources/austen.jsonl.xz`` so neither CI nor users need the package::

    apt-get download r-cran-janeaustenr
    pip install rdata
    python scripts/build_corpus.py r-cran-janeaustenr_*.deb

Output: xz-compressed JSON lines ``{"book", "chapter", "text"}``; a chapter's
paragraphs are unwrapped to single lines (runs of spaces collapsed) and joined by blank
lines; Gutenberg's ``_italics_`` underscores are dropped.
"""

from __future__ import annotations

import argparse
import gzip
import json
import lzma
import re
import subprocess
import tempfile
import warnings
import zlib
from pathlib import Path

BOOKS = {  # R object name -> title, in publication order
    "sensesensibility": "Sense and Sensibility",
    "prideprejudice": "Pride and Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}
CHAPTER = re.compile(r"^chapter\s+([ivxlc]+|\d+)\.?$", re.IGNORECASE)
VOLUME = re.compile(r"^volume\s+[ivxlc\d]+\.?$", re.IGNORECASE)
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "dslm" / "resources" / "austen.jsonl.xz"


def _convert(blob: bytes):
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns that a bare stream is "assumed RDS"
        return rdata.conversion.convert(rdata.parser.parse_data(blob))


def read_books(data_dir: Path) -> dict[str, list[str]]:
    """Lines of each novel from R's lazy-load database (``Rdata.rdx`` index + ``Rdata.rdb``)."""
    index = _convert(gzip.decompress((data_dir / "Rdata.rdx").read_bytes()))
    rdb = (data_dir / "Rdata.rdb").read_bytes()
    books = {}
    for name, (offset, length) in index["variables"].items():
        record = rdb[int(offset):int(offset) + int(length)]
        books[str(name)] = [str(line) for line in _convert(zlib.decompress(record[4:]))]
    return books


def chapters(lines: list[str]) -> list[list[str]]:
    """Split a novel's lines into chapters of unwrapped paragraphs (front matter dropped)."""
    out: list[list[str]] = []
    paragraph: list[str] = []

    def close_paragraph() -> None:
        if paragraph and out:
            out[-1].append(" ".join(" ".join(paragraph).replace("_", "").split()))
        paragraph.clear()

    for raw in lines:
        line = raw.strip()
        if CHAPTER.match(line):
            close_paragraph()
            out.append([])
        elif VOLUME.match(line) or not line:
            close_paragraph()
        else:
            paragraph.append(line)
    close_paragraph()
    return [c for c in out if c]


def build(data_dir: Path, out: Path) -> None:
    books = read_books(data_dir)
    records = []
    for name, title in BOOKS.items():
        for number, paragraphs in enumerate(chapters(books[name]), start=1):
            records.append({"book": title, "chapter": number, "text": "\n\n".join(paragraphs)})
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(lzma.compress(payload, preset=9 | lzma.PRESET_EXTREME))
    print(f"{len(records)} chapters, {len(payload) / 1e6:.2f} MB of text, "
          f"{out.stat().st_size / 1e6:.2f} MB compressed -> {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path,
                        help="r-cran-janeaustenr .deb file, or its extracted data/ folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.source.suffix == ".deb":
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["dpkg-deb", "-x", str(args.source), tmp], check=True)
            build(Path(tmp) / "usr/lib/R/site-library/janeaustenr/data", args.out)
    else:
        build(args.source, args.out)


if __name__ == "__main__":
    main()
