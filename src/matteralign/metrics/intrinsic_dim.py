"""TwoNN intrinsic dimension (Facco, d'Errico, Rodriguez & Laio 2017, Sci. Rep. 7:12140)."""

from __future__ import annotations

import math
import warnings

import numpy as np

from ._backend import Array, backend_for
from ._engine import Needs, run_engine

ESTIMATORS = ("mle", "fit")


def twonn_from_distances(r12: np.ndarray, estimator: str = "mle", discard: float = 0.1) -> float:
    """TwoNN from the (N, 2) first/second neighbour distances.

    μ_i = r2/r1 is Pareto(d) distributed.  ``"mle"``: (N−1)/Σ log μ_i (all points, the
    unbiased maximum-likelihood form also used by dadapy's ``algorithm="ml"``).  ``"fit"``:
    sort μ, F_i = i/N, drop the largest fraction ``discard``, and take the least-squares slope
    through the origin of −log(1−F_i) against log μ_i (dadapy ``"base"``, scikit-dimension).
    Points whose nearest neighbour is at distance 0 (duplicates) have no μ and are dropped.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    if not 0.0 <= discard < 1.0:
        raise ValueError("discard must be in [0, 1)")
    r1, r2 = r12[:, 0], r12[:, 1]
    ok = r1 > 0
    if not ok.all():
        warnings.warn(
            f"twonn_id: dropping {int((~ok).sum())} points with a duplicate (r1 = 0)",
            RuntimeWarning,
            stacklevel=3,
        )
    log_mu = np.log(r2[ok] / r1[ok])
    n = log_mu.shape[0]
    if n < 2:
        return math.nan
    if estimator == "mle":
        total = float(log_mu.sum())
        return (n - 1) / total if total > 0 else math.inf
    n_eff = int(n * (1.0 - discard))
    x = np.sort(log_mu)[:n_eff]
    y = -np.log1p(-np.arange(1, n_eff + 1) / n)
    sxx = float(x @ x)
    return float(x @ y) / sxx if sxx > 0 else math.inf


def twonn_id(
    X: Array, estimator: str = "mle", discard: float = 0.1, *, device: str | None = None
) -> float:
    """TwoNN intrinsic dimension of one embedding (Euclidean distances; ``discard`` applies
    to ``estimator="fit"`` only).  Streams row blocks: O(N²·D) time, O(block·N) memory."""
    be = backend_for([X], device)
    x = be.asarray(X)
    if x.ndim != 2:
        raise ValueError("embeddings must be 2-D (N, D)")
    be.check_finite(x, "X")
    res = run_engine(be, [x], Needs(nn=True))
    return twonn_from_distances(res.r12[0], estimator, discard)
