"""Alignment metrics between embeddings of the same N structures.

Pure functions on numpy arrays or torch tensors; results are float64. Every metric is one row
of ``spec.METRICS``. See docs/metrics.md for definitions, references, the tie rule and the
precision strategy.
"""

from ._backend import clear_workspace
from .distance import dcor
from .intrinsic_dim import twonn_id
from .kernel import cka, cknna, mutual_knn
from .neighbours import information_imbalance
from .pairwise import METRIC_INFO, PAIRWISE_METRICS, PER_MODEL_METRICS, pairwise
from .reconstruction import gfre, lfre
from .spec import ALIASES, SPECS, MetricSpec

__all__ = [
    "ALIASES",
    "METRIC_INFO",
    "PAIRWISE_METRICS",
    "PER_MODEL_METRICS",
    "SPECS",
    "MetricSpec",
    "cka",
    "clear_workspace",
    "cknna",
    "dcor",
    "gfre",
    "information_imbalance",
    "lfre",
    "mutual_knn",
    "pairwise",
    "twonn_id",
]
