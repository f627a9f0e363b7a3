"""Exact tests over model families against scipy's permutation test and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import permutation_test, rankdata, spearmanr

from matteralign.analysis.modeltests import group_difference_test, rank_correlation_test


def spearman_rho(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """Spearman's ρ as the Pearson correlation of ranks (textbook form), along ``axis``."""
    ra, rb = rankdata(a, axis=axis), rankdata(b, axis=axis)
    ra = ra - ra.mean(axis=axis, keepdims=True)
    rb = rb - rb.mean(axis=axis, keepdims=True)
    return (ra * rb).sum(axis=axis) / np.sqrt((ra**2).sum(axis=axis) * (rb**2).sum(axis=axis))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rank_correlation_p_is_scipys_exact_permutation_p(seed: int) -> None:
    # six models (720 orderings): scipy's exact enumeration takes seconds, not minutes
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=6), rng.normal(size=6)
    names = [f"m{i}" for i in range(6)]
    test = rank_correlation_test(dict(zip(names, x, strict=True)),
                                 dict(zip(names, y, strict=True)), {})
    ref = permutation_test((x, y), spearman_rho, vectorized=True,
                           permutation_type="pairings", alternative="two-sided",
                           n_resamples=np.inf)
    assert test.exact and test.statistic == pytest.approx(spearmanr(x, y).statistic)
    assert test.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    assert test.min_p == pytest.approx(2 / math.factorial(6))


@pytest.mark.parametrize("seed", [0, 1])
def test_rank_correlation_p_is_the_share_of_all_orderings_at_least_as_extreme(seed: int) -> None:
    """Seven models: every one of the 5,040 orderings of y enumerated by hand."""
    import itertools

    rng = np.random.default_rng(10 + seed)
    x, y = rng.normal(size=7), rng.normal(size=7)
    names = [f"m{i}" for i in range(7)]
    test = rank_correlation_test(dict(zip(names, x, strict=True)),
                                 dict(zip(names, y, strict=True)), {})
    orders = np.array(list(itertools.permutations(range(7))))
    null = spearman_rho(np.broadcast_to(x, orders.shape), y[orders])
    observed = spearman_rho(x, y)
    assert test.p_value == pytest.approx(np.mean(np.abs(null) >= abs(observed) - 1e-12),
                                         abs=1e-12)
    assert test.min_p == pytest.approx(2 / math.factorial(7))


def test_a_family_is_one_unit_and_four_units_cannot_reach_005() -> None:
    mae = {f"m{i}": 0.01 * i for i in range(8)}
    align = {f"m{i}": 1.0 - 0.1 * i for i in range(8)}
    alone = rank_correlation_test(mae, align, {})
    assert alone.p_value == pytest.approx(2 / math.factorial(8)) and alone.testable(0.05)
    pairs = rank_correlation_test(mae, align, {f"m{i}": f"f{i // 2}" for i in range(8)})
    assert pairs.n_units == 4 and pairs.n_models == 8
    assert pairs.statistic == pytest.approx(-1.0) and pairs.p_value == pytest.approx(2 / 24)
    assert not pairs.testable(0.05)


def test_group_difference_p_is_scipys_exact_permutation_p() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(1.0, size=4), rng.normal(size=5)
    test = group_difference_test({f"a{i}": v for i, v in enumerate(a)},
                                 {f"b{i}": v for i, v in enumerate(b)}, {})
    ref = permutation_test((a, b), lambda u, v: np.mean(u) - np.mean(v),
                           permutation_type="independent", alternative="two-sided",
                           n_resamples=np.inf)
    assert test.statistic == pytest.approx(a.mean() - b.mean())
    assert test.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    assert test.min_p == pytest.approx(2 / math.comb(9, 4))


def test_one_family_against_three_cannot_be_tested_and_split_families_are_refused() -> None:
    test = group_difference_test({"ani-1x": 12.0}, {"a": 4.0, "b": 5.0, "c": 3.0}, {})
    assert test.min_p == pytest.approx(0.5) and not test.testable(0.05)
    with pytest.raises(ValueError, match="both groups"):
        group_difference_test({"m0": 1.0}, {"m1": 2.0}, {"m0": "f", "m1": "f"})
