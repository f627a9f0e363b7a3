"""Kernel alignment metrics: CKNNA, mutual kNN (from kNN lists) and linear CKA.

CKNNA and mutual kNN never touch an N×N matrix: every term of the masked unbiased HSIC
only involves entries (i, j) where j is among i's k nearest neighbours in *both* spaces,
so each is a reduction over at most N·k entries of the sorted key lists i·N + j.
"""

from __future__ import annotations

import math

import numpy as np

from . import _compiled
from ._backend import Array, Backend, backend_for


def mutual_entries(be: Backend, n: int, keys: Array) -> Array:
    """For every entry (i, j) of a sorted kNN key list, whether (j, i) is in the list too.

    Computed once per model: the Σ K̃∘L̃ᵀ term of any masked HSIC built on this list only
    needs it (and the same flags of the other model), never another search."""
    if len(keys) == 0:
        return keys == 0
    if _full_rows(be, n, keys):
        return _compiled.mutual_rows((keys % n).reshape(n, -1)).reshape(-1)
    tkeys = (keys % n) * n + keys // n
    pos = be.searchsorted(keys, tkeys)
    pos[pos >= len(keys)] = len(keys) - 1
    return keys[pos] == tkeys


def _hsic_masked(
    be: Backend, n: int, keys: Array, kv: Array, lv: Array, mutual: Array
) -> tuple[float, float]:
    """Unbiased HSIC (Song et al. 2012, eq. 5) of K̃ = M∘K and L̃ = M∘L where M is the
    (not necessarily symmetric) 0/1 mask whose ones are ``keys`` (sorted i·N + j, i ≠ j)
    and ``mutual`` flags the entries whose transpose (j, i) is in M as well.

    HSIC = [ΣK̃∘L̃ᵀ + ΣK̃·ΣL̃/((n-1)(n-2)) − 2/(n-2)·Σ_l colsum(K̃)_l·rowsum(L̃)_l] / (n(n-3)).

    Because kNN masks are not symmetric, 1ᵀK̃L̃1 ≠ 1ᵀL̃K̃1 in general, so HSIC(K̃, L̃) and
    HSIC(L̃, K̃) differ slightly; both are returned (every other term is shared).
    """
    if len(keys) == 0:
        return 0.0, 0.0
    rows = keys // n
    cols = keys % n
    sum_k = float(kv.sum())
    sum_l = float(lv.sum())
    # 1ᵀK̃L̃1 = Σ_l (Σ_i K̃_il)(Σ_j L̃_lj): a column sum of K̃ meets a row sum of L̃
    t3_kl = float((be.bincount(cols, kv, n) * be.bincount(rows, lv, n)).sum())
    t3_lk = float((be.bincount(cols, lv, n) * be.bincount(rows, kv, n)).sum())
    # ΣK̃_ij L̃_ji needs (j, i) in the mask as well; K, L are symmetric so L_ji = L_ij
    t1 = float((kv * lv)[mutual].sum())
    common = t1 + sum_k * sum_l / ((n - 1) * (n - 2))
    norm = n * (n - 3)
    return (common - 2.0 * t3_kl / (n - 2)) / norm, (common - 2.0 * t3_lk / (n - 2)) / norm


def _intersect(be: Backend, n: int, keys_x: Array, keys_y: Array) -> tuple[Array, Array]:
    """Positions in X's and Y's key lists of the entries present in both."""
    if _full_rows(be, n, keys_x) and _full_rows(be, n, keys_y) and len(keys_x) == len(keys_y):
        pos = _compiled.intersect_rows((keys_x % n).reshape(n, -1), (keys_y % n).reshape(n, -1))
        pos = pos.reshape(-1)
        ix = be.nonzero(pos >= 0)
        return ix, pos[ix]
    pos = be.searchsorted(keys_y, keys_x)
    pos[pos >= len(keys_y)] = len(keys_y) - 1
    hit = keys_y[pos] == keys_x
    return be.nonzero(hit), pos[hit]


def _full_rows(be: Backend, n: int, keys: Array) -> bool:
    """Whether the compiled row kernels apply: a CPU list with the same number of entries
    in every row (every kNN list), checked in O(N)."""
    if be.kind != "numpy" or _compiled.intersect_rows is None or len(keys) % n:
        return False
    k = len(keys) // n
    first, last = keys[::k] // n, keys[k - 1 :: k] // n
    rows = np.arange(n)
    return bool(np.array_equal(first, rows) and np.array_equal(last, rows))


def cknna_from_lists(
    be: Backend,
    n: int,
    kx: Array,
    vx: Array,
    ky: Array,
    vy: Array,
    self_x: float,
    self_y: float,
    eps: float = 0.0,
    mutual_x: Array | None = None,
    mutual_y: Array | None = None,
) -> tuple[float, float]:
    """CKNNA(X, Y) and CKNNA(Y, X) from kNN key/value lists and self-HSICs (``mutual_*``:
    the lists' ``mutual_entries``, computed here when not given)."""
    mx = mutual_entries(be, n, kx) if mutual_x is None else mutual_x
    my = mutual_entries(be, n, ky) if mutual_y is None else mutual_y
    ix, iy = _intersect(be, n, kx, ky)
    # on shared entries K comes from X's list and L from Y's list: no recomputation needed;
    # (j, i) is in the intersection iff it is in both lists
    hxy, hyx = _hsic_masked(be, n, kx[ix], vx[ix], vy[iy], mx[ix] & my[iy])
    prod = self_x * self_y
    if prod < 0:  # as sqrt of a negative in the reference: undefined
        return math.nan, math.nan
    den = math.sqrt(prod) + eps
    if den == 0:
        return math.nan, math.nan
    return hxy / den, hyx / den


def mutual_knn_from_lists(be: Backend, n: int, k: int, kx: Array, ky: Array) -> float:
    ix, _ = _intersect(be, n, kx, ky)
    # every row holds exactly k neighbours, so the mean of per-row fractions is total/(N·k)
    return len(ix) / (n * k)


def self_hsic(be: Backend, n: int, keys: Array, vals: Array, mutual: Array | None = None) -> float:
    mutual = mutual_entries(be, n, keys) if mutual is None else mutual
    return _hsic_masked(be, n, keys, vals, vals, mutual)[0]


# ---------------------------------------------------------------------------------- CKA
class CkaStats:
    """Per-model quantities for feature-space linear CKA (centred data, squared row norms)."""

    def __init__(self, be: Backend, x: Array) -> None:
        self.xc = x - x.mean(0)
        self.sq = (self.xc * self.xc).sum(1)
        self.n = int(x.shape[0])


def _cross_fro2(a: Array, b: Array) -> float:
    """‖AᵀB‖²_F, the feature-space form of tr(KL) for linear kernels."""
    c = a.T @ b
    return float((c * c).sum())


def hsic_feature(p: CkaStats, q: CkaStats, unbiased: bool) -> float:
    return hsic_linear(_cross_fro2(p.xc, q.xc), p.sq, q.sq, unbiased)


def hsic_linear(cross: float, sq_x: Array, sq_y: Array, unbiased: bool) -> float:
    """HSIC of two linear kernels of centred data from tr(KL) = ``cross`` (‖XcᵀYc‖²_F, or
    Σ K∘L of the centred Gram matrices) and the squared row norms |x_i|², |y_i|²."""
    if not unbiased:
        # biased HSIC up to the common factor 1/(n-1)²: tr(HKH HLH) = ‖XcᵀYc‖²_F
        return cross
    # Song et al. unbiased HSIC with K = XcXcᵀ: centred columns make K1 = 0, so
    # 1ᵀK̃1 = -Σ|x_i|², K̃1 = -|x|², and tr(K̃L̃) = ‖XcᵀYc‖² − Σ|x_i|²|y_i|².
    n = int(sq_x.shape[0])
    nm = float((sq_x * sq_y).sum())
    sn, sm = float(sq_x.sum()), float(sq_y.sum())
    val = cross - nm + sn * sm / ((n - 1) * (n - 2)) - 2.0 * nm / (n - 2)
    return val / (n * (n - 3))


def cka_from_hsic(hxy: float, hxx: float, hyy: float) -> float:
    prod = hxx * hyy
    if prod < 0:
        return math.nan
    den = math.sqrt(prod)
    return hxy / den if den != 0 else math.nan


def cka(X: Array, Y: Array, unbiased: bool = False, *, device: str | None = None) -> float:
    """Linear CKA (Kornblith et al. 2019), computed in feature space.

    ``unbiased=False``: HSIC₀ = ‖XcᵀYc‖²_F/(n-1)², CKA = HSIC(X,Y)/√(HSIC(X,X)HSIC(Y,Y)).
    ``unbiased=True``: the same ratio with the unbiased HSIC of Song et al. (2012) on the
    linear kernels (as platonic-rep's ``unbiased_cka``).  Cost O(N·Dx·Dy), memory O(Dx·Dy).
    """
    be = backend_for([X, Y], device)
    x, y = be.asarray(X), be.asarray(Y)
    _check_pair(be, x, y)
    if unbiased and x.shape[0] < 4:
        raise ValueError("unbiased CKA needs N >= 4")
    p, q = CkaStats(be, x), CkaStats(be, y)
    return cka_from_hsic(
        hsic_feature(p, q, unbiased), hsic_feature(p, p, unbiased), hsic_feature(q, q, unbiased)
    )


def _check_pair(be: Backend, x: Array, y: Array) -> None:
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError("embeddings must be 2-D (N, D)")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"row counts differ: {x.shape[0]} vs {y.shape[0]}")
    be.check_finite(x, "X")
    be.check_finite(y, "Y")


# ------------------------------------------------------------------ kNN-based, public API
def _knn_lists(X: Array, Y: Array, k: int, device: str | None):
    from ._engine import Needs, run_engine  # local: keeps module import order trivial

    be = backend_for([X, Y], device)
    x, y = be.asarray(X), be.asarray(Y)
    _check_pair(be, x, y)
    res = run_engine(be, [x, y], Needs(knn=True), k=k)
    return be, res


def cknna(X: Array, Y: Array, k: int = 25, *, eps: float = 0.0, device: str | None = None) -> float:
    """CKNNA (Huh et al. 2024): CKA restricted to mutual k-nearest-neighbour pairs.

    K = XXᵀ, L = YYᵀ (linear kernels, features *not* centred); row i's k nearest
    neighbours by inner product, self excluded, ties to the lower index; M = M_K ∘ M_L;
    CKNNA = HSIC_u(M∘K, M∘L) / (√(HSIC_u(M_K∘K, M_K∘K)·HSIC_u(M_L∘L, M_L∘L)) + eps), with
    HSIC_u the unbiased estimator of Song et al. (2012).  platonic-rep uses eps=1e-6.
    kNN masks are not symmetric, so CKNNA(X, Y) and CKNNA(Y, X) differ slightly (through
    the 1ᵀK̃L̃1 term), exactly as in platonic-rep.
    O(N²·D) time for the neighbour search, O(N·k) for the rest; memory O(block·N + N·k).
    """
    be, res = _knn_lists(X, Y, k, device)
    n = res.n
    if n < 4:
        raise ValueError("CKNNA needs N >= 4")
    kx, vx, ky, vy = res.knn_keys[0], res.knn_vals[0], res.knn_keys[1], res.knn_vals[1]
    mx, my = mutual_entries(be, n, kx), mutual_entries(be, n, ky)
    hx, hy = self_hsic(be, n, kx, vx, mx), self_hsic(be, n, ky, vy, my)
    return cknna_from_lists(be, n, kx, vx, ky, vy, hx, hy, eps, mx, my)[0]


def mutual_knn(X: Array, Y: Array, k: int = 25, *, device: str | None = None) -> float:
    """Mean over rows of |kNN_X(i) ∩ kNN_Y(i)| / k (inner-product neighbours, self excluded,
    ties to the lower index), as platonic-rep's ``mutual_knn``."""
    be, res = _knn_lists(X, Y, k, device)
    return mutual_knn_from_lists(be, res.n, k, res.knn_keys[0], res.knn_keys[1])
