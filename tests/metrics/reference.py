"""Independent dense float64 reference formulas (N×N matrices; for tests only).

Written from the papers' definitions, deliberately in the most literal form, so that they
share no code path with the streamed engine.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist


def _topk_stable(scores: np.ndarray, k: int) -> np.ndarray:
    """k largest per row; equal scores ordered by lower column index (stable sort)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k]


def knn_mask(x: np.ndarray, k: int) -> np.ndarray:
    g = x @ x.T
    np.fill_diagonal(g, -np.inf)
    idx = _topk_stable(g, k)
    mask = np.zeros_like(g)
    np.put_along_axis(mask, idx, 1.0, axis=1)
    return mask


def hsic_unbiased(K: np.ndarray, L: np.ndarray) -> float:
    """Song et al. (2012) eq. 5, dense.  Evaluated in extended precision (x87 long double
    where available): with uncentred kernels of offset data the three terms cancel to
    ~1e-6 in float64, which would make the reference, not the engine, the inexact side."""
    m = K.shape[0]
    Kt = K.astype(np.longdouble)
    Lt = L.astype(np.longdouble)
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    val = (
        np.sum(Kt * Lt.T)
        + Kt.sum() * Lt.sum() / ((m - 1) * (m - 2))
        - 2.0 * np.sum(Kt @ Lt) / (m - 2)
    )
    return float(val / (m * (m - 3)))


def hsic_biased(K: np.ndarray, L: np.ndarray) -> float:
    m = K.shape[0]
    H = np.eye(m) - 1.0 / m
    return float(np.trace(K @ H @ L @ H))


def cknna_ref(x: np.ndarray, y: np.ndarray, k: int) -> float:
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    K, L = x @ x.T, y @ y.T
    mk, ml = knn_mask(x, k), knn_mask(y, k)
    m = mk * ml
    kl = hsic_unbiased(m * K, m * L)
    kk = hsic_unbiased(mk * K, mk * K)
    ll = hsic_unbiased(ml * L, ml * L)
    return kl / np.sqrt(kk * ll)


def mutual_knn_ref(x: np.ndarray, y: np.ndarray, k: int) -> float:
    mk, ml = knn_mask(np.asarray(x, np.float64), k), knn_mask(np.asarray(y, np.float64), k)
    return float(((mk * ml).sum(1) / k).mean())


def cka_ref(x: np.ndarray, y: np.ndarray, unbiased: bool = False) -> float:
    """Kernel form with *uncentred* linear kernels, as platonic-rep writes it."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    K, L = x @ x.T, y @ y.T
    h = hsic_unbiased if unbiased else hsic_biased
    return h(K, L) / np.sqrt(h(K, K) * h(L, L))


def dcor_ref(x: np.ndarray, y: np.ndarray, unbiased: bool = False) -> float:
    a = cdist(np.asarray(x, np.float64), np.asarray(x, np.float64))
    b = cdist(np.asarray(y, np.float64), np.asarray(y, np.float64))
    n = a.shape[0]

    def centre(d: np.ndarray) -> np.ndarray:
        if not unbiased:
            return d - d.mean(0)[None] - d.mean(1)[:, None] + d.mean()
        u = d - d.sum(0)[None] / (n - 2) - d.sum(1)[:, None] / (n - 2)
        u += d.sum() / ((n - 1) * (n - 2))
        np.fill_diagonal(u, 0.0)
        return u

    A, B = centre(a), centre(b)
    norm = n * n if not unbiased else n * (n - 3)
    vxy, vxx, vyy = (A * B).sum() / norm, (A * A).sum() / norm, (B * B).sum() / norm
    den = np.sqrt(abs(vxx * vyy))
    r2 = vxy / den if den > 0 else 0.0  # the dcor package's convention for constant data
    return float(r2 if unbiased else np.sqrt(max(r2, 0.0)))


def ii_ref(x: np.ndarray, y: np.ndarray) -> float:
    """Δ(X→Y): ranks by a stable sort of each row (ties → lower index), self excluded."""
    dx = cdist(np.asarray(x, np.float64), np.asarray(x, np.float64))
    dy = cdist(np.asarray(y, np.float64), np.asarray(y, np.float64))
    n = dx.shape[0]
    np.fill_diagonal(dx, np.inf)
    np.fill_diagonal(dy, np.inf)
    nn = np.argsort(dx, axis=1, kind="stable")[:, 0]
    order = np.argsort(dy, axis=1, kind="stable")
    ranks = np.empty(n)
    for i in range(n):
        ranks[i] = np.flatnonzero(order[i] == nn[i])[0] + 1
    return float(2.0 * ranks.mean() / n)


def twonn_ref(x: np.ndarray, estimator: str = "mle", discard: float = 0.1) -> float:
    d = cdist(np.asarray(x, np.float64), np.asarray(x, np.float64))
    np.fill_diagonal(d, np.inf)
    d.sort(axis=1)
    mu = d[:, 1] / d[:, 0]
    n = mu.size
    if estimator == "mle":
        return float((n - 1) / np.log(mu).sum())
    n_eff = int(n * (1 - discard))
    xs = np.sort(np.log(mu))[:n_eff]
    ys = -np.log(1 - np.arange(1, n_eff + 1) / n)
    slope, *_ = np.linalg.lstsq(xs[:, None], ys, rcond=None)
    return float(slope[0])
