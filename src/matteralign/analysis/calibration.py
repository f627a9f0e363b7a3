"""Alignment scores calibrated against their permutation null.

Raw alignment scores grow with embedding width and shrink with sample size even for unrelated
models (Gröger et al., arXiv 2602.14486), so a score is read against the same score of the
same two embeddings with the row correspondence destroyed (``pairwise(permutations=P)``).
The calibrated score puts chance at 0 and a perfect score at 1:

* similarity metrics (higher = aligned, bounded above by ``upper``):
  ``(obs - null_mean) / (upper - null_mean)``;
* the information imbalance (lower = more informative, chance ≈ 1):
  ``(null_mean - obs) / null_mean``.

An entry is *above chance* when its one-sided permutation p-value (1 + #as-aligned)/(1 + P)
is ≤ 0.05, i.e. when it lies strictly beyond the null's ⌈0.95(P + 1)⌉-th order statistic
(``null_p95``); with P < 19 no entry can be. A second calibrated score follows Gröger et al.:
observed minus the ⌈0.95(P + 1)⌉-th order statistic of observed and nulls together, scaled to
the metric's maximum and clipped at 0 (``calibrated_groger``). Across the pairs × metrics of
a dataset, Benjamini–Hochberg q-values (``q_value``) control the false discovery rate.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: the formulas as stored in each metric file's ``calibration`` attribute
FORMULA_SIMILARITY = ("calibrated = (obs - null_mean) / ({upper} - null_mean): 1 = perfect, "
                      "0 = chance (permutation null, P={p}); calibrated_groger = max(0, (obs - "
                      "q) / ({upper} - q)), q = the ceil(0.95(P+1))-th order statistic of obs and "
                      "the nulls; p_value = (1 + #null >= obs) / (1 + P), smallest {pmin:.3g}; "
                      "above_chance = p_value <= 0.05 (obs > null_p95, the ceil(0.95(P+1))-th "
                      "order statistic of the nulls)")
FORMULA_IMBALANCE = ("calibrated = (null_mean - obs) / null_mean: 1 = fully informative "
                     "(Δ = 0), 0 = chance (permutation null, P={p}); calibrated_groger = "
                     "max(0, (q - obs) / q), q = the mirror order statistic of obs and the "
                     "nulls; p_value = (1 + #null <= obs) / (1 + P), smallest {pmin:.3g}; "
                     "above_chance = p_value <= 0.05 (obs < null_p95)")
#: the level of every chance decision
ALPHA = 0.05


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


def groger_score(obs: np.ndarray | float, pooled_q: np.ndarray | float,
                 higher_is_aligned: bool, upper: float = 1.0) -> np.ndarray:
    """Gröger et al.'s calibrated score: the margin over the (1 − α) order statistic of the
    observed value and its nulls, scaled to the metric's maximum (to 0 for the information
    imbalance) and clipped at 0, so that anything not beyond the threshold scores 0."""
    obs = np.asarray(obs, dtype=np.float64)
    q = np.asarray(pooled_q, dtype=np.float64)
    gain, scale = (obs - q, upper - q) if higher_is_aligned else (q - obs, q)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(scale > 0, gain / np.where(scale > 0, scale, 1.0), np.nan)
    return np.where(np.isfinite(score), np.maximum(score, 0.0), np.nan)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted q-values of a family of p-values (NaNs left out of the
    family and kept as NaN): q_(i) = min_{j >= i} m p_(j) / j, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    values = p[finite]
    m = values.size
    if not m:
        return q
    order = np.argsort(values)
    scaled = values[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    q[finite] = out
    return q


def above_chance_p(p_value: np.ndarray | float, alpha: float = ALPHA) -> np.ndarray:
    """1.0 where the permutation p-value is ≤ ``alpha``, 0.0 where not, NaN where it is NaN."""
    p = np.asarray(p_value, dtype=np.float64)
    return np.where(np.isfinite(p), (p <= alpha).astype(np.float64), np.nan)


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
    """The datasets ``calibrated``, ``calibrated_groger``, ``null_p95``, ``above_chance`` and
    the ``calibration`` attribute of one pairwise metric file, from ``pairwise``'s
    ``null_mean``, ``null_p95``, ``null_pooled_q95`` and ``p_value``.

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
        "above_chance": (above_chance_p(extra["p_value"]) if "p_value" in extra
                         else above_chance(matrix, extra["null_p95"], higher)),
    }
    if "null_pooled_q95" in extra:
        datasets["calibrated_groger"] = groger_score(matrix, extra["null_pooled_q95"], higher,
                                                     upper)
    for array in datasets.values():
        np.fill_diagonal(array, np.nan)
    pmin = 1.0 / (1.0 + permutations)
    formula = (FORMULA_SIMILARITY.format(upper=upper, p=permutations, pmin=pmin) if higher
               else FORMULA_IMBALANCE.format(p=permutations, pmin=pmin))
    return datasets, {"calibration": formula}
