"""Data settings and the prepared-data contract shared by training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from dslm.errors import ConfigError


@dataclass
class DataConfig:
    # embedded | synthetic | hf:<name>[:<subset>] | path to a .txt/.jsonl/.parquet file or folder
    source: str = "embedded"
    tokenizer: str = "bpe"          # char | bpe | gpt2 | path to a tokenizer folder
    bpe_vocab_size: int = 4096      # for tokenizer=bpe (trained on the training split)
    seq_len: int = 128              # block length L (EOS between documents, MDLM's wrap)
    val_fraction: float = 0.05      # held-out share of documents for local corpora
    cache_dir: str = "cache"        # tokenised, packed blocks are cached here
    num_proc: int = 2               # tokenisation workers
    text_field: str = "text"        # column of .jsonl/.parquet/HF datasets
    max_documents: int = 0          # 0 = all documents
    split_seed: int = 0             # which documents of a local corpus are held out
    hf_local_path: str = ""         # hf:<name> from a local copy in the hub's format
    owt_val_documents: int = 100_000  # openwebtext: the last N train documents are validation
    mdlm_framing: bool = False      # each block = BOS + (seq_len - 2) stream tokens + EOS (MDLM OWT)

    def validate(self) -> None:
        if not self.source:
            raise ConfigError("config key 'data.source' is empty; use embedded, synthetic, "
                              "hf:<name> or a file/folder path")
        if self.seq_len < (3 if self.mdlm_framing else 2):
            raise ConfigError(f"config key 'data.seq_len' must be >= {3 if self.mdlm_framing else 2}, "
                              f"got {self.seq_len}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"config key 'data.val_fraction' must be in (0, 1), got {self.val_fraction}")
        if self.bpe_vocab_size < 258:
            raise ConfigError("config key 'data.bpe_vocab_size' must be >= 258 "
                              f"(256 bytes + EOS + 1 merge), got {self.bpe_vocab_size}")
        for key in ("num_proc", "owt_val_documents"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key 'data.{key}' must be >= 1, got {getattr(self, key)}")
        if self.max_documents < 0:
            raise ConfigError(f"config key 'data.max_documents' must be >= 0, got {self.max_documents}")


@dataclass
class PreparedData:
    """Tokenised, packed blocks ready for training and evaluation."""

    tokenizer: Any                  # the Tokenizer protocol (dslm.data.tokenizers)
    train: np.ndarray               # [N, seq_len] integer token ids (may be a memmap)
    val: np.ndarray                 # [M, seq_len]
    meta: dict                      # source, tokenizer spec, counts, cache key
    reference_texts: Callable[[int, int], list[str]] | None = None   # (n, seed) -> held-out texts
