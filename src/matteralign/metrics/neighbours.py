"""Information imbalance (Glielmo et al. 2022, PNAS Nexus 1:pgac039)."""

from __future__ import annotations

import numpy as np

from ._backend import Array, backend_for
from ._engine import EngineResult, Needs, run_engine
from .kernel import _check_pair


def ii_matrix(res: EngineResult) -> np.ndarray:
    """(M, M) Δ(s → t) = 2/N · mean_i rank_t(i, nn_s(i)); the diagonal is 2/N exactly."""
    assert res.ii_rank_sum is not None
    n = res.n
    out = 2.0 * res.ii_rank_sum.astype(np.float64) / (n * n)
    np.fill_diagonal(out, 2.0 / n)  # a point's own nearest neighbour has rank 1 in itself
    return out


def information_imbalance(X: Array, Y: Array, *, device: str | None = None) -> float:
    """Δ(X → Y) = (2/N)·⟨r⟩: the mean rank, in Y's Euclidean distances, of every point's
    nearest neighbour in X (self excluded, rank 1 = nearest; equal distances are ordered by
    lower index, both when choosing the neighbour and when ranking).  ≈0 when X predicts Y's
    neighbourhoods, ≈1 when it carries no information about them.  Asymmetric.
    """
    be = backend_for([X, Y], device)
    x, y = be.asarray(X), be.asarray(Y)
    _check_pair(be, x, y)
    res = run_engine(be, [x, y], Needs(nn=True, ii=True))
    return float(ii_matrix(res)[0, 1])
