"""Tests over models, not over structures: the unit is a model family, the p-value exact.

Checkpoints of one family (two CHGNet releases, ANI-1x's ensemble members) are not independent
models, so each family enters as one point: the mean of its members. With n families an exact
permutation test enumerates every relabelling (n! orderings for a rank correlation, C(n, k)
splits for a two-group difference; random relabellings beyond ``MAX_EXACT`` of them), and its
smallest attainable p-value is stated beside the p-value: where that floor is above the level,
no outcome could be significant and the question cannot be tested with these models.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

#: relabellings enumerated exactly up to this many; beyond it this many random ones
MAX_EXACT = 40_320  # 8!
RANDOM_RELABELLINGS = 10_000


@dataclass(frozen=True)
class ModelTest:
    """An exact test over ``n_units`` independent units (families) of ``n_models`` models."""

    statistic: float
    p_value: float  # two-sided
    min_p: float  # the smallest p-value any outcome could give with these units
    n_units: int
    n_models: int
    exact: bool  # every relabelling enumerated (else RANDOM_RELABELLINGS random ones)
    units: tuple[str, ...]

    def testable(self, alpha: float) -> bool:
        return np.isfinite(self.min_p) and self.min_p <= alpha


def family_means(values: Mapping[str, Sequence[float]],
                 family: Mapping[str, str]) -> dict[str, np.ndarray]:
    """model -> values becomes family -> mean of its models' values (one unit per family)."""
    groups: dict[str, list[np.ndarray]] = {}
    for model, vals in values.items():
        groups.setdefault(family.get(model) or model, []).append(np.asarray(vals, float))
    return {f: np.mean(np.stack(v), axis=0) for f, v in groups.items()}


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    return float((rx * ry).sum() / denom) if denom > 0 else math.nan


def _orderings(n: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    if math.factorial(n) <= MAX_EXACT:
        return np.array(list(itertools.permutations(range(n)))), True
    return np.stack([rng.permutation(n) for _ in range(RANDOM_RELABELLINGS)]), False


def rank_correlation_test(x: Mapping[str, float], y: Mapping[str, float],
                          family: Mapping[str, str], seed: int = 0) -> ModelTest:
    """Spearman ρ between x and y over families (each the mean of its models), with the exact
    two-sided permutation p-value: the share of orderings of y with |ρ| ≥ |ρ observed|."""
    models = [m for m in x if m in y and np.isfinite(x[m]) and np.isfinite(y[m])]
    units = family_means({m: [x[m], y[m]] for m in models}, family)
    names = tuple(sorted(units))
    n = len(names)
    if n < 3:
        return ModelTest(math.nan, math.nan, math.nan, n, len(models), True, names)
    xs = np.array([units[u][0] for u in names])
    ys = np.array([units[u][1] for u in names])
    rho = _spearman(xs, ys)
    orders, exact = _orderings(n, np.random.default_rng(seed))
    rx, ry = rankdata(xs), rankdata(ys)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    null = (ry[orders] @ rx) / denom if denom > 0 else np.full(len(orders), np.nan)
    tol = 1e-12
    p = float(np.mean(np.abs(null) >= abs(rho) - tol)) if np.isfinite(rho) else math.nan
    if not exact:
        p = (1.0 + np.sum(np.abs(null) >= abs(rho) - tol)) / (1.0 + len(null))
    # the floor: a perfect ordering (and its reverse) of distinct values
    min_p = 2.0 / math.factorial(n) if exact else 1.0 / (1.0 + len(null))
    return ModelTest(rho, p, min_p, n, len(models), exact, names)


def group_difference_test(first: Mapping[str, float], second: Mapping[str, float],
                          family: Mapping[str, str], seed: int = 0) -> ModelTest:
    """mean(first) − mean(second) over families, with the exact two-sided permutation p-value
    (twice the smaller tail) over every split of the families into groups of the same
    sizes. A family with models in both groups is refused: its members are not independent
    of each other."""
    fa = family_means({m: [v] for m, v in first.items() if np.isfinite(v)}, family)
    fb = family_means({m: [v] for m, v in second.items() if np.isfinite(v)}, family)
    shared = set(fa) & set(fb)
    if shared:
        raise ValueError(f"families {sorted(shared)} have models in both groups")
    names = tuple(sorted(fa)) + tuple(sorted(fb))
    values = np.array([fa[u][0] for u in sorted(fa)] + [fb[u][0] for u in sorted(fb)])
    n, k = len(values), len(fa)
    n_models = sum(np.isfinite(v) for v in first.values()) + sum(
        np.isfinite(v) for v in second.values())
    if k == 0 or k == n:
        return ModelTest(math.nan, math.nan, math.nan, n, n_models, True, names)
    observed = float(values[:k].mean() - values[k:].mean())
    total = math.comb(n, k)
    rng = np.random.default_rng(seed)
    if total <= MAX_EXACT:
        splits = [np.array(c) for c in itertools.combinations(range(n), k)]
        exact = True
    else:
        splits = [rng.choice(n, size=k, replace=False) for _ in range(RANDOM_RELABELLINGS)]
        exact = False
    null = []
    for chosen in splits:
        mask = np.zeros(n, dtype=bool)
        mask[chosen] = True
        null.append(values[mask].mean() - values[~mask].mean())
    # two-sided: twice the smaller tail (scipy's convention; with unequal group sizes the
    # mirror of a split is not a split, so |difference| >= |observed| would halve the floor)
    null_arr = np.array(null)
    upper = np.sum(null_arr >= observed - 1e-12)
    lower = np.sum(null_arr <= observed + 1e-12)
    if exact:
        p, min_p = min(1.0, 2.0 * min(upper, lower) / total), min(1.0, 2.0 / total)
    else:
        count = len(null)
        p = min(1.0, 2.0 * (1 + min(upper, lower)) / (1 + count))
        min_p = 2.0 / (1 + count)
    return ModelTest(observed, p, min_p, n, n_models, exact, names)


def describe(test: ModelTest, what: str) -> str:
    """"ρ = -0.8 over 4 families (5 models), exact p = 0.33 (smallest attainable 0.083)"."""
    if not np.isfinite(test.statistic):
        return f"{what}: too few families ({test.n_units}) for a test"
    kind = "exact" if test.exact else f"{RANDOM_RELABELLINGS} random relabellings,"
    return (f"{what} = {test.statistic:.3g} over {test.n_units} families ({test.n_models} "
            f"models: {', '.join(test.units)}), {kind} p = {test.p_value:.3g} (smallest "
            f"attainable {test.min_p:.3g})")


def paired_difference_test(differences: Mapping[str, float], seed: int = 0) -> ModelTest:
    """The mean of per-pair differences (one per independently trained pair of models), with
    the exact two-sided sign-flip p-value: under the null each difference is as likely
    negative as positive, so every one of the 2^n sign patterns is equally likely; p = the
    share with |mean| ≥ |observed mean|, floor 2/2^n."""
    names = tuple(sorted(u for u, v in differences.items() if np.isfinite(v)))
    values = np.array([differences[u] for u in names], dtype=np.float64)
    n = len(values)
    if n < 1:
        return ModelTest(math.nan, math.nan, math.nan, 0, 0, True, names)
    observed = float(values.mean())
    exact = 2**n <= MAX_EXACT
    if exact:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(RANDOM_RELABELLINGS, n))
    null = signs @ values / n
    hits = np.sum(np.abs(null) >= abs(observed) - 1e-12)
    if exact:
        p, min_p = float(hits / len(null)), 2.0 / len(null)
    else:
        p, min_p = (1.0 + hits) / (1.0 + len(null)), 1.0 / (1.0 + len(null))
    return ModelTest(observed, float(p), min_p, n, 2 * n, exact, names)
