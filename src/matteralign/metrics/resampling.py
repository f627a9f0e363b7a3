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
    centred on the full-sample value); ``boot_std``: the half-sample estimates' spread."""
    stack = np.stack(samples)
    dev = stack - np.nanmean(stack, axis=0)[None]
    lo, hi = 50.0 * (1.0 - ci), 50.0 * (1.0 + ci)
    std = (np.nanstd(stack, axis=0, ddof=1) if len(samples) > 1
           else np.full_like(observed, np.nan))
    return {"ci_low": observed + np.nanpercentile(dev, lo, axis=0),
            "ci_high": observed + np.nanpercentile(dev, hi, axis=0),
            "boot_std": std}


def null_summary(nulls: list[np.ndarray], observed: np.ndarray,
                 higher_is_aligned: bool) -> dict[str, np.ndarray]:
    """Mean, spread, one-sided p-value (1 + #as-aligned)/(1 + P) and the chance threshold
    ``null_p95`` (the null's 95th percentile; its 5th where lower = more aligned)."""
    stack = np.stack(nulls)
    if higher_is_aligned:
        as_aligned = (stack >= observed[None]).sum(0)
        threshold = np.percentile(stack, 95.0, axis=0)
    else:
        as_aligned = (stack <= observed[None]).sum(0)
        threshold = np.percentile(stack, 5.0, axis=0)
    mean = stack.mean(0)
    std = stack.std(0, ddof=1) if len(nulls) > 1 else np.full_like(mean, np.nan)
    return {"null_mean": mean, "null_std": std,
            "p_value": (1.0 + as_aligned) / (1.0 + len(nulls)), "null_p95": threshold}
