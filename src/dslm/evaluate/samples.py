"""Sample files and reference texts on disk.

Samples JSONL (written by ``dslm sample`` and by sweeps): one object per line with
``text`` (decoded, special tokens kept), ``tokens`` (the sampled ids), ``nfe``,
``sampler``, ``steps`` and ``seed``. Reference files: ``.jsonl`` (a ``text`` field per
line) or ``.txt`` (one text per non-empty line).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Sequence

from dslm.data.files import read_utf8
from dslm.errors import DataError, DSLMError
from dslm.io import atomic_write_text, describe_os_error, jsonl_lines_tolerant

SAMPLE_FIELDS = ("text", "tokens", "nfe", "sampler", "steps", "seed")

#: Largest token id / count a samples file may hold (|V| is bounded the same way).
MAX_TOKEN_ID = 2 ** 24


def sample_records(texts: Sequence[str], tokens: Sequence[Sequence[int]], nfe: int, sampler: str,
                   steps: int, seed: int, extra: dict | None = None) -> list[dict]:
    """One JSONL record per sample (``extra``: provenance fields added to each)."""
    return [{"text": t, "tokens": [int(i) for i in ids], "nfe": int(nfe), "sampler": sampler,
             "steps": int(steps), "seed": int(seed), **(extra or {})}
            for t, ids in zip(texts, tokens)]


def write_samples(path: str | Path, records: Sequence[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


class PartialSamples:
    """Samples appended to ``<out>.partial`` as each batch finishes (flushed to disk),
    renamed to ``out`` when all are done: a crash or a full disk keeps finished work."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.count = 0
        try:
            self._f = open(self.partial, "w", encoding="utf-8")
        except OSError as e:
            raise DSLMError(describe_os_error(e)) from None

    def add(self, records: Sequence[dict]) -> None:
        try:
            self._f.write("".join(json.dumps(r) + "\n" for r in records))
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as e:
            raise DSLMError(describe_os_error(e) + f"; {self.count} finished samples are kept "
                            f"in {self.partial}") from None
        self.count += len(records)

    def finish(self) -> None:
        try:
            self._f.close()
            os.replace(self.partial, self.out)
        except OSError as e:
            raise DSLMError(describe_os_error(e) + f"; the {self.count} samples are kept in "
                            f"{self.partial}") from None

    def abandon(self) -> None:
        """Close after a failure, keeping what was written (or nothing when empty)."""
        try:
            self._f.close()
        except OSError:
            pass
        if self.count == 0:
            try:
                self.partial.unlink()
            except OSError:
                pass


def _jsonl_objects(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    rows = []
    for n, obj in jsonl_lines_tolerant(read_utf8(path), path, DataError):
        if not isinstance(obj, dict):
            raise DataError(f"{path} line {n} is not a JSON object")
        rows.append(obj)
    if not rows:
        raise DataError(f"{path} is empty: it holds no records")
    return rows


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_samples(path: str | Path) -> list[dict]:
    """Records of a samples JSONL; each needs ``text``; ``tokens`` (if any) must be lists of
    ids in [0, 2^24); ``nfe``, ``steps``, ``seed`` (if any) non-negative integers."""
    path = Path(path)
    rows = _jsonl_objects(path)
    for n, r in enumerate(rows, 1):
        if not isinstance(r.get("text"), str):
            raise DataError(f"{path} record {n} has no 'text' string")
        toks = r.get("tokens")
        if toks is not None and not (isinstance(toks, list)
                                     and all(_is_int(t) and 0 <= t < MAX_TOKEN_ID for t in toks)):
            raise DataError(f"{path} record {n}: 'tokens' must be a list of integers (token ids in [0, 2^24))")
        for key in ("nfe", "steps", "seed"):
            if key in r and r[key] is not None and not (_is_int(r[key]) and r[key] >= 0):
                raise DataError(f"{path} record {n}: '{key}' must be a non-negative integer, "
                                f"got {r[key]!r}")
        if "sampler" in r and r["sampler"] is not None and not isinstance(r["sampler"], str):
            raise DataError(f"{path} record {n}: 'sampler' must be a string")
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
