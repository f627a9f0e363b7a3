"""Compiled CPU kernels for the kNN lists (numba, optional).

One pass per row keeps the k best entries in a small sorted buffer: an entry enters only if
it is strictly larger than the current k-th, so among equal values the lower column index
stays — exactly the documented tie rule (docs/metrics.md, "Ties"), with no second pass, and
the values come back with the indices (timings: docs/metrics.md, "Complexity and memory").
Without numba, ``topk_rows`` is None and the caller falls back to a partial selection plus an
explicit tie pass.

The list kernels use that every row of a kNN list holds exactly k sorted neighbours: the
intersection of two lists is a merge per row, and "is (j, i) in the list" a binary search
in row j, instead of global searches over N·k keys.
"""

from __future__ import annotations

from typing import Any

import numpy as np

topk_rows: Any = None
mutual_rows: Any = None
intersect_rows: Any = None
threshold_counts: Any = None

try:  # pragma: no branch - the driver environment always has numba
    import numba
except ImportError:  # pragma: no cover - exercised by the fallback test through monkeypatch
    numba = None

if numba is not None:

    @numba.njit(cache=True, nogil=True, boundscheck=False, inline="always")
    def _insert_descending(vals: np.ndarray, idx: np.ndarray, p: int, v: float, j: int) -> None:
        """Put (v, j) into the descending buffer, shifting from slot p; an equal value stays
        in front (lower index first)."""
        while p > 0 and vals[p - 1] < v:
            vals[p] = vals[p - 1]
            idx[p] = idx[p - 1]
            p -= 1
        vals[p] = v
        idx[p] = j

    @numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
    def _topk_rows(a: np.ndarray, k: int, out_idx: np.ndarray, out_val: np.ndarray) -> None:
        rows, n = a.shape
        for r in numba.prange(rows):
            row = a[r]
            vals = out_val[r]
            idx = out_idx[r]
            for j in range(k):  # the first k columns, sorted descending
                _insert_descending(vals, idx, j, row[j], j)
            kth = vals[k - 1]
            for j in range(k, n):
                v = row[j]
                if v > kth:  # strict: a later (higher-index) equal value never displaces
                    _insert_descending(vals, idx, k - 1, v, j)
                    kth = vals[k - 1]
            # hand back in column order (the key lists are sorted i·N + j)
            for i in range(1, k):
                vi = vals[i]
                ii = idx[i]
                p = i
                while p > 0 and idx[p - 1] > ii:
                    vals[p] = vals[p - 1]
                    idx[p] = idx[p - 1]
                    p -= 1
                vals[p] = vi
                idx[p] = ii

    def topk_rows(a: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Column indices (ascending) and values of the k largest entries of every row of a
        C-contiguous float64 block; ties go to the lower column index."""
        out_idx = np.empty((a.shape[0], k), dtype=np.int64)
        out_val = np.empty((a.shape[0], k), dtype=np.float64)
        _topk_rows(a, k, out_idx, out_val)
        return out_idx, out_val

    @numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
    def _mutual_rows(idx: np.ndarray, out: np.ndarray) -> None:
        n, k = idx.shape
        for i in numba.prange(n):
            for c in range(k):
                j = idx[i, c]
                lo, hi = 0, k  # binary search for i in row j (sorted ascending)
                while lo < hi:
                    mid = (lo + hi) // 2
                    if idx[j, mid] < i:
                        lo = mid + 1
                    else:
                        hi = mid
                out[i, c] = lo < k and idx[j, lo] == i

    @numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
    def _intersect_rows(ix: np.ndarray, iy: np.ndarray, pos: np.ndarray) -> None:
        n, k = ix.shape
        for i in numba.prange(n):
            b = 0
            for a in range(k):  # merge of two ascending rows
                v = ix[i, a]
                while b < k and iy[i, b] < v:
                    b += 1
                pos[i, a] = i * k + b if b < k and iy[i, b] == v else -1

    def mutual_rows(idx: np.ndarray) -> np.ndarray:
        """For (N, k) neighbour rows sorted ascending: out[i, c] = i is among idx[idx[i, c]]."""
        out = np.empty(idx.shape, dtype=np.bool_)
        _mutual_rows(idx, out)
        return out

    def intersect_rows(ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
        """For two (N, k) neighbour row arrays sorted ascending: the flat position in ``iy``
        of every entry of ``ix``, or -1 where row i of ``iy`` lacks it."""
        pos = np.empty(ix.shape, dtype=np.int64)
        _intersect_rows(ix, iy, pos)
        return pos

    @numba.njit(parallel=True, cache=True, nogil=True, boundscheck=False)
    def _threshold_counts(d: np.ndarray, thr: np.ndarray, lt: np.ndarray, le: np.ndarray) -> None:
        b, n = d.shape
        m = thr.shape[1]
        for r in numba.prange(b):
            order = np.argsort(thr[r])
            st = thr[r][order]
            below = np.zeros(m + 1, dtype=np.int64)  # below[q]: entries whose first larger
            upto = np.zeros(m + 1, dtype=np.int64)  # (resp. not smaller) threshold is q
            for j in range(n):
                v = d[r, j]
                lo, hi = 0, m  # first threshold > v
                while lo < hi:
                    mid = (lo + hi) >> 1
                    if st[mid] > v:
                        hi = mid
                    else:
                        lo = mid + 1
                below[lo] += 1
                lo2, hi2 = 0, lo  # first threshold >= v (at most the one above)
                while lo2 < hi2:
                    mid = (lo2 + hi2) >> 1
                    if st[mid] >= v:
                        hi2 = mid
                    else:
                        lo2 = mid + 1
                upto[lo2] += 1
            acc_lt = 0
            acc_le = 0
            for q in range(m):
                acc_lt += below[q]
                acc_le += upto[q]
                lt[r, order[q]] = acc_lt
                le[r, order[q]] = acc_le

    def threshold_counts(d: np.ndarray, thr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For a (rows, N) block and (rows, M) thresholds: #{j: d[r, j] < thr[r, s]} and
        #{j: d[r, j] <= thr[r, s]}, in one pass over each row (2 binary searches among the
        M sorted thresholds per entry, instead of 2·M comparisons)."""
        lt = np.empty(thr.shape, dtype=np.int64)
        le = np.empty(thr.shape, dtype=np.int64)
        _threshold_counts(d, np.ascontiguousarray(thr), lt, le)
        return lt, le
