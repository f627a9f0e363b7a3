"""The study's resampling plan and how replicate values become intervals and chance levels.

Shared by :func:`~matteralign.metrics.pairwise` (all pairs) and
:func:`~matteralign.metrics.against.against` (one new model against a zoo), so that both
draw the same half-samples from the same seed and summarise them the same way.
"""

from __future__ import annotations

import numpy as np


def half_samples(rng: np.random.Generator, n: int, bootstrap: int,
                 groups: np.ndarray | None = None) -> list[np.ndarray]:
    """B sorted subsets of n // 2 *distinct* rows (delete-half jackknife, Shao & Wu 1989).

    Resampling with replacement would put copies of a structure at distance 0, which corrupts
    every neighbour-based metric; the spread of half-sample estimates equals the full-sample
    sampling variance to first order (finite-population factor (N - d)/d = 1).

    ``groups`` (one label per row, e.g. the structure of each atom): half of the *groups* is
    drawn and every row of a drawn group kept, because rows of one group are not independent
    (the unit of resampling is the structure, not the atom)."""
    if groups is None:
        return [np.sort(rng.choice(n, size=n // 2, replace=False)) for _ in range(bootstrap)]
    labels = np.asarray(groups)
    if labels.shape != (n,):
        raise ValueError(f"groups: expected one label per row ({n}), got shape {labels.shape}")
    unique, inverse = np.unique(labels, return_inverse=True)
    if len(unique) < 2:
        raise ValueError("groups: half-samples need at least 2 groups")
    out = []
    for _ in range(bootstrap):
        chosen = np.zeros(len(unique), dtype=bool)
        chosen[rng.choice(len(unique), size=len(unique) // 2, replace=False)] = True
        out.append(np.flatnonzero(chosen[inverse]))
    return out


def interval(samples: list[np.ndarray], observed: np.ndarray,
             ci: float) -> dict[str, np.ndarray]:
    """``ci_low``/``ci_high``: the full-sample value plus the percentiles of the half-sample
    deviations from their mean (neighbour metrics shift with N at fixed k, so intervals are
    centred on the full-sample value); ``boot_std``: the half-sample estimates' spread;
    ``replicates``: the B half-sample values themselves, stacked on a first axis, so that a
    difference of two entries gets a paired interval from the same half-samples."""
    stack = np.stack(samples)
    dev = stack - np.nanmean(stack, axis=0)[None]
    lo, hi = 50.0 * (1.0 - ci), 50.0 * (1.0 + ci)
    std = (np.nanstd(stack, axis=0, ddof=1) if len(samples) > 1
           else np.full_like(observed, np.nan))
    return {"ci_low": observed + np.nanpercentile(dev, lo, axis=0),
            "ci_high": observed + np.nanpercentile(dev, hi, axis=0),
            "boot_std": std, "replicates": stack.astype(np.float64)}


def paired_interval(observed: float, replicates: np.ndarray,
                    ci: float = 0.95) -> tuple[float, float]:
    """The interval of a statistic of several entries (a difference, a mean of pairs) from its
    values on the same half-samples, centred on the full-sample value like :func:`interval`."""
    reps = np.asarray(replicates, dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if reps.size < 2 or not np.isfinite(observed):
        return float("nan"), float("nan")
    dev = reps - reps.mean()
    lo, hi = np.percentile(dev, [50.0 * (1.0 - ci), 50.0 * (1.0 + ci)])
    return float(observed + lo), float(observed + hi)


#: the one-sided level of the chance threshold ``null_p95``
ALPHA = 0.05


def permutation_p(observed: np.ndarray, nulls: np.ndarray,
                  higher_is_aligned: bool) -> np.ndarray:
    """One-sided permutation p-value (1 + #null as aligned as observed) / (1 + P): exact and
    never 0 (Phipson & Smyth 2010); its smallest value is 1 / (1 + P)."""
    stack = np.asarray(nulls, dtype=np.float64)
    obs = np.asarray(observed, dtype=np.float64)[None]
    as_aligned = (stack >= obs) if higher_is_aligned else (stack <= obs)
    return (1.0 + as_aligned.sum(0)) / (1.0 + stack.shape[0])


def chance_threshold(nulls: np.ndarray, higher_is_aligned: bool,
                     alpha: float = ALPHA) -> np.ndarray:
    """The value an observation must pass for p ≤ ``alpha``: the ⌈(1 − α)(P + 1)⌉-th smallest
    null value r (the mirror order statistic where lower is aligned). An observation is strictly
    beyond it exactly when at most P − r nulls are as aligned, i.e. when its p-value of
    :func:`permutation_p` is ≤ α (ties included); where no order statistic allows that
    (P + 1 < 1/α) the threshold is ±inf: nothing is above chance with so few nulls."""
    stack = np.sort(np.asarray(nulls, dtype=np.float64), axis=0)
    p = stack.shape[0]
    rank = int(np.ceil((1.0 - alpha) * (p + 1)))  # 1-based
    shape = stack.shape[1:]
    if rank > p:
        return np.full(shape, np.inf if higher_is_aligned else -np.inf)
    return stack[rank - 1] if higher_is_aligned else stack[p - rank]


def null_summary(nulls: list[np.ndarray], observed: np.ndarray,
                 higher_is_aligned: bool) -> dict[str, np.ndarray]:
    """Mean, spread, one-sided p-value (1 + #as-aligned)/(1 + P), the chance threshold
    ``null_p95`` (the order statistic beyond which p ≤ 0.05, see :func:`chance_threshold`)
    and ``null_pooled_q95``: the ⌈0.95(P + 1)⌉-th order statistic of the observed value and
    the P nulls together, the threshold of Gröger et al.'s calibrated score."""
    stack = np.stack(nulls)
    mean = stack.mean(0)
    std = stack.std(0, ddof=1) if len(nulls) > 1 else np.full_like(mean, np.nan)
    pooled = np.concatenate([np.asarray(observed, dtype=np.float64)[None], stack])
    sorted_pooled = np.sort(pooled, axis=0)
    rank = int(np.ceil((1.0 - ALPHA) * len(pooled)))  # 1-based, always <= P + 1
    q = (sorted_pooled[rank - 1] if higher_is_aligned
         else sorted_pooled[len(pooled) - rank])
    return {"null_mean": mean, "null_std": std,
            "p_value": permutation_p(observed, stack, higher_is_aligned),
            "null_p95": chance_threshold(stack, higher_is_aligned),
            "null_pooled_q95": q}
