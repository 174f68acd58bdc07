"""Paired bootstrap intervals and verdicts for comparing two sample sets.

Two sample sets A and B (e.g. the DSL model and the MDLM control, same sampler and T)
are *paired*: sample i of A and sample i of B were drawn with the same sampler seed
(and, when seeds are pooled, from the continuation run with the same seed). Each
sweep point carries ``per_sample = {"nll": [n_i], "tokens": [t_i]}``: the judge's
negative log-likelihood summed over sample i's tokens and the number of tokens.

* gen PPL of a set: ``exp(sum_i n_i / sum_i t_i)``; the statistic compared is the
  ratio ``R = PPL_A / PPL_B = exp(sum n^A / sum t^A - sum n^B / sum t^B)``
  (R < 1: A is better).
* a per-sample figure ``v_i`` (e.g. the unigram entropy of sample i): the difference
  of means ``D = mean v^A - mean v^B``.

Paired bootstrap: draw index sets ``I* ~ Uniform{1..n}^n`` with replacement (inside
each stratum, e.g. each seed, when ``strata`` is given), apply the same ``I*`` to A and
B, recompute the statistic; the 95% interval is the 2.5% / 97.5% percentile of
``B_boot`` replicates. Verdict for gen PPL: ``better`` if the whole interval of R lies
below 1, ``worse`` if above 1, else ``tie``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from dslm.errors import DSLMError

LEVEL = 0.95
N_BOOT = 2000


class MissingPerSampleError(DSLMError):
    """A sweep point carries no per-sample judge scores, so it cannot be bootstrapped."""


@dataclass
class Interval:
    estimate: float
    low: float
    high: float
    level: float = LEVEL

    def as_dict(self) -> dict:
        return asdict(self)


def _index_draws(n: int, n_boot: int, rng: np.random.Generator,
                 strata: Sequence[int] | None) -> np.ndarray:
    """[n_boot, n] resampled indices; with ``strata``, each stratum resampled within itself."""
    if strata is None:
        return rng.integers(0, n, size=(n_boot, n))
    strata = np.asarray(strata)
    if strata.shape != (n,):
        raise DSLMError(f"strata must give one label per sample ({n}), got shape {strata.shape}")
    out = np.empty((n_boot, n), dtype=np.int64)
    for label in np.unique(strata):
        members = np.flatnonzero(strata == label)
        out[:, members] = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
    return out


def paired_bootstrap(a: np.ndarray, b: np.ndarray,
                     statistic: Callable[[np.ndarray, np.ndarray], np.ndarray],
                     n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0,
                     strata: Sequence[int] | None = None) -> Interval:
    """Percentile interval of ``statistic(a[I], b[I])`` over paired resamples ``I``.

    ``a`` and ``b`` are arrays whose first axis indexes paired samples; ``statistic``
    maps stacked resamples ``[n_boot, n, ...]`` to ``[n_boot]`` (and ``[1, n, ...]`` to
    the point estimate).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) != len(b):
        raise DSLMError(f"paired sets differ in size: {len(a)} vs {len(b)} samples")
    if len(a) < 2:
        raise DSLMError(f"a paired bootstrap needs at least 2 samples per set, got {len(a)}")
    if not 0.0 < level < 1.0:
        raise DSLMError(f"confidence level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    idx = _index_draws(len(a), n_boot, rng, strata)
    reps = np.asarray(statistic(a[idx], b[idx]), dtype=np.float64)
    estimate = float(np.asarray(statistic(a[None], b[None])).reshape(-1)[0])
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [tail, 1.0 - tail])
    return Interval(estimate, float(low), float(high), level)


def _ppl_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a, b: [..., n, 2] rows (nll_i, tokens_i) -> PPL_A / PPL_B over the last-but-one axis."""
    rate_a = a[..., 0].sum(-1) / a[..., 1].sum(-1)
    rate_b = b[..., 0].sum(-1) / b[..., 1].sum(-1)
    return np.exp(rate_a - rate_b)


def _mean_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.mean(-1) - b.mean(-1)


def per_sample_scores(point: dict, name: str = "") -> np.ndarray:
    """[n, 2] rows (judge NLL summed over sample i, its token count) of a sweep point."""
    label = name or point.get("key") or point.get("sampler") or "point"
    per = point.get("per_sample")
    if not isinstance(per, dict) or "nll" not in per or "tokens" not in per:
        raise MissingPerSampleError(
            f"sweep point {label} has no per_sample judge scores (nll, tokens); rerun the sweep "
            "with a judge that records them")
    nll, tokens = np.asarray(per["nll"], dtype=np.float64), np.asarray(per["tokens"], dtype=np.float64)
    if nll.shape != tokens.shape or nll.ndim != 1:
        raise DSLMError(f"sweep point {label}: per_sample nll and tokens differ in length")
    if (tokens <= 0).any() or not np.isfinite(nll).all():
        raise DSLMError(f"sweep point {label}: per_sample holds a sample with no tokens or a "
                        "non-finite NLL")
    return np.stack([nll, tokens], axis=1)


def genppl_ratio(a_scores: np.ndarray, b_scores: np.ndarray, strata=None,
                 n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> Interval:
    """Interval of ``PPL_A / PPL_B`` from paired [n, 2] (nll, tokens) rows."""
    return paired_bootstrap(a_scores, b_scores, _ppl_ratio, n_boot, level, seed, strata)


def mean_difference(a_values, b_values, strata=None, n_boot: int = N_BOOT,
                    level: float = LEVEL, seed: int = 0) -> Interval:
    """Interval of ``mean(a) - mean(b)`` from paired per-sample values (e.g. entropy)."""
    return paired_bootstrap(np.asarray(a_values), np.asarray(b_values), _mean_difference,
                            n_boot, level, seed, strata)


def ratio_verdict(interval: Interval) -> str:
    """``better`` (A lower PPL: interval below 1), ``worse`` (above 1) or ``tie``."""
    if interval.high < 1.0:
        return "better"
    if interval.low > 1.0:
        return "worse"
    return "tie"


VERDICTS = ("better", "tie", "worse")


def verdict_counts(verdicts: Iterable[str]) -> dict[str, int]:
    """How many of ``verdicts`` are ``better`` / ``tie`` / ``worse`` (every key present)."""
    counts = dict.fromkeys(VERDICTS, 0)
    for v in verdicts:
        counts[v] += 1
    return counts


def verdict_split(counts: dict[str, int]) -> str:
    """``"better / tie / worse"`` counts as text, e.g. ``"0 / 5 / 1"``."""
    return " / ".join(str(counts[v]) for v in VERDICTS)


def difference_verdict(interval: Interval) -> str:
    """``higher`` / ``lower`` when the interval of a difference excludes 0, else ``tie``."""
    if interval.low > 0.0:
        return "higher"
    if interval.high < 0.0:
        return "lower"
    return "tie"
