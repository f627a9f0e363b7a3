"""Alignment scores calibrated against their permutation null.

Raw alignment scores grow with embedding width and shrink with sample size even for unrelated
models (Gröger et al., arXiv 2602.14486), so a score is read against the same score of the
same two embeddings with the row correspondence destroyed (``pairwise(permutations=P)``).
The calibrated score puts chance at 0 and a perfect score at 1:

* similarity metrics (higher = aligned, bounded above by ``upper``):
  ``(obs - null_mean) / (upper - null_mean)``;
* the information imbalance (lower = more informative, chance ≈ 1):
  ``(null_mean - obs) / null_mean``.

An entry is *above chance* when it is more aligned than the null's 95th percentile (5th for
the information imbalance).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: the formulas as stored in each metric file's ``calibration`` attribute
FORMULA_SIMILARITY = ("calibrated = (obs - null_mean) / ({upper} - null_mean): 1 = perfect, "
                      "0 = chance (permutation null, P={p}); above_chance = obs > null_p95 "
                      "(the null's 95th percentile)")
FORMULA_IMBALANCE = ("calibrated = (null_mean - obs) / null_mean: 1 = fully informative "
                     "(Δ = 0), 0 = chance (permutation null, P={p}); above_chance = obs < "
                     "null_p95 (the null's 5th percentile)")


def calibrated_score(obs: np.ndarray | float, null_mean: np.ndarray | float,
                     higher_is_aligned: bool, upper: float = 1.0) -> np.ndarray:
    """Score rescaled so chance (the null mean) is 0 and perfect alignment is 1.

    NaN where an input is NaN or the scale vanishes (the null already sits at ``upper``, or
    at 0 for the information imbalance).
    """
    obs = np.asarray(obs, dtype=np.float64)
    null_mean = np.asarray(null_mean, dtype=np.float64)
    if higher_is_aligned:
        gain, scale = obs - null_mean, upper - null_mean
    else:
        gain, scale = null_mean - obs, null_mean
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(scale != 0, gain / np.where(scale != 0, scale, 1.0), np.nan)


def above_chance(obs: np.ndarray | float, null_p95: np.ndarray | float,
                 higher_is_aligned: bool) -> np.ndarray:
    """1.0 where ``obs`` is strictly more aligned than the null threshold, 0.0 where not,
    NaN where either is NaN (the diagonal)."""
    obs = np.asarray(obs, dtype=np.float64)
    null_p95 = np.asarray(null_p95, dtype=np.float64)
    beyond = obs > null_p95 if higher_is_aligned else obs < null_p95
    return np.where(np.isfinite(obs) & np.isfinite(null_p95), beyond.astype(np.float64), np.nan)


def calibration_entries(metric: str, matrix: np.ndarray, extra: Mapping[str, np.ndarray],
                        permutations: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The datasets ``calibrated``, ``null_p95``, ``above_chance`` and the ``calibration``
    attribute of one pairwise metric file, from ``pairwise``'s ``null_mean``/``null_p95``.

    Empty when the file has no permutation null (per-model metrics, P = 0).
    """
    from matteralign.metrics import METRIC_INFO

    if "null_mean" not in extra or "null_p95" not in extra:
        return {}, {}
    higher = bool(METRIC_INFO[metric]["higher_is_aligned"])
    upper = float(METRIC_INFO[metric]["range"][1])
    matrix = np.asarray(matrix, dtype=np.float64)
    datasets = {
        "calibrated": calibrated_score(matrix, extra["null_mean"], higher, upper),
        "null_p95": np.asarray(extra["null_p95"], dtype=np.float64),
        "above_chance": above_chance(matrix, extra["null_p95"], higher),
    }
    for array in datasets.values():
        np.fill_diagonal(array, np.nan)
    formula = (FORMULA_SIMILARITY.format(upper=upper, p=permutations) if higher
               else FORMULA_IMBALANCE.format(p=permutations))
    return datasets, {"calibration": formula}
