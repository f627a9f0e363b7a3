"""All pairs of models for all metrics in one streamed pass, plus bootstrap and permutation.

Every model's kNN lists, nearest neighbours and distance moments are computed once (one
pass over row blocks, see ``_engine``) and shared by all pairs and metrics; what is gathered
and how each metric follows from it is the metric's row in ``spec.METRICS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ._backend import Array, Backend, backend_for
from ._engine import run_engine
from .resampling import half_samples, interval, null_summary
from .spec import ALIASES, METRICS, SPECS, Inputs, engine_needs

PAIRWISE_METRICS: tuple[str, ...] = tuple(s.name for s in METRICS if not s.per_model)
PER_MODEL_METRICS: tuple[str, ...] = tuple(s.name for s in METRICS if s.per_model)

#: caption material for plots/reports.  ``higher_is_aligned`` says which direction means
#: "more similar" (False for the information imbalance, where 0 = fully informative).
METRIC_INFO: dict[str, dict[str, Any]] = {
    s.name: {"description": s.description, "symmetric": s.symmetric,
             "higher_is_aligned": s.higher_is_aligned, "range": s.range}
    for s in METRICS
}


def _canonical(metrics: Iterable[str]) -> list[str]:
    out: list[str] = []
    for name in metrics:
        canon = ALIASES.get(name, name)
        if canon not in SPECS:
            raise ValueError(f"unknown metric {name!r}; known: {sorted(SPECS)}")
        if canon not in out:
            out.append(canon)
    return out


def _compute(
    be: Backend,
    data: list[Array],
    metrics: Sequence[str],
    k: int,
    opts: dict[str, Any],
) -> dict[str, np.ndarray]:
    """Every metric of ``metrics`` from one engine pass, through the table's ``compute``."""
    n = int(data[0].shape[0])
    needs = engine_needs(list(metrics))
    too_few = any(n < SPECS[m].min_n for m in metrics)
    if n < 4 and (too_few or opts["cka_unbiased"] or opts["dcor_unbiased"]):
        raise ValueError("these metrics need N >= 4")
    res = None
    if needs.knn or needs.nn or needs.dcor:
        res = run_engine(be, data, needs, k=k, block_size=opts["block_size"],
                         memory_budget=opts["memory_budget"])
    inputs = Inputs(be=be, data=data, res=res, n=n, k=k, opts=opts)
    return {name: SPECS[name].compute(inputs) for name in metrics}


def pairwise(
    embeddings: Mapping[str, Array],
    metrics: Iterable[str] = PAIRWISE_METRICS + PER_MODEL_METRICS,
    k: int = 25,
    device: str | None = None,
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
    block_size: int | None = None,
    memory_budget: int | None = None,
    groups: np.ndarray | None = None,
) -> dict[str, tuple[np.ndarray, list[str]]]:
    """All metrics for all pairs of models, each model's statistics computed once.

    The arrays are used as given: no row is dropped and nothing is normalised. The study's
    matrices are computed on rows valid in every model, each L2-normalised (``metrics.
    preprocessing: l2``); to get its numbers from embedding files, pass
    ``matteralign.analysis.load_study(paths).arrays`` here, not the raw files' embeddings.

    Parameters
    ----------
    embeddings
        name → (N, D_name) array (numpy or torch, any float dtype); rows aligned across models,
        already preprocessed (no NaN rows).
    metrics
        any of ``PAIRWISE_METRICS`` and ``PER_MODEL_METRICS`` (aliases: ii, mknn, twonn).
    k
        neighbours for CKNNA and mutual kNN.
    device
        ``None``: numpy (or the tensors' device if tensors are passed); ``"cuda"`` etc.: torch.
    cka_unbiased, dcor_unbiased, cknna_eps, twonn_estimator, twonn_discard
        variants; defaults are the plain definitions (see the single-pair functions).
    bootstrap
        B > 0 draws B half-samples of distinct structures (delete-half jackknife; with
        replacement would create zero distances between copies) and adds
        ``"<metric>/ci_low"``, ``"<metric>/ci_high"`` (level ``ci``: the full-sample value plus
        the percentiles of the half-sample deviations from their mean) and
        ``"<metric>/boot_std"`` (standard deviation of the half-sample estimates) and
        ``"<metric>/replicates"`` (the B half-sample values, stacked on a first axis, for
        paired intervals of differences between entries).
    permutations
        P > 0 shuffles each model's rows independently P times (destroying the
        correspondence) and adds, for pairwise metrics, ``"<metric>/null_mean"``,
        ``"<metric>/null_std"`` and ``"<metric>/p_value"`` (one-sided, (1+#as-aligned)/(1+P),
        NaN on the diagonal) and ``"<metric>/null_p95"``, the null's chance threshold: the
        ⌈0.95(P+1)⌉-th order statistic (mirrored where lower = more aligned), so an observed
        value strictly beyond it has p ≤ 0.05; ±inf when P < 19 allows no such value.
    block_size, memory_budget
        rows per streamed block, or the byte budget that picks it (default 512 MiB on CPU,
        2 GiB on a GPU).
    groups
        one label per row (e.g. the structure of each atom's row): the half-samples then draw
        half of the groups with all their rows, since rows of one group are not independent.

    Returns
    -------
    dict: metric (or ``"metric/stat"``) → (values, names).  Pairwise metrics give a float64
    (M, M) matrix with row = source X, column = target Y (for the asymmetric information
    imbalance, entry [i, j] = Δ(model_i → model_j)); ``intrinsic_dim`` a float64 (M,) vector.
    """
    names = list(embeddings)
    if not names:
        raise ValueError("no embeddings given")
    wanted = _canonical(metrics)
    raw = [embeddings[name] for name in names]
    be = backend_for(raw, device)
    data = [be.asarray(a) for a in raw]
    n = int(data[0].shape[0])
    for name, x in zip(names, data, strict=True):
        if x.ndim != 2 or x.shape[0] != n:
            raise ValueError(f"{name}: expected shape (N={n}, D), got {tuple(x.shape)}")
        be.check_finite(x, name)
    opts = {
        "cka_unbiased": cka_unbiased,
        "dcor_unbiased": dcor_unbiased,
        "cknna_eps": cknna_eps,
        "twonn_estimator": twonn_estimator,
        "twonn_discard": twonn_discard,
        "block_size": block_size,
        "memory_budget": memory_budget
        or (2**31 if be.kind == "torch" and not str(be.device).startswith("cpu") else 2**29),
    }
    values = _compute(be, data, wanted, k, opts)
    result: dict[str, tuple[np.ndarray, list[str]]] = {
        name: (values[name], names) for name in wanted
    }
    rng = np.random.default_rng(seed)
    if bootstrap > 0:
        samples: dict[str, list[np.ndarray]] = {name: [] for name in wanted}
        for subset in half_samples(rng, n, bootstrap, groups):
            idx = be.index(subset)
            vals_b = _compute(be, [x[idx] for x in data], wanted, k, opts)
            for name in wanted:
                samples[name].append(vals_b[name])
        for name in wanted:
            for stat, arr in interval(samples[name], values[name], ci).items():
                result[f"{name}/{stat}"] = (arr, names)
    pair_names = [name for name in wanted if not SPECS[name].per_model]
    if permutations > 0 and pair_names:
        nulls: dict[str, list[np.ndarray]] = {name: [] for name in pair_names}
        for _ in range(permutations):
            perms = [be.index(rng.permutation(n)) for _ in data]
            vals_p = _compute(
                be, [x[p] for x, p in zip(data, perms, strict=True)], pair_names, k, opts
            )
            for name in pair_names:
                nulls[name].append(vals_p[name])
        for name in pair_names:
            summary = null_summary(nulls[name], values[name], bool(SPECS[name].higher_is_aligned))
            for stat, arr in summary.items():
                np.fill_diagonal(arr, np.nan)  # a model against its own shuffle is not a null
                result[f"{name}/{stat}"] = (arr, names)
    return result
