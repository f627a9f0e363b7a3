"""Distance correlation (Székely, Rizzo & Bakirov 2007) from streamed distance moments.

Both estimators only need, per pair of models, S = Σ_{i≠j} a_ij b_ij, the row sums
R_i = Σ_j a_ij and the totals T = Σ_i R_i (a, b: Euclidean distance matrices):

* V-statistic (``dcor.distance_correlation``):   n²·dCov²  = S/1 − 2/n·R_a·R_b + T_a T_b/n²
  (double centring written out; the diagonal is included in the sums).
* U-statistic (``dcor.u_distance_correlation_sqr``, Székely & Rizzo 2014):
  n(n-3)·dCov²_u = S + T_a T_b/((n-1)(n-2)) − 2/(n-2)·R_a·R_b.

The engine subtracts a constant c from every off-diagonal distance before accumulating
(both estimators are invariant to that, the V-statistic once the diagonal also carries −c),
which keeps the final differences well conditioned.
"""

from __future__ import annotations

import math

import numpy as np

from ._backend import Array, backend_for
from ._engine import EngineResult, Needs, run_engine
from .kernel import _check_pair


def dcov_matrix(res: EngineResult, unbiased: bool) -> np.ndarray:
    """(M, M) distance covariances (squared) of all model pairs from engine moments."""
    assert res.dc_cross is not None and res.dc_rowsum is not None and res.dc_shift is not None
    n = res.n
    s, r, c = res.dc_cross, res.dc_rowsum, res.dc_shift
    if unbiased:
        t = r.sum(1)
        rr = r @ r.T
        return (s + np.outer(t, t) / ((n - 1) * (n - 2)) - 2.0 * rr / (n - 2)) / (n * (n - 3))
    # put -c back on the diagonal so that the shift is a constant over all n² entries
    s_v = s + n * np.outer(c, c)
    r_v = r - c[:, None]
    t_v = r_v.sum(1)
    return s_v / n**2 - 2.0 * (r_v @ r_v.T) / n**3 + np.outer(t_v, t_v) / n**4


def dcor_from_dcov(cov: np.ndarray, unbiased: bool) -> np.ndarray:
    """dCor (V) or bias-corrected dCor² (U) from a matrix of distance covariances.

    Follows ``dcor``'s conventions: denominator √|dVar²(X)·dVar²(Y)|, 0 when it is 0.
    """
    var = np.diag(cov)
    den = np.sqrt(np.abs(np.outer(var, var)))
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(den > 0, cov / np.where(den > 0, den, 1.0), 0.0)
    if unbiased:
        return r2
    return np.sqrt(np.maximum(r2, 0.0))


def dcor(X: Array, Y: Array, unbiased: bool = False, *, device: str | None = None) -> float:
    """Distance correlation with Euclidean distances.

    ``unbiased=False`` equals ``dcor.distance_correlation`` (the square root of the
    V-statistic dCor²); ``unbiased=True`` equals ``dcor.u_distance_correlation_sqr`` (the
    bias-corrected *squared* distance correlation, which can be negative).
    Streams row blocks: O(N²·D) time, O(block·N) memory.
    """
    be = backend_for([X, Y], device)
    x, y = be.asarray(X), be.asarray(Y)
    _check_pair(be, x, y)
    if unbiased and x.shape[0] < 4:
        raise ValueError("the bias-corrected estimator needs N >= 4")
    res = run_engine(be, [x, y], Needs(dcor=True))
    value = float(dcor_from_dcov(dcov_matrix(res, unbiased), unbiased)[0, 1])
    return value if math.isfinite(value) else math.nan
