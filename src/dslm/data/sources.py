"""Where the documents come from: ``DataConfig.source`` -> train / validation documents.

* ``embedded``: Jane Austen's six novels, one document per chapter, shipped in
  ``dslm/resources/austen.jsonl.xz`` (no download; see resources/README.md);
* ``synthetic``: :mod:`dslm.data.synthetic` (``max_documents`` documents, default 2000);
* ``hf:<name>[:<subset>]``: :mod:`dslm.data.hf` (MDLM's splits);
* a path: :mod:`dslm.data.files`.

Local corpora hold out ``max(1, round(val_fraction * n))`` whole documents, chosen by
a permutation seeded with ``split_seed``, so train and validation never share a
document. ``identity()`` is cheap (names, content hashes) and keys the cache before
any text is tokenised.
"""

from __future__ import annotations

import hashlib
import json
import lzma
from dataclasses import dataclass, field
from importlib import resources
from typing import Callable

import numpy as np

from dslm.data.config import DataConfig
from dslm.errors import DataError

EMBEDDED_FILE = "austen.jsonl.xz"


def embedded_bytes() -> bytes:
    """The compressed embedded corpus shipped with the package."""
    try:
        return (resources.files("dslm") / "resources" / EMBEDDED_FILE).read_bytes()
    except FileNotFoundError:
        raise DataError(f"the embedded corpus dslm/resources/{EMBEDDED_FILE} is missing from "
                        "this installation; rebuild it with scripts/build_corpus.py") from None


def embedded_documents() -> list[str]:
    """The embedded corpus: one string per chapter, in publication order."""
    lines = lzma.decompress(embedded_bytes()).decode("utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def split_documents(docs: list[str], val_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Hold out whole documents: ``max(1, round(val_fraction * n))`` of them, chosen by ``seed``."""
    if len(docs) < 2:
        raise DataError(f"corpus has {len(docs)} document(s); at least 2 are needed to hold out "
                        "validation documents (separate documents with blank lines)")
    n_val = min(len(docs) - 1, max(1, round(val_fraction * len(docs))))
    held_out = set(np.random.default_rng(seed).permutation(len(docs))[:n_val].tolist())
    train = [d for i, d in enumerate(docs) if i not in held_out]
    val = [d for i, d in enumerate(docs) if i in held_out]
    return train, val


@dataclass
class Source:
    """A corpus: ``identity`` (JSON, keys the cache) and ``load() -> (train, val)`` Datasets.

    ``splits()`` loads once and remembers the result.
    """

    identity: dict
    load: Callable[[], tuple]
    _splits: tuple | None = field(default=None, repr=False)

    def splits(self) -> tuple:
        if self._splits is None:
            self._splits = self.load()
        return self._splits


def _as_datasets(train: list[str], val: list[str]):
    from datasets import Dataset

    return Dataset.from_dict({"text": train}), Dataset.from_dict({"text": val})


def _document_source(identity: dict, read: Callable[[], list[str]], cfg: DataConfig) -> Source:
    def load():
        docs = read()
        if cfg.max_documents:
            docs = docs[:cfg.max_documents]
        return _as_datasets(*split_documents(docs, cfg.val_fraction, cfg.split_seed))

    split = {"val_fraction": cfg.val_fraction, "split_seed": cfg.split_seed,
             "max_documents": cfg.max_documents}
    return Source({**identity, **split}, load)


def resolve_source(cfg: DataConfig) -> Source:
    """The :class:`Source` named by ``cfg.source``; DataError for a missing path."""
    from dslm.data import files, hf, synthetic

    if cfg.source == "embedded":
        sha = hashlib.sha256(embedded_bytes()).hexdigest()
        return _document_source({"kind": "embedded", "sha256": sha}, embedded_documents, cfg)
    if cfg.source == "synthetic":
        n = cfg.max_documents or synthetic.DEFAULT_DOCUMENTS
        return _document_source({"kind": "synthetic", "documents": n, "grammar": 1},
                                lambda: synthetic.synthetic_documents(n, seed=0), cfg)
    if cfg.source.startswith("hf:"):
        identity = {"kind": "hf", **hf.hub_identity(cfg.source, cfg.hf_local_path),
                    "text_field": cfg.text_field, "max_documents": cfg.max_documents,
                    "val_fraction": cfg.val_fraction}
        if hf.hub_corpus(cfg.source).val_split is None:
            identity["owt_val_documents"] = cfg.owt_val_documents
        return Source(identity, lambda: hf.load_hub_splits(
            cfg.source, cfg.text_field, cfg.hf_local_path, cfg.owt_val_documents,
            cfg.max_documents, cfg.val_fraction))
    try:
        paths = files.data_files(cfg.source)
    except DataError as e:
        if "not found" in str(e):
            raise DataError(f"{e} (data.source must be embedded, synthetic, hf:<name> or an "
                            "existing .txt/.jsonl/.parquet file or folder)") from None
        raise
    sha = files.files_identity(paths, cfg.source)
    return _document_source({"kind": "files", "sha256": sha, "text_field": cfg.text_field},
                            lambda: files.read_documents(cfg.source, cfg.text_field), cfg)
