"""A tree of models from their alignment: who sits close to whom.

Distance between models i and j from a similarity matrix C (CKNNA by default):

    s_ij = clip((C_ij + C_ji) / 2, 0, 1),    d_ij = sqrt(1 − s_ij),    d_ii = 0.

For linear CKA, C is the cosine similarity of the models' centred Gram matrices (a PSD
matrix with unit diagonal), so sqrt(2 − 2 C_ij) is the Euclidean distance between the
normalised Gram matrices and d = that / √2 is a metric. For CKNNA the kNN masks differ
between pairs, so d is a dissimilarity that need not obey the triangle inequality. Negative
similarities (CKNNA can dip below 0) count as unaligned (d = 1); NaN entries likewise, and
are reported. Models are joined by average linkage (UPGMA).

The neighbourhood tree (the paper's √JSD distance, read as follows): each model gives each
structure the uniform distribution over its k nearest neighbours; the Jensen–Shannon
divergence (base 2) of two such distributions whose sets share m of k members is 1 − m/k, so
the mean over structures is 1 − mutual-kNN and

    d_ij = sqrt(mean_n JSD(p_i(n), p_j(n))) = sqrt(1 − clip(mKNN_ij, 0, 1)).

Each clade's support is the share of half-sample replicate matrices (the metric file's
``replicates``) whose tree has the same clade (same set of leaves).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ModelTree:
    models: list[str]
    distance: np.ndarray  # [M, M]
    linkage: np.ndarray  # scipy linkage matrix, [M-1, 4]
    n_missing: int  # off-diagonal pairs whose similarity was NaN (set to d = 1)
    #: per linkage row: the share of replicate trees with that clade (empty: no replicates)
    support: list[float] = field(default_factory=list)
    #: what the distance is, for labels
    distance_name: str = "sqrt(1 − s), s = clip((C_ij + C_ji)/2, 0, 1)"

    def clades(self) -> list[frozenset[str]]:
        """The leaves under each linkage row, in row order."""
        return [frozenset(self.models[i] for i in leaves) for leaves in clade_leaves(self.linkage)]


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


def neighbourhood_distance(mutual_knn: np.ndarray) -> tuple[np.ndarray, int]:
    """d_ij = sqrt(mean JSD of the models' kNN distributions) = sqrt(1 − clip(mKNN_ij, 0, 1))
    (mutual kNN is symmetric; the mean of both orientations is taken all the same)."""
    return alignment_distance(mutual_knn)


def clade_leaves(linkage: np.ndarray) -> list[frozenset[int]]:
    """The leaf indices under each row of a scipy linkage matrix."""
    n = len(linkage) + 1
    members: list[frozenset[int]] = [frozenset([i]) for i in range(n)]
    for a, b in linkage[:, :2].astype(int):
        members.append(members[a] | members[b])
    return members[n:]


def _linkage(distance: np.ndarray) -> np.ndarray:
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    return linkage(squareform(distance, checks=False), method="average")


def model_tree(models: list[str], matrix: np.ndarray, replicates: np.ndarray | None = None,
               neighbourhood: bool = False) -> ModelTree:
    """Average-linkage tree over ``alignment_distance(matrix)`` (``neighbourhood``: the √JSD
    distance of a mutual-kNN matrix), with each clade's support over ``replicates``
    [B, M, M] when given."""
    if len(models) < 2:
        raise ValueError(f"a tree needs at least 2 models, the metric file has {len(models)}")
    to_distance = neighbourhood_distance if neighbourhood else alignment_distance
    distance, n_missing = to_distance(matrix)
    tree = _linkage(distance)
    support: list[float] = []
    if replicates is not None and len(replicates):
        seen = [set(clade_leaves(_linkage(to_distance(r)[0]))) for r in replicates]
        support = [float(np.mean([clade in s for s in seen])) for clade in clade_leaves(tree)]
    name = ("sqrt(mean JSD of kNN distributions) = sqrt(1 − mutual kNN)" if neighbourhood
            else "sqrt(1 − s), s = clip((C_ij + C_ji)/2, 0, 1)")
    return ModelTree(list(models), distance, tree, n_missing, support, name)
