"""MAUVE between two feature sets, computed by the ``mauve-text`` package.

MAUVE quantises the joint set of features P (model samples) and Q (reference texts)
into k clusters (k-means after PCA), giving histograms p and q, and integrates the
divergence frontier of the mixtures R_l = l p + (1 - l) q:
    MAUVE = area under { (exp(-c KL(q || R_l)), exp(-c KL(p || R_l))) : l in (0, 1) },
with scaling factor c. Field protocol defaults (ReMDM/MDLM): k = n / 10 clusters
("auto"), c = 5, features of the last token. Features are always passed in, so
``mauve-text`` never downloads its own featurizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dslm.errors import DSLMError

SCALING_FACTOR = 5.0


@dataclass
class MauveResult:
    mauve: float
    frontier_integral: float
    num_buckets: int


def _check(name: str, feats) -> np.ndarray:
    arr = np.asarray(feats, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise DSLMError(f"MAUVE needs {name} features of shape [n >= 2, dim], got {arr.shape}")
    if not np.isfinite(arr).all():
        raise DSLMError(f"MAUVE {name} features hold NaN or inf values")
    return arr


def compute_mauve(p_features, q_features, num_buckets: int | str = "auto",
                  scaling_factor: float = SCALING_FACTOR, seed: int = 25,
                  kmeans_explained_var: float = 0.9) -> MauveResult:
    """MAUVE(P, Q) of model features ``p_features`` [n, d] vs reference ``q_features`` [m, d]."""
    try:
        import mauve
    except ImportError:
        raise DSLMError("MAUVE needs the 'mauve-text' and 'faiss-cpu' packages: "
                        "pip install 'dslm[full]'") from None
    p = _check("sample", p_features)
    q = _check("reference", q_features)
    if p.shape[1] != q.shape[1]:
        raise DSLMError(f"MAUVE feature widths differ: samples {p.shape[1]}, reference {q.shape[1]}")
    if num_buckets != "auto":
        num_buckets = int(num_buckets)
        if num_buckets < 2:
            raise DSLMError(f"MAUVE needs at least 2 clusters, got {num_buckets}")
    out = mauve.compute_mauve(p_features=p, q_features=q, num_buckets=num_buckets,
                              mauve_scaling_factor=scaling_factor, seed=seed,
                              kmeans_explained_var=kmeans_explained_var, verbose=False)
    return MauveResult(float(out.mauve), float(out.frontier_integral), int(out.num_buckets))
