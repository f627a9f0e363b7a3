"""A tree of models from their alignment: who sits close to whom.

Distance between models i and j from a similarity matrix C (CKNNA by default):

    s_ij = clip((C_ij + C_ji) / 2, 0, 1),    d_ij = sqrt(1 − s_ij),    d_ii = 0.

For linear CKA, C is the cosine similarity of the models' centred Gram matrices (a PSD
matrix with unit diagonal), so sqrt(2 − 2 C_ij) is the Euclidean distance between the
normalised Gram matrices and d = that / √2 is a metric. For CKNNA the kNN masks differ
between pairs, so d is a dissimilarity that need not obey the triangle inequality. Negative
similarities (CKNNA can dip below 0) count as unaligned (d = 1); NaN entries likewise, and
are reported. Models are joined by average linkage (UPGMA).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ModelTree:
    models: list[str]
    distance: np.ndarray  # [M, M]
    linkage: np.ndarray  # scipy linkage matrix, [M-1, 4]
    n_missing: int  # off-diagonal pairs whose similarity was NaN (set to d = 1)


def alignment_distance(matrix: np.ndarray) -> tuple[np.ndarray, int]:
    """d_ij = sqrt(1 − clip((C_ij + C_ji)/2, 0, 1)), zero diagonal; and the NaN pair count."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"alignment_distance: expected a square matrix, got {matrix.shape}")
    sym = (matrix + matrix.T) / 2
    off = ~np.eye(len(sym), dtype=bool)
    n_missing = int(np.triu(~np.isfinite(sym) & off, 1).sum())
    similarity = np.clip(np.nan_to_num(sym, nan=0.0), 0.0, 1.0)
    distance = np.sqrt(1.0 - similarity)
    np.fill_diagonal(distance, 0.0)
    return distance, n_missing


def model_tree(models: list[str], matrix: np.ndarray) -> ModelTree:
    """Average-linkage tree over ``alignment_distance(matrix)``."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    if len(models) < 2:
        raise ValueError(f"a tree needs at least 2 models, the metric file has {len(models)}")
    distance, n_missing = alignment_distance(matrix)
    tree = linkage(squareform(distance, checks=False), method="average")
    return ModelTree(list(models), distance, tree, n_missing)
