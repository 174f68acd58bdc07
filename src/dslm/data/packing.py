"""Tokenise documents in parallel and pack them into fixed-length blocks (MDLM's "wrap").

The token stream of a split is ``doc_1 EOS doc_2 EOS ... doc_n EOS``; it is cut into
consecutive blocks of ``seq_len`` tokens and the incomplete tail block is dropped, so
block ``k`` is exactly ``stream[k * L : (k + 1) * L]``: no token is lost inside the
kept range and none is repeated. With ``framed=True`` (MDLM's OpenWebText framing)
block ``k`` is ``BOS + stream[k (L-2) : (k+1) (L-2)] + EOS`` with BOS = EOS, as for
GPT-2. Blocks are written as a flat uint16 (|V| <= 65536)
or uint32 binary file and read back as a read-only ``np.memmap`` of shape [N, L].
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dslm.errors import DataError

MIN_DOCS_PER_PROC = 64   # below this many documents per worker, one process is faster
BATCH_DOCS = 256


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def tokenize(ds, tokenizer, num_proc: int, fingerprint: str, desc: str):
    """``ds`` (column ``text``) -> Dataset with column ``ids``, one row per document.

    Uses ``num_proc`` worker processes (``datasets.map``) when every worker gets at
    least ``MIN_DOCS_PER_PROC`` documents; a fast tokenizer is multi-threaded anyway.
    """
    procs = num_proc if num_proc > 1 and len(ds) >= MIN_DOCS_PER_PROC * num_proc else None
    if procs:  # Rust thread pools must not be shared across fork: one thread per worker
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    def encode(batch):
        return {"ids": tokenizer.encode_batch(batch["text"])}

    return ds.map(encode, batched=True, batch_size=BATCH_DOCS, num_proc=procs,
                  remove_columns=ds.column_names, new_fingerprint=fingerprint, desc=desc)


def write_stream(ids_ds, eos_id: int, seq_len: int, path: str | Path, dtype: np.dtype,
                 progress: bool = False, framed: bool = False) -> dict:
    """Write every document of ``ids_ds`` plus one EOS to ``path`` as whole blocks.

    Returns counts: documents, tokens (stream length incl. EOS) and blocks.
    """
    from tqdm.auto import tqdm

    path = Path(path)
    raw = path.with_suffix(".stream") if framed else path
    n_docs = tokens = 0
    with open(raw, "wb") as f:
        batches = ids_ds.with_format("arrow").iter(batch_size=4 * BATCH_DOCS)
        total = -(-len(ids_ds) // (4 * BATCH_DOCS))
        for table in tqdm(batches, total=total, desc=f"packing {path.stem}",
                          disable=not progress, unit="batch"):
            column = table.column("ids").combine_chunks()
            values = column.flatten().to_numpy(zero_copy_only=False)
            offsets = column.offsets.to_numpy()
            ends = offsets[1:] - offsets[0]
            stream = np.insert(values.astype(dtype, copy=False), ends, dtype.type(eos_id))
            stream.tofile(f)
            n_docs += len(column)
            tokens += len(stream)
    body = seq_len - 2 if framed else seq_len
    blocks = tokens // body
    if framed:
        _frame(raw, path, blocks, seq_len, eos_id, dtype)
        raw.unlink()
    else:
        with open(path, "r+b") as f:
            f.truncate(blocks * seq_len * dtype.itemsize)
    return {"documents": n_docs, "tokens": tokens, "blocks": blocks}


def _frame(raw: Path, path: Path, blocks: int, seq_len: int, eos_id: int, dtype: np.dtype,
           rows_per_chunk: int = 1 << 16) -> None:
    """``path`` [blocks, L] = BOS (= EOS) + the next L - 2 stream tokens of ``raw`` + EOS."""
    with open(path, "wb") as out:
        if blocks == 0:
            return
        stream = np.memmap(raw, dtype=dtype, mode="r", shape=(blocks, seq_len - 2))
        for start in range(0, blocks, rows_per_chunk):
            body = stream[start:start + rows_per_chunk]
            framed = np.full((len(body), seq_len), eos_id, dtype=dtype)
            framed[:, 1:-1] = body
            framed.tofile(out)
        del stream


def open_blocks(path: str | Path, dtype: str | np.dtype, blocks: int, seq_len: int) -> np.ndarray:
    """The packed blocks of ``path`` as a read-only memmap [blocks, seq_len]."""
    path = Path(path)
    dtype = np.dtype(dtype)
    expected = blocks * seq_len * dtype.itemsize
    if blocks == 0 and path.is_file():  # an empty file cannot be memory-mapped
        return np.zeros((0, seq_len), dtype=dtype)
    if not path.is_file() or path.stat().st_size != expected:
        raise DataError(f"cached blocks {path} are missing or truncated; delete the cache folder "
                        f"{path.parent} to rebuild it")
    return np.memmap(path, dtype=dtype, mode="r", shape=(blocks, seq_len))
