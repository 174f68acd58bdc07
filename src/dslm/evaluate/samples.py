"""Sample files and reference texts on disk.

Samples JSONL (written by ``dslm sample`` and by sweeps): one object per line with
``text`` (decoded, special tokens kept), ``tokens`` (the sampled ids), ``nfe``,
``sampler``, ``steps`` and ``seed``. Reference files: ``.jsonl`` (a ``text`` field per
line) or ``.txt`` (one text per non-empty line).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Sequence

from dslm.data.files import jsonl_records, read_utf8
from dslm.errors import DataError
from dslm.io import atomic_write_text

SAMPLE_FIELDS = ("text", "tokens", "nfe", "sampler", "steps", "seed")


def sample_records(texts: Sequence[str], tokens: Sequence[Sequence[int]], nfe: int, sampler: str,
                   steps: int, seed: int) -> list[dict]:
    """One JSONL record per sample."""
    return [{"text": t, "tokens": [int(i) for i in ids], "nfe": int(nfe), "sampler": sampler,
             "steps": int(steps), "seed": int(seed)} for t, ids in zip(texts, tokens)]


def write_samples(path: str | Path, records: Sequence[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def _jsonl_objects(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    rows = []
    for n, obj in jsonl_records(path):
        if not isinstance(obj, dict):
            raise DataError(f"{path} line {n} is not a JSON object")
        rows.append(obj)
    if not rows:
        raise DataError(f"{path} is empty: it holds no records")
    return rows


def read_samples(path: str | Path) -> list[dict]:
    """Records of a samples JSONL; each needs ``text``; ``tokens`` (if any) must be int lists."""
    path = Path(path)
    rows = _jsonl_objects(path)
    for n, r in enumerate(rows, 1):
        if not isinstance(r.get("text"), str):
            raise DataError(f"{path} record {n} has no 'text' string")
        toks = r.get("tokens")
        if toks is not None and not (isinstance(toks, list)
                                     and all(isinstance(t, int) for t in toks)):
            raise DataError(f"{path} record {n}: 'tokens' must be a list of integers")
    return rows


def read_reference_file(path: str | Path, n: int | None = None, seed: int = 0,
                        field: str = "text") -> list[str]:
    """Texts of a ``.txt``/``.jsonl`` file; ``n`` of them drawn at random (seeded) if given."""
    path = Path(path)
    if path.suffix == ".jsonl":
        texts = []
        for i, r in enumerate(_jsonl_objects(path), 1):
            if not isinstance(r.get(field), str):
                raise DataError(f"{path} record {i} has no '{field}' string")
            texts.append(r[field])
    elif path.suffix == ".txt":
        if not path.is_file():
            raise DataError(f"reference file not found: {path}")
        texts = [line.strip() for line in read_utf8(path).splitlines()]
        texts = [t for t in texts if t]
    else:
        raise DataError(f"reference file {path} must end in .txt or .jsonl")
    if not texts:
        raise DataError(f"reference file {path} holds no texts")
    if n is not None and n < len(texts):
        texts = random.Random(seed).sample(texts, n)
    return texts
