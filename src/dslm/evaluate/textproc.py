"""How sampled token ids become the texts the metrics read (ReMDM's decoding, as options).

* ``clean_up_spaces``: after decoding, apply the Hugging Face tokenizers' clean-up of
  tokenization spaces (``" ."`` -> ``"."``, ``" ,"``, ``" ?"``, ``" !"``, ``" n't"``,
  ``" 's"``, ``" 'm"``, ``" 've"``, ``" 're"``, ``" ' "`` -> ``"'"``), which
  ``batch_decode`` applies by default in ReMDM's evaluation. The judge then re-reads the
  cleaned text (its ids differ from the sampled ones); entropy still reads the sampled ids.
* ``truncate_tokens`` = N > 0: the judge and the MAUVE featurizer read only the first N
  tokens of each text (ReMDM truncates to 1024); 0 keeps dslm's rule (likelihood over
  non-overlapping windows, features of the first ``max_length`` tokens).
"""

from __future__ import annotations

from typing import Sequence

#: (pattern, replacement) pairs of the Hugging Face clean-up, applied in this order.
CLEAN_UP_RULES = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
                  (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def clean_up_spaces(text: str) -> str:
    """The tokenizers' clean-up of tokenization spaces (see :data:`CLEAN_UP_RULES`)."""
    for pattern, replacement in CLEAN_UP_RULES:
        text = text.replace(pattern, replacement)
    return text


def metric_texts(tokenizer, token_lists: Sequence[Sequence[int]], clean_up: bool = False) -> list[str]:
    """Decoded texts (special tokens kept), optionally with the spaces cleaned up."""
    texts = [tokenizer.decode(list(ids)) for ids in token_lists]
    return [clean_up_spaces(t) for t in texts] if clean_up else texts


class TruncatedLM:
    """A causal LM (``dslm.evaluate.lm.CausalLM``) that reads only the first ``n`` tokens
    of every text: ``encode``, ``nll`` and ``features`` cut each token list to ``n``."""

    def __init__(self, lm, n: int):
        self._lm = lm
        self._n = int(n)

    def __getattr__(self, name):
        return getattr(self._lm, name)

    @property
    def identity(self) -> dict:
        """The wrapped model's identity plus the cut (cached scores must not mix the two)."""
        base = getattr(self._lm, "identity", None) or {"name": getattr(self._lm, "name", str(self._lm))}
        return {**base, "truncate_tokens": self._n}

    def _cut(self, token_lists):
        return [list(ids)[:self._n] for ids in token_lists]

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self._cut(self._lm.encode(texts))

    def nll(self, token_lists, *args, **kwargs):
        return self._lm.nll(self._cut(token_lists), *args, **kwargs)

    def features(self, token_lists, *args, **kwargs):
        return self._lm.features(self._cut(token_lists), *args, **kwargs)

    def nll_per_text(self, token_lists, *args, **kwargs):
        return self._lm.nll_per_text(self._cut(token_lists), *args, **kwargs)
