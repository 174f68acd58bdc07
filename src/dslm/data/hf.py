"""Hugging Face ``datasets`` corpora with MDLM's train/validation splits.

``source: hf:<name>[:<subset>]``. Known names and their splits (as in MDLM):

* ``openwebtext``: ``train`` minus its last ``owt_val_documents`` (100k) documents;
  validation = those last documents;
* ``wikitext-103``: ``wikitext-103-raw-v1``, ``train`` / ``validation``;
* ``lm1b``: ``train`` / ``test``;
  (both detokenised by :mod:`dslm.data.detokenize`, as MDLM does);
* ``text8``: ``train`` / ``test``; each split is one 90M/5M-character string, cut at
  spaces into documents of about ``TEXT8_CHUNK_CHARS`` characters.

Any other name loads ``train`` / ``validation``. ``hf_local_path`` points the loader
at a local copy in the hub's format instead of the hub: a ``save_to_disk`` folder,
or a folder of data files (``train-*.parquet``, ``data/train.jsonl``, ...).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from dslm.errors import DataError, first_line

TEXT8_CHUNK_CHARS = 100_000


@dataclass(frozen=True)
class HubCorpus:
    path: str                    # hub repository
    subset: str | None           # configuration name
    train_split: str
    val_split: str | None        # None: hold out the tail of the train split
    chunk_chars: int = 0         # > 0: cut long rows into documents at spaces
    detokenizer: str = ""        # a name in dslm.data.detokenize.DETOKENIZERS


KNOWN = {
    "openwebtext": HubCorpus("Skylion007/openwebtext", None, "train", None),
    "wikitext-103": HubCorpus("Salesforce/wikitext", "wikitext-103-raw-v1", "train", "validation",
                              detokenizer="wikitext"),
    "lm1b": HubCorpus("dvruette/lm1b", None, "train", "test", detokenizer="lm1b"),
    "text8": HubCorpus("afmck/text8", None, "train", "test", chunk_chars=TEXT8_CHUNK_CHARS),
}


def hub_corpus(source: str) -> HubCorpus:
    """Parse ``hf:<name>[:<subset>]`` into the corpus to load."""
    body = source[len("hf:"):]
    name, _, subset = body.partition(":")
    if not name:
        raise DataError(f"data source '{source}' names no dataset; use hf:<name>[:<subset>]")
    known = KNOWN.get(name)
    if known is not None:
        return dataclasses.replace(known, subset=subset or known.subset)
    return HubCorpus(name, subset or None, "train", "validation")


def _load_split(corpus: HubCorpus, split: str, local_path: str):
    import datasets

    try:
        if not local_path:
            return datasets.load_dataset(corpus.path, corpus.subset, split=split)
        path = Path(local_path)
        if not path.exists():
            raise DataError(f"local dataset not found: {path}")
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise DataError(f"local dataset {path} has no split '{split}' "
                                    f"(splits: {', '.join(ds)})")
                ds = ds[split]
            return ds
        return datasets.load_dataset(str(path), split=split)
    except DataError:
        raise
    except Exception as e:  # hub/network/format errors from datasets: report one line
        where = local_path or f"hub dataset {corpus.path}"
        raise DataError(f"cannot load split '{split}' of {where}: {first_line(e)}") from None


def _text_column(ds, text_field: str, where: str):
    if text_field not in ds.column_names:
        raise DataError(f"{where} has no column '{text_field}' (columns: {', '.join(ds.column_names)})")
    ds = ds.select_columns([text_field])
    return ds.rename_column(text_field, "text") if text_field != "text" else ds


def _detokenize(batch: dict, name: str) -> dict:
    from dslm.data.detokenize import DETOKENIZERS

    return {"text": [DETOKENIZERS[name](t) for t in batch["text"]]}


def _cut_at_spaces(batch: dict, chunk_chars: int) -> dict:
    out = []
    for text in batch["text"]:
        start = 0
        while start < len(text):
            end = start + chunk_chars
            if end < len(text):
                space = text.rfind(" ", start + 1, end)
                end = space if space > start else end
            out.append(text[start:end].strip())
            start = end
    return {"text": [t for t in out if t]}


def load_hub_splits(source: str, text_field: str = "text", local_path: str = "",
                    owt_val_documents: int = 100_000, max_documents: int = 0,
                    val_fraction: float = 0.05):
    """(train, val) ``datasets.Dataset`` objects with one ``text`` column, blank rows dropped.

    ``max_documents`` > 0 keeps the first that many training documents and
    ``ceil(max_documents * val_fraction)`` validation documents.
    """
    corpus = hub_corpus(source)
    where = local_path or corpus.path
    train = _text_column(_load_split(corpus, corpus.train_split, local_path), text_field, where)
    if corpus.val_split is None:
        n = len(train)
        if owt_val_documents >= n:
            raise DataError(f"{where} has {n} training documents, too few to hold out the "
                            f"last {owt_val_documents} (data.owt_val_documents)")
        val = train.select(range(n - owt_val_documents, n))
        train = train.select(range(n - owt_val_documents))
    else:
        val = _text_column(_load_split(corpus, corpus.val_split, local_path), text_field, where)
    splits = []
    for ds in (train, val):
        if corpus.chunk_chars:
            ds = ds.map(_cut_at_spaces, batched=True, batch_size=1,
                        fn_kwargs={"chunk_chars": corpus.chunk_chars})
        if corpus.detokenizer:
            ds = ds.map(_detokenize, batched=True, fn_kwargs={"name": corpus.detokenizer})
        splits.append(ds.filter(lambda b: [bool(t and t.strip()) for t in b["text"]], batched=True))
    train, val = splits
    if max_documents > 0:
        train = train.select(range(min(len(train), max_documents)))
        val = val.select(range(min(len(val), max(1, math.ceil(max_documents * val_fraction)))))
    if len(train) == 0 or len(val) == 0:
        raise DataError(f"{where}: the {'training' if len(train) == 0 else 'validation'} split is empty")
    return train, val


def hub_identity(source: str, local_path: str) -> dict:
    """What identifies the loaded text: the hub name, or the bytes of the local copy."""
    from dslm.data.files import files_identity

    corpus = hub_corpus(source)
    ident = {"hub": corpus.path, "subset": corpus.subset, "train": corpus.train_split,
             "val": corpus.val_split, "chunk_chars": corpus.chunk_chars,
             "detokenizer": corpus.detokenizer}
    if local_path:
        path = Path(local_path)
        if not path.exists():
            raise DataError(f"local dataset not found: {path}")
        # datasets writes its own map/filter results as cache-*.arrow beside the data: skip them
        files = [path] if path.is_file() else sorted(
            p for p in path.rglob("*") if p.is_file() and not p.name.startswith("cache-"))
        ident["local_sha256"] = files_identity(files, path)
    return ident
