"""Data settings and the prepared-data contract shared by training and evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


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


@dataclass
class PreparedData:
    """Tokenised, packed blocks ready for training and evaluation."""

    tokenizer: Any                  # the Tokenizer protocol (dslm.data.tokenizers)
    train: np.ndarray               # [N, seq_len] integer token ids (may be a memmap)
    val: np.ndarray                 # [M, seq_len]
    meta: dict                      # source, tokenizer spec, counts, cache key
    reference_texts: Callable[[int, int], list[str]] | None = None   # (n, seed) -> held-out texts
