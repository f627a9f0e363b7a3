"""The metric table: one row per metric, from which every list of metrics is derived.

A row says which statistics the streamed engine must gather for the metric (``needs``), how the
metric's values follow from them (``compute``), and what plots, reports, the config schema and
calibration need to know about it. ``pairwise`` dispatches through this table, ``plots`` takes
its titles and the report its captions from it; ``tests/metrics/test_common.py`` checks that
the schema, the docs and the single-pair functions agree with it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._backend import Array, Backend
from ._engine import EngineResult, Needs
from .distance import dcor_from_dcov, dcov_matrix
from .intrinsic_dim import twonn_from_distances
from .kernel import (
    CkaStats,
    cka_from_hsic,
    cknna_from_lists,
    hsic_feature,
    mutual_entries,
    mutual_knn_from_lists,
    self_hsic,
)
from .neighbours import ii_matrix
from .reconstruction import gfre_matrix, lfre_matrix

#: the engine statistics a metric can ask for (the fields of ``_engine.Needs``)
ENGINE_NEEDS: tuple[str, ...] = ("knn", "nn", "ii", "dcor")


@dataclass(frozen=True)
class Inputs:
    """What a metric is computed from: the models' arrays and the engine's one pass over them
    (``None`` when no metric of the call needed the engine)."""

    be: Backend
    data: list[Array]
    res: EngineResult | None
    n: int
    k: int
    #: the variants of ``pairwise``; ``diagonal`` (default True): whether the caller reads a
    #: model against itself (left at 1 when False, where computing it costs time)
    opts: Mapping[str, Any]


@dataclass(frozen=True)
class MetricSpec:
    """One metric: what to gather, how to compute it, and how to show it."""

    name: str
    #: engine statistics this metric reads (a subset of ``ENGINE_NEEDS``)
    needs: tuple[str, ...]
    #: (M, M) matrix, row = source, for a pairwise metric; (M,) vector for a per-model one
    compute: Callable[[Inputs], np.ndarray]
    per_model: bool
    symmetric: bool
    #: which direction means "more similar"; None for a per-model metric
    higher_is_aligned: bool | None
    range: tuple[float, float]
    #: the single-pair function of ``matteralign.metrics`` with the same definition
    function: str
    #: structures the metric needs at least (CKNNA's unbiased HSIC divides by N - 3)
    min_n: int
    #: whether the neighbour count k is a parameter (shown in plot titles)
    uses_k: bool
    title: str
    description: str
    #: the report's caption of the metric's figure (reStructuredText)
    caption: str
    aliases: tuple[str, ...] = ()
    #: whether a study without ``metrics.names`` computes it (the paper's metrics; the
    #: reconstruction errors cost several times all of those together, so they are opt-in)
    study_default: bool = True


def _cknna(x: Inputs) -> np.ndarray:
    assert x.res is not None
    be, n, m_models, eps = x.be, x.n, len(x.data), x.opts["cknna_eps"]
    keys, vals = x.res.knn_keys, x.res.knn_vals
    mutual = x.res.knn_mutual or [mutual_entries(be, n, key) for key in keys]
    selfs = x.res.knn_self_hsic or [self_hsic(be, n, keys[i], vals[i], mutual[i])
                                    for i in range(m_models)]
    mat = np.eye(m_models)
    for i in range(m_models):
        if x.opts.get("diagonal", True):
            mat[i, i] = cknna_from_lists(be, n, keys[i], vals[i], keys[i], vals[i], selfs[i],
                                         selfs[i], eps, mutual[i], mutual[i])[0]
        for j in range(i + 1, m_models):
            # one intersection gives both orientations (CKNNA is not symmetric)
            mat[i, j], mat[j, i] = cknna_from_lists(be, n, keys[i], vals[i], keys[j], vals[j],
                                                    selfs[i], selfs[j], eps, mutual[i],
                                                    mutual[j])
    return mat


def _mutual_knn(x: Inputs) -> np.ndarray:
    assert x.res is not None
    m_models = len(x.data)
    mat = np.ones((m_models, m_models))
    for i in range(m_models):
        for j in range(i + 1, m_models):
            mat[i, j] = mat[j, i] = mutual_knn_from_lists(x.be, x.n, x.k, x.res.knn_keys[i],
                                                          x.res.knn_keys[j])
    return mat


def _cka(x: Inputs) -> np.ndarray:
    stats = [CkaStats(x.be, a) for a in x.data]
    unb = x.opts["cka_unbiased"]
    selfs = [hsic_feature(s, s, unb) for s in stats]
    m_models = len(x.data)
    mat = np.eye(m_models)
    for i in range(m_models):
        mat[i, i] = cka_from_hsic(selfs[i], selfs[i], selfs[i])
        for j in range(i + 1, m_models):
            mat[i, j] = mat[j, i] = cka_from_hsic(hsic_feature(stats[i], stats[j], unb),
                                                  selfs[i], selfs[j])
    return mat


def _dcor(x: Inputs) -> np.ndarray:
    assert x.res is not None
    unbiased = x.opts["dcor_unbiased"]
    return dcor_from_dcov(dcov_matrix(x.res, unbiased), unbiased)


def _information_imbalance(x: Inputs) -> np.ndarray:
    assert x.res is not None
    return ii_matrix(x.res)


def _intrinsic_dim(x: Inputs) -> np.ndarray:
    assert x.res is not None
    return np.array([twonn_from_distances(r, x.opts["twonn_estimator"], x.opts["twonn_discard"])
                     for r in x.res.r12])


def _features(x: Inputs) -> list[np.ndarray]:
    return [x.be.to_numpy(a) for a in x.data]


def _gfre(x: Inputs) -> np.ndarray:
    return gfre_matrix(_features(x))


def _lfre(x: Inputs) -> np.ndarray:
    return lfre_matrix(_features(x))


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        name="cknna", needs=("knn",), compute=_cknna, per_model=False,
        # kNN masks are asymmetric, so CKNNA(X,Y) != CKNNA(Y,X) in the last digits
        symmetric=False, higher_is_aligned=True, range=(-1.0, 1.0), function="cknna",
        min_n=4, uses_k=True, title="CKNNA",
        description="CKNNA: CKA restricted to mutual k-nearest neighbours (Huh et al. 2024)",
        caption="Centered kernel nearest-neighbour alignment (Huh et al. 2024): unbiased HSIC "
        "of the two linear kernels restricted to pairs that are among the k nearest "
        "neighbours in both models, normalised; 1 on the diagonal. Higher = more aligned "
        "local geometry.",
    ),
    MetricSpec(
        name="mutual_knn", needs=("knn",), compute=_mutual_knn, per_model=False,
        symmetric=True, higher_is_aligned=True, range=(0.0, 1.0), function="mutual_knn",
        min_n=1, uses_k=True, title="mutual k-NN",
        description="Mutual k-NN: mean fraction of shared k nearest neighbours",
        caption="Mutual k-nearest-neighbour alignment (Huh et al. 2024): mean fraction of each "
        "structure's k nearest neighbours (inner product) shared by the two models. 1 = "
        "identical neighbourhoods.",
        aliases=("mknn",),
    ),
    MetricSpec(
        name="cka", needs=(), compute=_cka, per_model=False,
        symmetric=True, higher_is_aligned=True, range=(0.0, 1.0), function="cka",
        min_n=1, uses_k=False, title="linear CKA",
        description="Linear CKA (Kornblith et al. 2019)",
        caption="Linear centered kernel alignment (Kornblith et al. 2019); global similarity, "
        "1 on the diagonal, invariant to rotations and isotropic scaling.",
    ),
    MetricSpec(
        name="dcor", needs=("dcor",), compute=_dcor, per_model=False,
        symmetric=True, higher_is_aligned=True, range=(0.0, 1.0), function="dcor",
        min_n=1, uses_k=False, title="distance correlation",
        description="Distance correlation, Euclidean (Székely et al. 2007)",
        caption="Distance correlation (Székely et al. 2007) of the Euclidean distances in the "
        "two embedding spaces; 0 only under independence, 1 on the diagonal.",
    ),
    MetricSpec(
        name="information_imbalance", needs=("nn", "ii"), compute=_information_imbalance,
        per_model=False, symmetric=False, higher_is_aligned=False, range=(0.0, 2.0),
        function="information_imbalance", min_n=1, uses_k=False,
        title="information imbalance Δ(row → column)",
        description="Information imbalance Δ(row → column) (Glielmo et al. 2022); "
        "0 = row model predicts column model's neighbours, 1 = no information",
        caption="Information imbalance Δ(row → column) (Glielmo et al. 2022): how well the "
        "row model's nearest neighbours predict the column model's. Asymmetric; 0 = row's "
        "space contains the column's information, ≈1 = none. Rows are sources, columns "
        "targets.",
        aliases=("ii",),
    ),
    MetricSpec(
        name="intrinsic_dim", needs=("nn",), compute=_intrinsic_dim, per_model=True,
        symmetric=True,  # per-model: no direction
        higher_is_aligned=None, range=(0.0, float("inf")), function="twonn_id",
        min_n=1, uses_k=False, title="TwoNN intrinsic dimension",
        description="TwoNN intrinsic dimension (Facco et al. 2017)",
        caption="TwoNN intrinsic dimension (Facco et al. 2017) of each model's embedding of "
        "the dataset.",
        aliases=("twonn", "twonn_id", "id"),
    ),
    MetricSpec(
        name="gfre", needs=(), compute=_gfre, per_model=False, symmetric=False,
        study_default=False,
        higher_is_aligned=False, range=(0.0, float("inf")), function="gfre", min_n=4,
        uses_k=False, title="GFRE(row → column)",
        description="Global feature reconstruction error GFRE(row → column) (Goscinski et al. "
        "2021): held-out error of a ridge map from row's features to column's; 0 = "
        "reconstructed, ≈1 = no information",
        caption="Global feature reconstruction error GFRE(row → column) (Goscinski et al. "
        "2021): root mean squared held-out error (2-fold) of the cross-validated ridge map from "
        "the row model's standardised features to the column model's. Asymmetric; 0 = the "
        "column's features are a linear function of the row's, ≈1 = the row carries no linear "
        "information about them. Rows are sources, columns targets.",
    ),
    MetricSpec(
        name="lfre", needs=(), compute=_lfre, per_model=False, symmetric=False,
        study_default=False,
        higher_is_aligned=False, range=(0.0, float("inf")), function="lfre", min_n=4,
        uses_k=False, title="LFRE(row → column)",
        description="Local feature reconstruction error LFRE(row → column) (Goscinski et al. "
        "2021): held-out error of ridge maps fitted on each point's 15 nearest neighbours in "
        "row's space; 0 = reconstructed, ≈1 = no information",
        caption="Local feature reconstruction error LFRE(row → column) (Goscinski et al. "
        "2021): as GFRE, but each held-out structure is predicted by a ridge map fitted on its "
        "15 nearest training structures in the row model's space, so a smooth nonlinear "
        "relation counts as reconstructed. Asymmetric; 0 = reconstructed, ≈1 = no "
        "information. Rows are sources, columns targets.",
    ),
)

#: name -> row, in the table's order
SPECS: dict[str, MetricSpec] = {spec.name: spec for spec in METRICS}
#: every alias -> its metric's name
ALIASES: dict[str, str] = {alias: spec.name for spec in METRICS for alias in spec.aliases}


def engine_needs(metrics: list[str]) -> Needs:
    """The engine statistics the given metrics need, each gathered once for all of them."""
    wanted = {need for name in metrics for need in SPECS[name].needs}
    return Needs(**{need: need in wanted for need in ENGINE_NEEDS})
