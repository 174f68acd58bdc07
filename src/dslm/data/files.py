"""Documents from local files: ``.txt``, ``.jsonl`` and ``.parquet``, a file or a folder.

* a ``.txt`` file holds documents separated by blank lines; in a folder, each ``.txt``
  file is one document;
* ``.jsonl``: one JSON object per line, the document in column ``text_field``;
* ``.parquet``: the document in column ``text_field``.

Everything must be UTF-8. Problems (missing path, unsupported type, bad encoding,
bad JSON, missing column, no text at all) raise a one-line :class:`DataError`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Iterator

from dslm.errors import DataError, first_line

SUFFIXES = (".txt", ".jsonl", ".parquet")
_BLANK_LINES = re.compile(r"\n[ \t\r\f\v]*\n")


def data_files(path: str | Path) -> list[Path]:
    """The supported files at ``path`` (the file itself, or a folder's files in sorted order)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise DataError(f"unsupported data file type '{path.suffix}' for {path}; "
                            f"use {', '.join(SUFFIXES)}")
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    if not files:
        raise DataError(f"folder {path} holds no {', '.join(SUFFIXES)} files")
    return files


def files_identity(files: list[Path], root: str | Path) -> str:
    """SHA-256 over the relative names and bytes of ``files`` (the cache key of a local corpus)."""
    digest = hashlib.sha256()
    root = Path(root)
    for f in files:
        digest.update(str(f.relative_to(root) if f != root else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def read_utf8(path: Path) -> str:
    """The text of ``path``, or a DataError naming the first byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not valid UTF-8 (bad byte at offset {e.start})") from None


def _txt_documents(path: Path, one_document: bool) -> list[str]:
    text = read_utf8(path).replace("\r\n", "\n")
    parts = [text] if one_document else _BLANK_LINES.split(text)
    return [p.strip() for p in parts if p.strip()]


def jsonl_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) of every non-blank line of a JSON-lines file."""
    for number, line in enumerate(read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"{path} line {number} is not valid JSON") from None


def _jsonl_documents(path: Path, text_field: str) -> list[str]:
    docs = []
    for number, record in jsonl_records(path):
        value = record.get(text_field) if isinstance(record, dict) else None
        if not isinstance(value, str):
            raise DataError(f"{path} line {number} has no string field '{text_field}'")
        docs.append(value)
    return docs


def _parquet_documents(path: Path, text_field: str) -> list[str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path} is not a readable parquet file ({first_line(e)})") from None
    if text_field not in schema.names:
        raise DataError(f"{path} has no column '{text_field}' (columns: {', '.join(schema.names)})")
    try:
        column = pq.read_table(path, columns=[text_field]).column(text_field)
        return [v for v in column.to_pylist() if isinstance(v, str)]
    except (pa.ArrowInvalid, UnicodeDecodeError) as e:
        raise DataError(f"{path}: column '{text_field}' is not UTF-8 text ({e.__class__.__name__})") from None


def read_documents(path: str | Path, text_field: str = "text") -> list[str]:
    """All non-blank documents at ``path`` in file order; DataError if there are none."""
    files = data_files(path)
    in_folder = Path(path).is_dir()
    docs: list[str] = []
    for f in files:
        if f.suffix == ".txt":
            docs += _txt_documents(f, one_document=in_folder)
        elif f.suffix == ".jsonl":
            docs += _jsonl_documents(f, text_field)
        else:
            docs += _parquet_documents(f, text_field)
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise DataError(f"corpus {path} is empty (no non-blank documents)")
    return docs
