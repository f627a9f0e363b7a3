"""Exact k-nearest-neighbour selection with a deterministic tie rule.

Both numpy's ``argpartition`` and torch's ``topk`` return an arbitrary subset when several
entries tie with the k-th value.  We make the result a function of the data alone: all
entries strictly better than the k-th value are kept, and the remaining slots go to the
tied entries with the **lowest column index** (docs/metrics.md, "Ties").
"""

from __future__ import annotations

from ._backend import Array, Backend


def topk_largest(be: Backend, scores: Array, k: int) -> Array:
    """Column indices of the k largest entries of every row, sorted ascending by index.

    ``scores`` is a (rows, N) float64 block in which excluded entries (self, copies of self)
    hold ``-inf``.  Cost O(rows·N) on top of the partial selection.
    """
    n = scores.shape[1]
    if k >= n:  # every column is taken: there is nothing to decide
        return be.sort_rows(be.topk_candidates(scores, n))[0]
    # k + 1 candidates: where the (k+1)-th best is strictly below the k-th, the top k are
    # unique and no pass over the whole row is needed to look for ties
    cand = be.topk_candidates(scores, k + 1)
    cand_vals = be.take_rows(scores, cand)
    order = be.sort_rows(-cand_vals)[1]
    ranked = be.take_rows(cand_vals, order)  # descending
    kth = ranked[:, k - 1]
    bad = be.nonzero(ranked[:, k] == kth)  # a tie at the k-th place: decided below
    cand = be.take_rows(cand, order[:, :k])
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
