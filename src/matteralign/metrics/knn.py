"""Exact k-nearest-neighbour selection with a deterministic tie rule.

Both numpy's ``argpartition`` and torch's ``topk`` return an arbitrary subset when several
entries tie with the k-th value.  We make the result a function of the data alone: all
entries strictly better than the k-th value are kept, and the remaining slots go to the
tied entries with the **lowest column index** (docs/metrics.md, "Ties").
"""

from __future__ import annotations

from . import _compiled
from ._backend import Array, Backend


def topk_largest(be: Backend, scores: Array, k: int) -> tuple[Array, Array]:
    """Column indices of the k largest entries of every row, sorted ascending by index, and
    the scores at those entries.

    ``scores`` is a (rows, N) float64 block in which excluded entries (self) hold ``-inf``.
    On CPU arrays the compiled one-pass kernel applies the tie rule as it goes; otherwise a
    partial selection is followed by an explicit tie pass.  Cost O(rows·N).
    """
    n = scores.shape[1]
    if be.kind == "numpy" and _compiled.topk_rows is not None and k < n:
        return _compiled.topk_rows(be.contiguous(scores), k)
    idx = _topk_largest_generic(be, scores, k)
    return idx, be.take_rows(scores, idx)


def _topk_largest_generic(be: Backend, scores: Array, k: int) -> Array:
    n = scores.shape[1]
    if k >= n:  # every column is taken: there is nothing to decide
        return be.sort_rows(be.topk_sorted(scores, n)[1])[0]
    # k + 1 candidates, best first: where the (k+1)-th best is strictly below the k-th, the
    # top k are unique and no pass over the whole row is needed to look for ties
    ranked, cand = be.topk_sorted(scores, k + 1)
    kth = ranked[:, k - 1]
    bad = be.nonzero(ranked[:, k] == kth)  # a tie at the k-th place: decided below
    cand = cand[:, :k]
    if len(bad):
        sub = scores[bad]
        kb = kth[bad][:, None]
        greater = sub > kb
        tied = sub == kb
        need = k - be.count_rows(greater)
        # keep the first `need` tied columns (lowest indices) of each ambiguous row
        rank_in_ties = tied.cumsum(1) if be.kind == "numpy" else tied.long().cumsum(1)
        sel = greater | (tied & (rank_in_ties <= need[:, None]))
        cols = be.nonzero(sel.reshape(-1)) % scores.shape[1]
        cand[bad] = cols.reshape(len(bad), k)
    return be.sort_rows(cand)[0]
