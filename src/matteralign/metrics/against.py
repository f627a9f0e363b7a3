"""One new model against a zoo: every metric of each (new, zoo model) pair with the study's
intervals and chance levels, and no zoo–zoo pair at all.

Each model's dense Gram and distance matrices are formed once; a half-sample or a null
replicate is then an index into them, so the zoo's neighbour lists, nearest neighbours and
distance moments on the full sample are computed once and reused by every null replicate.
The null shuffles only the new model's rows: every metric is invariant to permuting both
models' rows together, so shuffling one model against the other is the same null as
``pairwise``'s independent shuffle of each. The metric values themselves come from the
metric table's own ``compute`` functions, fed a two-model engine result. Memory
≈ 8·N²·(4.5·M + 6) bytes (:func:`dense_bytes`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._backend import Array, Backend
from ._engine import EngineResult, _rank_sums, dense_matrices
from .kernel import cka_from_hsic, hsic_linear, mutual_entries, self_hsic
from .knn import topk_largest
from .pairwise import PAIRWISE_METRICS, PER_MODEL_METRICS, _canonical
from .resampling import half_samples, interval, null_summary
from .spec import SPECS, Inputs, engine_needs

#: Row 0 of every pairwise result: new → zoo model; row 1: zoo model → new.
DIRECTIONS = ("new_to_zoo", "zoo_to_new")


def dense_bytes(n: int, m_zoo: int) -> int:
    """Memory the dense path holds: each zoo model's Gram, distances, their full-sample
    derived matrices and distance ranks, the new model's, and one replicate's copies."""
    return 8 * n * n * (4 * m_zoo + 6) + 4 * n * n * m_zoo


@dataclass
class _Rows:
    """One model's statistics on one ordering of (a subset of) the rows."""

    n: int
    features: Array
    keys: Array | None = None
    vals: Array | None = None
    mutual: Array | None = None
    self_knn: float = 0.0
    dist: Array | None = None
    nn1: np.ndarray | None = None
    r12: np.ndarray | None = None
    shifted: Array | None = None  # distances minus their off-diagonal mean, zero diagonal
    rowsum: Array | None = None
    shift: float = 0.0
    self_dc: float = 0.0
    gram_c: Array | None = None  # doubly centred Gram matrix (linear CKA)
    sq_c: Array | None = None  # its diagonal: squared norms of the centred rows
    self_cka: float = 0.0
    #: rank[i, j]: j's rank in row i of ``dist`` (the information imbalance's tie rule), for
    #: the full-sample rows of a zoo model, which every null replicate ranks against
    rank: np.ndarray | None = None

    def rank_sum(self, nn: np.ndarray) -> int:
        """Σ_i rank of ``nn[i]`` in row i of this model's distances."""
        cols = np.arange(self.n)
        if self.rank is not None:
            return int(self.rank[cols, nn].sum())
        return _rank_sums(Backend("numpy"), self.dist, [nn], cols, cols)[0]


def rank_matrix(dist: np.ndarray) -> np.ndarray:
    """rank[i, j] = 1 + #{l ≠ i: d_il < d_ij} + #{l ≠ i, l < j: d_il = d_ij}: the position of j
    in row i sorted stably by distance, not counting i itself."""
    n = dist.shape[0]
    order = np.argsort(dist, axis=1, kind="stable")
    pos = np.empty((n, n), dtype=np.int32)
    pos[np.arange(n)[:, None], order] = np.arange(n, dtype=np.int32)[None, :]
    self_pos = np.diag(pos).copy()
    return pos + 1 - (self_pos[:, None] < pos)


class _Model:
    """A model's dense matrices and the statistics of any row ordering drawn from them."""

    def __init__(self, be: Backend, x: Array, metrics: list[str], k: int,
                 cka_unbiased: bool) -> None:
        needs = engine_needs(metrics)
        self.be, self.x, self.k, self.unbiased = be, x, k, cka_unbiased
        self.needs, self.cka = needs, "cka" in metrics
        self.gram, self.dist = dense_matrices(be, x, gram=needs.knn or self.cka, dist=needs.dist)

    def rows(self, idx: np.ndarray | None, ranks: bool = False) -> _Rows:
        """Statistics of rows ``idx`` in that order (all rows, as they are, for ``None``);
        ``ranks``: also the rank matrix of the distances."""
        be, needs = self.be, self.needs
        features = self.x if idx is None else self.x[idx]
        n = int(features.shape[0])
        out = _Rows(n=n, features=features)
        diag = np.arange(n)
        if needs.knn or self.cka:
            g = self.gram.copy() if idx is None else self.gram[np.ix_(idx, idx)]
        if needs.knn:
            on_diag = g[diag, diag].copy()
            g[diag, diag] = -math.inf
            cols, vals = topk_largest(be, g, self.k)
            g[diag, diag] = on_diag
            out.keys = (diag[:, None] * n + cols).reshape(-1)
            out.vals = vals.reshape(-1)
            out.mutual = mutual_entries(be, n, out.keys)
            out.self_knn = self_hsic(be, n, out.keys, out.vals, out.mutual)
        if self.cka:
            g -= g.mean(0)[None, :]
            g -= g.mean(1)[:, None]
            out.gram_c, out.sq_c = g, np.diag(g).copy()
            out.self_cka = hsic_linear(float(np.vdot(g, g)), out.sq_c, out.sq_c, self.unbiased)
        if needs.dist:
            d = self.dist if idx is None else self.dist[np.ix_(idx, idx)]
            out.dist = d
        if needs.nn:
            d[diag, diag] = math.inf  # self excluded; restored to 0 below
            out.nn1 = be.argmin_rows(d)
            out.r12 = be.two_smallest(d)
            d[diag, diag] = 0.0
        if needs.ii and ranks:
            out.rank = rank_matrix(d)
        if needs.dcor:
            out.shift = float(d.sum()) / max(n * (n - 1), 1)
            a = d - out.shift
            a[diag, diag] = 0.0
            out.shifted, out.rowsum = a, a.sum(1)
            out.self_dc = float(np.vdot(a, a))
        return out


def _engine_result(rows: list[_Rows], k: int,
                   ii_sums: tuple[int, int] | None = None) -> EngineResult:
    """What ``run_engine`` would have gathered for these models, from their statistics
    (``ii_sums``: the pair's information-imbalance rank sums, 0 → 1 and 1 → 0)."""
    res = EngineResult(n=rows[0].n, k=k)
    if rows[0].keys is not None:
        res.knn_keys = [r.keys for r in rows]
        res.knn_vals = [r.vals for r in rows]
        res.knn_mutual = [r.mutual for r in rows]
        res.knn_self_hsic = [r.self_knn for r in rows]
    if rows[0].nn1 is not None:
        res.nn1 = [r.nn1 for r in rows]
        res.r12 = [r.r12 for r in rows]
    if ii_sums is not None:
        res.ii_rank_sum = np.array([[0, ii_sums[0]], [ii_sums[1], 0]], dtype=np.int64)
    if rows[0].shifted is not None:
        cross = np.empty((len(rows), len(rows)))
        for i, a in enumerate(rows):
            cross[i, i] = a.self_dc
            for j in range(i + 1, len(rows)):
                cross[i, j] = cross[j, i] = float(np.vdot(a.shifted, rows[j].shifted))
        res.dc_cross = cross
        res.dc_rowsum = np.stack([r.rowsum for r in rows])
        res.dc_shift = np.array([r.shift for r in rows])
    return res


def _cka_dense(x: _Rows, y: _Rows, unbiased: bool) -> np.ndarray:
    """Linear CKA of the pair from their centred Gram matrices (Σ K̃∘L̃ = ‖XcᵀYc‖²_F)."""
    cross = float(np.vdot(x.gram_c, y.gram_c))
    value = cka_from_hsic(hsic_linear(cross, x.sq_c, y.sq_c, unbiased), x.self_cka, y.self_cka)
    return np.array([[1.0, value], [value, 1.0]])


def _evaluate(be: Backend, x: _Rows, ys: Sequence[_Rows], pair_metrics: list[str], k: int,
              opts: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """(2, M): new → zoo model and zoo model → new, for every pairwise metric on one
    replicate (``x``: the new model's rows, ``ys``: each zoo model's, in the same order)."""
    needs = engine_needs(pair_metrics)
    table = {name: np.empty((2, len(ys))) for name in pair_metrics}
    if needs.ii:
        # every zoo model's neighbours ranked in the new model's distances: one shared pass
        cols = np.arange(x.n)
        to_new = _rank_sums(be, x.dist, [y.nn1 for y in ys], cols, cols)
    opts = {**opts, "diagonal": False}
    for j, y in enumerate(ys):
        sums = (y.rank_sum(x.nn1), to_new[j]) if needs.ii else None
        inputs = Inputs(be=be, data=[x.features, y.features], res=_engine_result([x, y], k, sums),
                        n=x.n, k=k, opts=opts)
        for name in pair_metrics:
            mat = (_cka_dense(x, y, opts["cka_unbiased"]) if name == "cka"
                   else SPECS[name].compute(inputs))
            table[name][:, j] = mat[0, 1], mat[1, 0]
    return table


def _per_model(be: Backend, x: _Rows, metrics: list[str], k: int,
               opts: Mapping[str, Any]) -> dict[str, float]:
    res = _engine_result([x], k)
    inputs = Inputs(be=be, data=[x.features], res=res, n=x.n, k=k, opts=opts)
    return {name: float(SPECS[name].compute(inputs)[0]) for name in metrics}


def against(
    new: Array,
    zoo: Mapping[str, Array],
    metrics: Iterable[str] = PAIRWISE_METRICS + PER_MODEL_METRICS,
    k: int = 25,
    *,
    cka_unbiased: bool = False,
    dcor_unbiased: bool = False,
    cknna_eps: float = 0.0,
    twonn_estimator: str = "mle",
    twonn_discard: float = 0.1,
    bootstrap: int = 0,
    permutations: int = 0,
    ci: float = 0.95,
    seed: int = 0,
    progress: Callable[[Iterable[Any], str], Iterable[Any]] | None = None,
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every metric between ``new`` and each zoo model, as ``pairwise`` would give them.

    Arrays are used as given (preprocess them as the study did). Returns (results, zoo
    names): for a pairwise metric ``results[name]`` is (2, M) — row 0 new → zoo model, row 1
    zoo model → new (equal for symmetric metrics) — and, with B > 0 or P > 0, the same keys
    as ``pairwise`` (``name/ci_low``, ``name/null_p95``, ...) with the same shape. The
    half-samples are ``pairwise``'s (same seed, same draws), so the values and intervals equal
    the corresponding entries of ``pairwise`` over the new model and the zoo. A per-model
    metric gives the new model's value, shape (1,), and its interval.
    """
    wanted = _canonical(metrics)
    pair_metrics = [m for m in wanted if not SPECS[m].per_model]
    model_metrics = [m for m in wanted if SPECS[m].per_model]
    names = list(zoo)
    if not names:
        raise ValueError("no zoo models given")
    be = Backend("numpy")
    x_new = be.asarray(new)
    arrays = [be.asarray(zoo[name]) for name in names]
    n = int(x_new.shape[0])
    for name, x in [("new model", x_new), *zip(names, arrays, strict=True)]:
        if x.ndim != 2 or x.shape[0] != n:
            raise ValueError(f"{name}: expected shape (N={n}, D), got {tuple(x.shape)}")
        be.check_finite(x, name)
    smallest = n // 2 if bootstrap > 0 else n
    if any(SPECS[m].uses_k for m in wanted) and not 1 <= k <= smallest - 1:
        raise ValueError(f"k={k} must be in [1, N-1] with N={smallest} (half-samples: N/2)")
    if smallest < 4:
        raise ValueError("these metrics need N >= 4")
    opts = {"cka_unbiased": cka_unbiased, "dcor_unbiased": dcor_unbiased,
            "cknna_eps": cknna_eps, "twonn_estimator": twonn_estimator,
            "twonn_discard": twonn_discard}
    steps = progress or (lambda items, _label: items)

    new_model = _Model(be, x_new, wanted, k, cka_unbiased)
    zoo_models = [_Model(be, x, wanted, k, cka_unbiased)
                  for x in steps(arrays, "zoo matrices")]
    zoo_full = [z.rows(None, ranks=permutations > 0) for z in zoo_models]
    new_full = new_model.rows(None)

    def pair_table(x: _Rows, ys: Sequence[_Rows]) -> dict[str, np.ndarray]:
        return _evaluate(be, x, ys, pair_metrics, k, opts)

    values = pair_table(new_full, zoo_full)
    values.update({name: np.array([v]) for name, v in
                   _per_model(be, new_full, model_metrics, k, opts).items()})
    results = dict(values)
    rng = np.random.default_rng(seed)
    if bootstrap > 0:
        samples: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
        for subset in steps(half_samples(rng, n, bootstrap), "half-samples"):
            x_b = new_model.rows(subset)
            table = pair_table(x_b, [z.rows(subset) for z in zoo_models])
            table.update({name: np.array([v]) for name, v in
                          _per_model(be, x_b, model_metrics, k, opts).items()})
            for name in wanted:
                samples[name].append(table[name])
        for name in wanted:
            for stat, arr in interval(samples[name], values[name], ci).items():
                results[f"{name}/{stat}"] = arr
    if permutations > 0 and pair_metrics:
        nulls: dict[str, list[np.ndarray]] = {name: [] for name in pair_metrics}
        for _ in steps(range(permutations), "null replicates"):
            table = pair_table(new_model.rows(rng.permutation(n)), zoo_full)
            for name in pair_metrics:
                nulls[name].append(table[name])
        for name in pair_metrics:
            summary = null_summary(nulls[name], values[name], bool(SPECS[name].higher_is_aligned))
            for stat, arr in summary.items():
                results[f"{name}/{stat}"] = arr
    return results, names
