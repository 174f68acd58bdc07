"""95% intervals for one sample set's figures: gen PPL and MAUVE, by bootstrap over samples.

* gen PPL: resample the n samples with replacement (``I* ~ Uniform{1..n}^n``) and
  recompute ``exp(sum_{i in I*} nll_i / sum_{i in I*} tokens_i)``; the interval is the
  2.5% / 97.5% percentile of ``B`` replicates (the same percentile bootstrap as
  :mod:`dslm.evaluate.stats`, unpaired).
* MAUVE: a full MAUVE per replicate would redo PCA + k-means each time (~0.7 s on a
  CPU), so the interval is *conditional on the quantisation*: the joint sample +
  reference features are clustered once (l2-normalised, PCA to 90% variance, k-means
  with k = min(n, m) / 10, as ``mauve-text`` does), then the sample labels and the
  reference labels are resampled separately, the histograms p*, q* recomputed and
  MAUVE(p*, q*) integrated from the divergence frontier (scaling c). It measures the
  sampling noise of a set of n texts; it does not include the clustering's own noise.
  Near MAUVE = 1 (held-out text against a second held-out draw) resampling can only
  move p* and q* apart, so every replicate lies below the estimate and the interval
  can exclude it: read such an interval as the spread of the figure at this n, not as
  bounds around the estimate.
"""

from __future__ import annotations

import math

import numpy as np

from dslm.evaluate.stats import LEVEL, Interval

#: bootstrap replicates per interval (gen PPL is a vector computation; MAUVE ~1 ms each)
N_BOOT = 1000


def _percentiles(reps: np.ndarray, estimate: float, level: float) -> Interval:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [tail, 1.0 - tail])
    return Interval(float(estimate), float(low), float(high), level)


def genppl_interval(nll, tokens, n_boot: int = N_BOOT, level: float = LEVEL,
                    seed: int = 0) -> Interval:
    """Percentile-bootstrap interval of ``exp(sum nll / sum tokens)`` over samples."""
    nll, tokens = np.asarray(nll, dtype=np.float64), np.asarray(tokens, dtype=np.float64)
    if nll.shape != tokens.shape or nll.ndim != 1 or len(nll) < 2:
        raise ValueError("gen PPL interval needs matching per-sample nll and tokens, n >= 2")
    idx = np.random.default_rng(seed).integers(0, len(nll), size=(n_boot, len(nll)))
    reps = np.exp(nll[idx].sum(1) / tokens[idx].sum(1))
    return _percentiles(reps, math.exp(nll.sum() / tokens.sum()), level)


def _mauve_of_histograms(p: np.ndarray, q: np.ndarray, scaling_factor: float,
                         grid: int = 25) -> np.ndarray:
    """MAUVE of histogram pairs p, q [B, k] (B at once): mauve-text's frontier and area.

    Mixtures r_w = w p + (1 - w) q on ``grid`` weights w in (0, 1); frontier points
    (exp(-c KL(q || r_w)), exp(-c KL(p || r_w))) plus the end points (1, 0) and (0, 1);
    MAUVE = the mean of the trapezoid areas integrated along x and along y.
    """
    p, q = np.atleast_2d(p).astype(np.float64), np.atleast_2d(q).astype(np.float64)
    w = np.linspace(1e-6, 1 - 1e-6, grid)[None, :, None]
    r = w * p[:, None, :] + (1 - w) * q[:, None, :]                      # [B, G, k]

    def kl(a):                                                            # KL(a || r_w): [B, G]
        a = np.broadcast_to(a[:, None, :], r.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log(a / r), 0.0)
        return terms.sum(-1)

    ones, zeros = np.ones((len(p), 1)), np.zeros((len(p), 1))
    x = np.concatenate([ones, np.exp(-scaling_factor * kl(q)), zeros], axis=1)
    y = np.concatenate([zeros, np.exp(-scaling_factor * kl(p)), ones], axis=1)

    def area(u, v):                                                       # trapezoid along sorted u
        order = np.argsort(u, axis=1, kind="stable")
        u, v = np.take_along_axis(u, order, 1), np.take_along_axis(v, order, 1)
        return (np.diff(u, axis=1) * (v[:, 1:] + v[:, :-1]) / 2).sum(1)

    return 0.5 * (area(x, y) + area(y, x))


def cluster_labels(p_features, q_features, num_buckets: int, seed: int = 25,
                   explained_variance: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """(sample labels, reference labels): mauve-text's quantisation of the joint set."""
    import faiss
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import normalize

    p, q = np.asarray(p_features, dtype=np.float64), np.asarray(q_features, dtype=np.float64)
    data = normalize(np.vstack([q, p]), norm="l2", axis=1)
    pca = PCA(n_components=None, whiten=False, random_state=seed + 1).fit(data)
    keep = int(np.argmax(np.cumsum(pca.explained_variance_ratio_) >= explained_variance)) + 1
    data = pca.transform(data)[:, :keep].astype(np.float32)
    km = faiss.Kmeans(data.shape[1], num_buckets, niter=500, verbose=False, nredo=5,
                      update_index=True, seed=seed + 2)
    km.train(data)
    labels = km.index.search(data, 1)[1].reshape(-1)
    return labels[len(q):], labels[:len(q)]


def mauve_interval(p_features, q_features, estimate: float, num_buckets: int | str = "auto",
                   scaling_factor: float = 5.0, seed: int = 25, n_boot: int = 200,
                   level: float = LEVEL) -> Interval:
    """Bootstrap interval of MAUVE(samples, reference), conditional on one quantisation;
    ``estimate`` is the full MAUVE (the package's figure) reported as the point."""
    n, m = len(p_features), len(q_features)
    k = max(2, int(round(min(n, m) / 10))) if num_buckets == "auto" else int(num_buckets)
    p_lab, q_lab = cluster_labels(p_features, q_features, k, seed)
    rng = np.random.default_rng(seed)
    p_idx, q_idx = rng.integers(0, n, (n_boot, n)), rng.integers(0, m, (n_boot, m))
    p = (p_lab[p_idx][..., None] == np.arange(k)).mean(1)                 # [B, k] histograms
    q = (q_lab[q_idx][..., None] == np.arange(k)).mean(1)
    return _percentiles(_mauve_of_histograms(p, q, scaling_factor), estimate, level)


def point_genppl_interval(rec: dict, seed: int = 0) -> dict | None:
    """``{"estimate", "low", "high", "level"}`` for a sweep record with ``per_sample``; else None."""
    per = rec.get("per_sample") or {}
    if "nll" not in per or "tokens" not in per or len(per["nll"]) < 2:
        return None
    return genppl_interval(per["nll"], per["tokens"], seed=seed).as_dict()


def annotate(doc: dict, seed: int = 0) -> dict:
    """Add ``gen_ppl_ci`` to every point, the AR baseline and the reference of a sweep
    document that has per-sample scores (in place; returns ``doc``)."""
    records = list(doc.get("points", {}).values())
    records += [r for r in (doc.get("ar_baseline"), doc.get("reference")) if r]
    for rec in records:
        ci = point_genppl_interval(rec, seed)
        if ci is not None:
            rec["gen_ppl_ci"] = ci
    return doc
