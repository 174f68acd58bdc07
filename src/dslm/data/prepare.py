"""``prepare_data``: source -> tokenizer -> tokenised, packed, cached blocks.

Cache layout under ``cache_dir``:

* ``tokenizer-<key>/``: a tokenizer trained on a corpus's training split (``char``,
  ``bpe``), keyed by sha256(source identity, tokenizer kind, bpe_vocab_size);
* ``data-<key>/``: ``train.bin``, ``val.bin`` (packed blocks), ``meta.json``, keyed by
  sha256(source identity incl. split parameters, tokenizer fingerprint, seq_len, framing).

Both are written atomically (``dslm.io.atomic_directory``), so an interrupted run
never leaves a half cache; a second run with the same key memory-maps the arrays
without reading or tokenising any text.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from dslm.data import packing, tokenizers
from dslm.data.config import DataConfig, PreparedData
from dslm.data.sources import Source, resolve_source
from dslm.errors import DataError
from dslm.io import atomic_directory

CACHE_VERSION = 1


def cache_key(*parts) -> str:
    """A short stable hash of JSON-serialisable ``parts``."""
    blob = json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


def _train_texts(train_ds):
    for batch in train_ds.iter(batch_size=1000):
        yield from batch["text"]


def build_tokenizer(cfg: DataConfig, source: Source, progress: bool = True):
    """The tokenizer ``cfg.tokenizer`` names: trained (and cached) for char/bpe, else loaded."""
    tokenizers.check_tokenizer_name(cfg.tokenizer)
    if cfg.tokenizer == "gpt2":
        return tokenizers.GPT2Tokenizer("gpt2")
    if cfg.tokenizer not in ("char", "bpe"):
        return tokenizers.tokenizer_from_path(cfg.tokenizer)
    params = {"kind": cfg.tokenizer, "vocab_size": cfg.bpe_vocab_size if cfg.tokenizer == "bpe" else 0}
    folder = Path(cfg.cache_dir) / f"tokenizer-{cache_key(source.identity, params)}"
    if (folder / tokenizers.SPEC_FILE).is_file():
        return tokenizers.tokenizer_from_path(folder)
    from dslm.io import check_output_folder

    check_output_folder(cfg.cache_dir)            # before training the tokenizer, not after
    texts = _train_texts(source.splits()[0])
    if cfg.tokenizer == "char":
        tok = tokenizers.CharTokenizer.train(texts)
    else:
        tok = tokenizers.BPETokenizer.train(texts, cfg.bpe_vocab_size, show_progress=progress)
    with atomic_directory(folder) as tmp:
        tok.save(tmp)
    return tok


def _reference_texts(val: np.ndarray, tokenizer):
    def reference_texts(n: int, seed: int = 0) -> list[str]:
        """``n`` distinct held-out blocks, chosen by ``seed``, decoded with special tokens kept."""
        if not 0 < n <= len(val):
            raise DataError(f"asked for {n} reference texts; the validation split has {len(val)} blocks")
        picks = np.random.default_rng(seed).choice(len(val), size=n, replace=False)
        return [tokenizer.decode(val[i].tolist()) for i in picks]
    return reference_texts


def _build_cache(cfg: DataConfig, source: Source, tokenizer, key: str, folder: Path,
                 progress: bool) -> None:
    import datasets

    splits = dict(zip(("train", "val"), source.splits(), strict=True))
    dtype = packing.token_dtype(tokenizer.vocab_size)
    meta = {"source": cfg.source, "identity": source.identity, "tokenizer": tokenizer.spec(),
            "seq_len": cfg.seq_len, "mdlm_framing": cfg.mdlm_framing, "dtype": dtype.name,
            "cache_key": key}
    was_enabled = datasets.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()
    try:
        with atomic_directory(folder) as tmp:
            for name in ("train", "val"):
                ids = packing.tokenize(splits[name], tokenizer, cfg.num_proc,
                                       fingerprint=f"{key}-{name}", desc=f"tokenising {name}")
                counts = packing.write_stream(ids, tokenizer.eos_id, cfg.seq_len, tmp / f"{name}.bin",
                                              dtype, progress, framed=cfg.mdlm_framing)
                if counts["blocks"] == 0:
                    raise DataError(f"the {name} split of {cfg.source} has {counts['tokens']} tokens, "
                                    f"fewer than one block of seq_len {cfg.seq_len}")
                meta[name] = counts
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    finally:
        if was_enabled and not progress:
            datasets.enable_progress_bars()


def _cached_meta(folder: Path, key: str, seq_len: int) -> dict | None:
    """The cache's ``meta.json`` when it was made by exactly this key (its fingerprint)
    and its arrays are complete; else None, and the cache is rebuilt (with a note)."""
    import sys

    from dslm.io import resolve_directory

    folder = resolve_directory(folder)
    path = folder / "meta.json"
    if not path.is_file():
        return None
    why = None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta, why = None, "its meta.json is unreadable"
    if why is None and (not isinstance(meta, dict) or meta.get("cache_key") != key):
        why = "it was made by other data settings (fingerprint mismatch)"
    if why is None:
        try:
            itemsize = np.dtype(meta["dtype"]).itemsize
            for name in ("train", "val"):
                blocks = int(meta[name]["blocks"])
                if blocks < 0 or (folder / f"{name}.bin").stat().st_size != blocks * seq_len * itemsize:
                    why = f"its {name}.bin does not hold {blocks} blocks"
        except (KeyError, TypeError, ValueError, OSError):
            why = "its meta.json or arrays are incomplete"
    if why is not None:
        print(f"dslm: note: rebuilding the data cache {folder}: {why}", file=sys.stderr)
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        return None
    return meta


def prepare_data(cfg: DataConfig, tokenizer=None, progress: bool = True) -> PreparedData:
    """Tokenise and pack ``cfg.source`` once (cached in ``cfg.cache_dir``) and memory-map it.

    ``tokenizer`` (e.g. from a checkpoint, for fine-tuning) replaces ``cfg.tokenizer``.
    ``meta["from_cache"]`` tells whether the arrays were reused.
    """
    cfg.validate()
    source = resolve_source(cfg)
    if tokenizer is None:
        tokenizer = build_tokenizer(cfg, source, progress)
    key = cache_key(source.identity, tokenizers.fingerprint(tokenizer), cfg.seq_len, cfg.mdlm_framing)
    folder = Path(cfg.cache_dir) / f"data-{key}"
    meta = _cached_meta(folder, key, cfg.seq_len)
    from_cache = meta is not None
    if from_cache:
        from dslm.io import resolve_directory

        folder = resolve_directory(folder)     # a crash mid-swap may leave only data-<key>.old
    if not from_cache:
        from dslm.io import check_output_folder

        check_output_folder(cfg.cache_dir)
        _build_cache(cfg, source, tokenizer, key, folder, progress)
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    train, val = (packing.open_blocks(folder / f"{name}.bin", meta["dtype"], meta[name]["blocks"],
                                      cfg.seq_len) for name in ("train", "val"))
    meta.update(from_cache=from_cache, cache_path=str(folder))
    return PreparedData(tokenizer=tokenizer, train=train, val=val, meta=meta,
                        reference_texts=_reference_texts(val, tokenizer))
