"""Data: tokenizers, corpora (embedded, synthetic, local files, HF datasets), packing, cache.

``prepare_data(DataConfig) -> PreparedData`` is the entry point for training and
evaluation; ``dslm.data.tokenizers`` holds the tokenizer protocol and its loaders.
"""

from dslm.data.config import DataConfig, PreparedData
from dslm.data.prepare import prepare_data
from dslm.data.tokenizers import check_vocab, load_tokenizer, tokenizer_writer

__all__ = ["DataConfig", "PreparedData", "prepare_data", "load_tokenizer",
           "check_vocab", "tokenizer_writer"]
