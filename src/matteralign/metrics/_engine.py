"""One streamed pass over row blocks that gathers every per-model statistic at once.

For a block of B rows and each model m we form the B×N Gram block once (two when the
data need centring, see ``_needs_centring``) and derive from it

* the k nearest neighbours by inner product (CKNNA, mutual kNN),
* the Euclidean nearest neighbour and the two smallest distances (II, TwoNN),
* the Euclidean distance block, which is used twice before being dropped:
  - II ranks: the rank, in target t's distances, of source s's nearest neighbour, for all
    ordered pairs (s, t) — possible within the block because both only need rows of the block;
  - dCor moments: all M distance blocks are stacked as an M × (B·N) matrix so that
    Σ_ij a_ij b_ij for all M² pairs is one GEMM per block; together with row sums this is
    all the (un)biased distance covariances need (Székely & Rizzo's O(n²)-free identities).

Peak memory is O(M·B·N + N·k·M) — never N×N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import _compiled
from ._backend import Array, Backend
from .knn import topk_largest

#: squared offset-to-spread ratio above which distances are computed from centred data.
#: The Gram trick |x_i|²+|x_j|²-2x_i·x_j loses about eps64·|x|² absolutely; below this ratio
#: that is < 1e-12 of a typical squared distance, so one uncentred GEMM serves both the
#: inner-product kNN and the distances (and integer data stay exact, which keeps ties exact).
CENTRING_RATIO = 1e4


@dataclass
class Needs:
    knn: bool = False  # inner-product kNN lists
    nn: bool = False  # Euclidean 1-NN index and r1, r2
    ii: bool = False  # information-imbalance rank sums
    dcor: bool = False  # distance moment sums

    @property
    def dist(self) -> bool:
        return self.nn or self.ii or self.dcor


@dataclass
class EngineResult:
    n: int
    k: int
    knn_keys: list[Array] = field(default_factory=list)  # (N·k,) sorted i·N + j
    knn_vals: list[Array] = field(default_factory=list)  # (N·k,) x_i·x_j for those entries
    nn1: list[np.ndarray] = field(default_factory=list)
    r12: list[np.ndarray] = field(default_factory=list)  # (N, 2) two smallest distances
    ii_rank_sum: np.ndarray | None = None  # (M, M) int64, [s, t]
    dc_cross: np.ndarray | None = None  # (M, M) Σ_{i≠j} a'_ij b'_ij (shifted distances)
    dc_rowsum: np.ndarray | None = None  # (M, N) Σ_{j≠i} a'_ij
    dc_shift: np.ndarray | None = None  # (M,) constant c_m subtracted off the diagonal
    # per-model terms of CKNNA that callers reusing one model's lists across many pairs fill
    # in once (``kernel.mutual_entries``, ``kernel.self_hsic``); computed when absent
    knn_mutual: list[Array] | None = None
    knn_self_hsic: list[float] | None = None


def _needs_centring(be: Backend, x: Array) -> bool:
    mu = x.mean(0)
    off = float((mu * mu).sum())
    spread = float(((x - mu) ** 2).sum()) / x.shape[0]
    return off > CENTRING_RATIO * max(spread, 1e-300)


def auto_block(n: int, m: int, budget_bytes: int) -> int:
    per_row = 8 * n * (m + 4)  # stacked distance blocks + a few temporaries
    return int(max(1, min(n, budget_bytes // per_row)))


def run_engine(
    be: Backend,
    data: list[Array],
    needs: Needs,
    k: int = 25,
    block_size: int | None = None,
    memory_budget: int = 512 * 2**20,
) -> EngineResult:
    """Stream over row blocks; ``data`` are float64 (N, D_m) arrays of one backend."""
    m_models = len(data)
    n = int(data[0].shape[0])
    if needs.knn and not 1 <= k <= n - 1:
        raise ValueError(f"k={k} must be in [1, N-1] with N={n}")
    if needs.dist and n < 3:
        raise ValueError("distance metrics need at least 3 points")
    res = EngineResult(n=n, k=k)
    B = block_size or auto_block(n, m_models, memory_budget)

    # Per-model preparation: distance frame (maybe centred) and squared norms.
    dist_x: list[Array] = []
    dist_sq: list[Array] = []
    shared: list[bool] = []
    for x in data:
        centre = needs.dist and _needs_centring(be, x)
        xd = x - x.mean(0) if centre else x
        dist_x.append(xd)
        dist_sq.append((xd * xd).sum(1) if needs.dist else None)
        shared.append(not centre)

    all_cols = be.arange(n)

    if needs.knn:
        keys = [be.zeros((n * k,), integer=True) for _ in data]
        vals = [be.zeros((n * k,)) for _ in data]
    if needs.nn:
        nn1 = [be.zeros((n,), integer=True) for _ in data]
        r12 = [be.zeros((n, 2)) for _ in data]
    ii_sum = np.zeros((m_models, m_models), dtype=np.int64)
    if needs.dcor:
        cross = be.zeros((m_models, m_models))
        rowsum = be.zeros((m_models, n))
        shift = np.zeros(m_models)

    # Workspaces reused by every block and model: when II or dCor need all models' distance
    # blocks at once, an M × (B·N) stack that the dCor GEMM reads as is; otherwise one block.
    stacked = be.workspace((m_models, B * n), slot=1) if (needs.ii or needs.dcor) else None
    single = be.workspace((B, n), slot=0) if stacked is None else None

    for r0 in range(0, n, B):
        r1 = min(n, r0 + B)
        b = r1 - r0
        rows = be.arange(r0, r1)
        local = be.arange(b)
        for m, x in enumerate(data):
            # one buffer serves the Gram block and then the distance block: the kNN selection
            # is done with the Gram block before the distances are written over it
            d = single[:b] if stacked is None else stacked[m, : b * n].reshape(b, n)
            if needs.knn:
                be.gram_into(x[r0:r1], x, d)
                # self excluded by index, not by value; the diagonal is not needed again:
                # the distance block below overwrites it with 0
                d[local, rows] = -math.inf
                idx, top = topk_largest(be, d, k)
                keys[m][r0 * k : r1 * k] = (rows[:, None] * n + idx).reshape(-1)
                vals[m][r0 * k : r1 * k] = top.reshape(-1)
            if not needs.dist:
                continue
            if not (needs.knn and shared[m]):
                be.gram_into(dist_x[m][r0:r1], dist_x[m], d)
            _gram_to_distances(be, d, dist_x[m], dist_sq[m], r0)
            if needs.nn:
                d[local, rows] = math.inf
                nn1[m][r0:r1] = be.argmin_rows(d)  # first minimum = lowest index
                r12[m][r0:r1] = be.two_smallest(d)
                d[local, rows] = 0.0

        if needs.ii:
            for t in range(m_models):
                d_t = stacked[t, : b * n].reshape(b, n)
                sources = [s for s in range(m_models) if s != t]
                nn_block = [nn1[s][r0:r1] for s in sources]
                totals = _rank_sums(be, d_t, nn_block, rows, all_cols)
                for s, total in zip(sources, totals, strict=True):
                    ii_sum[s, t] += total
        if needs.dcor:
            for m in range(m_models):
                d = stacked[m, : b * n].reshape(b, n)
                if r0 == 0:
                    # centre the magnitudes before the GEMM: the U- and V-centred statistics
                    # are invariant to an off-diagonal constant, and a smaller dynamic range
                    # loses less to cancellation in the final differences
                    shift[m] = float(d.sum()) / max(b * (n - 1), 1)
                d -= shift[m]
                d[local, rows] = 0.0
                rowsum[m, r0:r1] = d.sum(1)
            flat = stacked[:, : b * n]
            cross += flat @ flat.T

    if needs.knn:
        res.knn_keys, res.knn_vals = keys, vals
    if needs.nn:
        res.nn1 = [be.to_numpy(a) for a in nn1]
        res.r12 = [be.to_numpy(a) for a in r12]
    if needs.ii:
        res.ii_rank_sum = ii_sum
    if needs.dcor:
        res.dc_cross = be.to_numpy(cross)
        res.dc_rowsum = be.to_numpy(rowsum)
        res.dc_shift = shift
    return res


def _gram_to_distances(be: Backend, d: Array, x: Array, sq: Array, r0: int) -> None:
    """In place: the Gram block of rows r0.. of ``x`` becomes their Euclidean distances,
    |x_i|² + |x_j|² − 2 x_i·x_j, with exact zeros on the diagonal and near-duplicates redone
    directly."""
    b = d.shape[0]
    local, rows = be.arange(b), be.arange(r0, r0 + b)
    d *= -2.0
    d += sq[r0 : r0 + b, None]
    d += sq[None, :]
    d[local, rows] = 0.0
    _exact_near_zero(be, d, x, sq, r0)
    be.sqrt_clamped(d)


def dense_matrices(be: Backend, x: Array, gram: bool, dist: bool) -> tuple[Array, Array]:
    """The full (N, N) inner-product Gram matrix and Euclidean distance matrix of one model,
    computed as the engine computes its blocks (same centring rule, same near-zero repair);
    an entry is ``None`` when not asked for.  Memory 8·N² bytes each."""
    n = int(x.shape[0])
    g = be.empty((n, n)) if gram else None
    if gram:
        be.gram_into(x, x, g)
    if not dist:
        return g, None
    centre = _needs_centring(be, x)
    xd = x - x.mean(0) if centre else x
    d = be.empty((n, n))
    if gram and not centre:
        d[...] = g
    else:
        be.gram_into(xd, xd, d)
    _gram_to_distances(be, d, xd, (xd * xd).sum(1), 0)
    return g, d


#: squared distances below this fraction of |x_i|² + |x_j|² are dominated by the Gram
#: trick's cancellation (absolute error ~ D·eps·(|x_i|² + |x_j|²), and √ of an error near 0
#: is large: duplicates would sit ~1e-8 apart instead of 0); they are recomputed directly
NEAR_ZERO = 1e-6
#: pairs recomputed at once (bounds the temporary (pairs, D) difference array)
NEAR_ZERO_CHUNK = 1 << 16


def _exact_near_zero(be: Backend, d2: Array, x: Array, sq: Array, r0: int) -> None:
    """Replace, in place, the squared distances of block rows r0.. that lost their digits to
    cancellation by Σ(x_i − x_j)², computed directly (near-duplicate points)."""
    # screen with the largest |x_j|² (a per-row bound, no N-column float temporary), then
    # apply the exact per-pair threshold to the few candidates
    bound = NEAR_ZERO * (sq[r0 : r0 + d2.shape[0]] + sq.max())
    flat_d2 = d2.reshape(-1)
    flat = be.nonzero((d2 < bound[:, None]).reshape(-1))
    if not len(flat):
        return
    n = d2.shape[1]
    flat = flat[flat_d2[flat] < NEAR_ZERO * (sq[r0 + flat // n] + sq[flat % n])]
    for c0 in range(0, len(flat), NEAR_ZERO_CHUNK):
        pos = flat[c0 : c0 + NEAR_ZERO_CHUNK]
        diff = x[r0 + pos // n] - x[pos % n]
        flat_d2[pos] = (diff * diff).sum(1)


def _rank_sums(
    be: Backend, d_t: Array, nn_block: list[Array], rows: Array, all_cols: Array
) -> list[int]:
    """For each source s (its nearest neighbours j = nn_block[s] of the block rows), the
    Σ over block rows i of rank_t(i, j_i) = 1 + #{l ≠ i: d_il < d_ij}
    + #{l ≠ i, l < j_i: d_il == d_ij}, in target t's distance block.  Exact integers.

    All sources share one pass over each row: the counts below/at every source's threshold
    d_ij come from the sorted thresholds (compiled kernel on CPU, batched searchsorted in
    torch); without numba, two comparisons per entry and source."""
    if not nn_block:
        return []
    thr = be.stack([be.take_rows(d_t, j) for j in nn_block]).T  # (rows, sources)
    if be.kind == "numpy" and _compiled.threshold_counts is not None:
        lt, le = _compiled.threshold_counts(be.contiguous(d_t), thr)
    elif be.kind == "torch":
        torch = be.xp
        ordered, order = torch.sort(thr.contiguous(), dim=1)
        lt = torch.empty_like(order)
        le = torch.empty_like(order)
        for out, right in ((lt, True), (le, False)):
            # first threshold > v (right) or >= v (left): v counts for that one and above
            first = torch.searchsorted(ordered, d_t.contiguous(), right=right)
            hist = torch.zeros((d_t.shape[0], thr.shape[1] + 1), dtype=torch.int64,
                               device=d_t.device)
            hist.scatter_add_(1, first, torch.ones_like(first))
            out.scatter_(1, order, hist[:, :-1].cumsum(1))
    else:
        return [_rank_sum(be, d_t, j, rows, all_cols) for j in nn_block]
    return [
        _ranks_from_counts(be, d_t, thr[:, c], lt[:, c], le[:, c] - lt[:, c], j, rows, all_cols)
        for c, j in enumerate(nn_block)
    ]


def _rank_sum(be: Backend, d_t: Array, j: Array, rows: Array, all_cols: Array) -> int:
    """One source's rank sum by direct comparisons (the path without numba)."""
    thr = be.take_rows(d_t, j)
    lt = be.count_rows(d_t < thr[:, None])
    eq = be.count_rows(d_t == thr[:, None])
    return _ranks_from_counts(be, d_t, thr, lt, eq, j, rows, all_cols)


def _ranks_from_counts(
    be: Backend,
    d_t: Array,
    thr: Array,
    lt: Array,
    eq: Array,
    j: Array,
    rows: Array,
    all_cols: Array,
) -> int:
    """Σ_i rank from #{l: d_il < thr_i} and #{l: d_il == thr_i} (self included in both)."""
    # Self sits at distance exactly 0, so it is counted in `lt` iff thr > 0.
    rank = 1 + lt - (thr > 0) * 1
    # Rows with any tie besides j itself (including thr == 0, where self ties) are redone
    # explicitly with the lower-index rule; with continuous data this set is empty.
    bad = be.nonzero(eq > 1)
    if len(bad):
        sub = d_t[bad]
        tb = thr[bad][:, None]
        jb = j[bad][:, None]
        ok = (sub < tb) | ((sub == tb) & (all_cols[None, :] < jb))
        ok[be.arange(len(bad)), rows[bad]] = False
        rank[bad] = 1 + be.count_rows(ok)
    return int(rank.sum())
