"""Diversity statistics of token sequences: unigram entropy and n-gram repetition.

* Unigram entropy of one sample x_1..x_L with counts c_v: H(x) = -sum_v p_v log p_v,
  p_v = c_v / L, in nats (as ReMDM reports it; divide by ln 2 for bits). The figure
  reported is the mean of H over samples.
* distinct-n of one sample: #unique n-grams / #n-grams (1 = no repetition). Averaged
  over samples it measures repetition inside a sample; ``corpus_distinct_n`` pools the
  n-grams of all samples and also catches samples that repeat each other.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Sequence

from dslm.errors import DSLMError


def _as_lists(sequences: Iterable[Sequence[int]]) -> list[list[int]]:
    seqs = [list(map(int, s)) for s in sequences]
    if not seqs:
        raise DSLMError("no sequences to measure (empty sample set)")
    return seqs


def unigram_entropy(sequence: Sequence[int]) -> float:
    """H(x) = -sum_v p_v log p_v (nats) of the token frequencies of one sequence."""
    n = len(sequence)
    if n == 0:
        return 0.0
    return -sum((c / n) * math.log(c / n) for c in Counter(sequence).values())


def mean_unigram_entropy(sequences: Iterable[Sequence[int]]) -> float:
    """Per-sample unigram entropy (nats), averaged over samples."""
    seqs = _as_lists(sequences)
    return sum(unigram_entropy(s) for s in seqs) / len(seqs)


def ngrams(sequence: Sequence[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(sequence[i:i + n]) for i in range(len(sequence) - n + 1)]


def distinct_n(sequence: Sequence[int], n: int) -> float:
    """#unique n-grams / #n-grams of one sequence (1.0 when it has no n-gram)."""
    grams = ngrams(sequence, n)
    return len(set(grams)) / len(grams) if grams else 1.0


def repetition_stats(sequences: Iterable[Sequence[int]], orders: Sequence[int] = (1, 2, 3, 4)
                     ) -> dict[str, float]:
    """``distinct_n`` (per-sample mean) and ``corpus_distinct_n`` for each order n."""
    seqs = _as_lists(sequences)
    out: dict[str, float] = {}
    for n in orders:
        if n < 1:
            raise DSLMError(f"n-gram order must be >= 1, got {n}")
        out[f"distinct_{n}"] = sum(distinct_n(s, n) for s in seqs) / len(seqs)
        pooled = [g for s in seqs for g in ngrams(s, n)]
        out[f"corpus_distinct_{n}"] = len(set(pooled)) / len(pooled) if pooled else 1.0
    return out
