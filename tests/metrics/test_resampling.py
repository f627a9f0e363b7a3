"""Half-samples over rows or over groups of rows (the atoms of one structure)."""

from __future__ import annotations

import numpy as np
import pytest

from matteralign.metrics import pairwise
from matteralign.metrics.resampling import half_samples


def test_one_group_per_row_draws_the_ungrouped_half_samples() -> None:
    plain = half_samples(np.random.default_rng(4), 50, 6)
    grouped = half_samples(np.random.default_rng(4), 50, 6, groups=np.arange(50))
    for a, b in zip(plain, grouped, strict=True):
        np.testing.assert_array_equal(a, b)


def test_grouped_half_samples_keep_whole_groups() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 8, size=30)  # 30 structures of 1..7 atoms
    groups = np.repeat([f"s{i}" for i in range(30)], sizes)
    for subset in half_samples(rng, len(groups), 10, groups=groups):
        drawn = set(groups[subset])
        assert len(drawn) == 15
        # every atom of a drawn structure, and none of the others
        np.testing.assert_array_equal(subset, np.flatnonzero(np.isin(groups, list(drawn))))


def test_pairwise_intervals_follow_the_groups() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 4))
    emb = {"a": x, "b": x @ rng.normal(size=(4, 6)) + 0.5 * rng.normal(size=(90, 6))}
    plain = pairwise(emb, ["cka"], bootstrap=8, seed=2)
    same = pairwise(emb, ["cka"], bootstrap=8, seed=2, groups=np.arange(90))
    np.testing.assert_array_equal(plain["cka/ci_low"][0], same["cka/ci_low"][0])
    grouped = pairwise(emb, ["cka"], bootstrap=8, seed=2, groups=np.arange(90) // 3)
    np.testing.assert_array_equal(plain["cka"][0], grouped["cka"][0])  # values: all rows
    assert not np.array_equal(plain["cka/ci_low"][0], grouped["cka/ci_low"][0])


def test_bad_groups_name_the_problem() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="one label per row"):
        half_samples(rng, 10, 2, groups=np.arange(9))
    with pytest.raises(ValueError, match="at least 2 groups"):
        half_samples(rng, 10, 2, groups=np.zeros(10))
