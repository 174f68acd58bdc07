"""An on-disk cache of a judge's scores and a featurizer's features of fixed texts.

Scoring the held-out reference texts under a pretrained judge costs minutes on a CPU
and is the same for every sweep (every seed, every resumed run) that uses the same
texts and the same judge. Entries are keyed by
    sha256( kind, model identity (name + weights digest), sha256 of the model's token ids )
so a different reference draw, tokenizer or judge file never reuses a stale entry; a
model whose identity carries no weights digest is never cached. Root:
``$DSLM_CACHE/judge`` (default ``~/.cache/dslm/judge``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from dslm.io import atomic_write_bytes, atomic_write_json

CACHE_ENV = "DSLM_CACHE"


def default_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "dslm") / "judge"


def ids_digest(token_lists: Sequence[Sequence[int]]) -> str:
    h = hashlib.sha256()
    for ids in token_lists:
        h.update(np.asarray(list(ids), dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


class JudgeCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()

    def key(self, kind: str, identity: dict, token_lists) -> str | None:
        if not identity.get("sha256"):
            return None
        blob = json.dumps({"kind": kind, "identity": identity, "ids": ids_digest(token_lists)},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def scores(self, identity: dict, token_lists, compute: Callable[[], dict]) -> dict:
        """``compute()`` (a JSON-ready dict) of ``token_lists`` under a judge, cached."""
        key = self.key("scores", identity, token_lists)
        path = self.root / f"{key}.json" if key else None
        if path is not None and path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                pass
        out = compute()
        if path is not None:
            try:
                atomic_write_json(path, out)
            except OSError:
                pass
        return out

    def features(self, identity: dict, token_lists, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()`` (features [N, H]) of ``token_lists`` under a featurizer, cached."""
        key = self.key("features", identity, token_lists)
        path = self.root / f"{key}.npy" if key else None
        if path is not None and path.is_file():
            try:
                return np.load(path)
            except (OSError, ValueError):
                pass
        out = compute()
        if path is not None:
            import io

            buf = io.BytesIO()
            np.save(buf, out)
            try:
                atomic_write_bytes(path, buf.getvalue())
            except OSError:
                pass
        return out
