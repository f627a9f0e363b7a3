"""Invariances, identities and hypothesis property tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import ortho_group

from matteralign import metrics as M

from . import reference as R
from .conftest import correlated


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    return correlated(np.random.default_rng(21), 150, 10, 6)


def test_orthogonal_and_isotropic_scaling_invariance(pair) -> None:
    x, y = pair
    q = ortho_group.rvs(10, random_state=1)
    xt = 3.7 * x @ q
    for f in (M.cka, M.cknna, M.mutual_knn, M.dcor):
        assert f(xt, y) == pytest.approx(f(x, y), rel=1e-9, abs=1e-12), f.__name__
    assert M.cka(xt, y, unbiased=True) == pytest.approx(M.cka(x, y, unbiased=True), rel=1e-9)
    assert M.information_imbalance(xt, y) == M.information_imbalance(x, y)
    assert M.information_imbalance(y, xt) == M.information_imbalance(y, x)
    assert M.twonn_id(xt) == pytest.approx(M.twonn_id(x), rel=1e-9)


def test_translation_invariance_of_distance_metrics(pair) -> None:
    x, y = pair
    shifted = x + np.linspace(-40.0, 40.0, x.shape[1])
    assert M.dcor(shifted, y) == pytest.approx(M.dcor(x, y), abs=1e-12)
    assert M.cka(shifted, y) == pytest.approx(M.cka(x, y), abs=1e-12)
    assert M.information_imbalance(shifted, y) == M.information_imbalance(x, y)


def test_identity_gives_one(pair) -> None:
    x, _ = pair
    for f in (M.cka, M.cknna, M.mutual_knn, M.dcor):
        assert f(x, x) == pytest.approx(1.0, abs=1e-12), f.__name__
    assert M.dcor(x, x, unbiased=True) == pytest.approx(1.0, abs=1e-12)
    assert M.information_imbalance(x, x) == pytest.approx(2.0 / x.shape[0], abs=1e-15)


def test_independent_data_near_chance() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(800, 5)), rng.normal(size=(800, 5))
    assert M.information_imbalance(x, y) == pytest.approx(1.0, abs=0.1)
    assert M.mutual_knn(x, y, k=10) < 0.05
    assert abs(M.dcor(x, y, unbiased=True)) < 0.01


def test_tie_rule_lower_index_wins() -> None:
    """Point 0 has neighbours 1 and 2 at the same distance and inner product; with k=1
    the lower index (1) is chosen, also in the II ranking."""
    x = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 5.0], [0.0, -7.0]])
    y = np.array([[0.0], [2.0], [-2.0], [9.0], [-11.0]])
    # inner products of row 3 with rows 1 and 2 tie at 0; row 0 ties everything at 0
    assert M.mutual_knn(x, y, k=1) == pytest.approx(R.mutual_knn_ref(x, y, 1), abs=0)
    # by hand: nn_X = [1, 0, 0, 0, 0]; ranks in Y = [1 (tie 1~2, lower wins), 1, 1, 2, 2]
    assert M.information_imbalance(x, y) == pytest.approx(2 * 7 / 25, abs=1e-15)
    assert M.information_imbalance(x, y) == pytest.approx(R.ii_ref(x, y), abs=1e-15)
    assert M.information_imbalance(y, x) == pytest.approx(R.ii_ref(y, x), abs=1e-15)


small_ints = arrays(
    np.float64,
    st.tuples(st.integers(6, 24), st.integers(1, 4)),
    elements=st.integers(-3, 3).map(float),
)


@settings(max_examples=60, deadline=None)
@given(x=small_ints, data=st.data())
def test_rank_metrics_exact_on_tied_integer_data(x: np.ndarray, data) -> None:
    """Integer coordinates make distances and inner products exact, so ties (and duplicate
    points) are genuine; the engine must reproduce the stable-sort references exactly."""
    n = x.shape[0]
    y = data.draw(
        arrays(
            np.float64, (n, data.draw(st.integers(1, 4))), elements=st.integers(-3, 3).map(float)
        )
    )
    k = data.draw(st.integers(1, n - 1))
    assert M.mutual_knn(x, y, k=k) == pytest.approx(R.mutual_knn_ref(x, y, k), abs=1e-12)
    assert M.information_imbalance(x, y) == pytest.approx(R.ii_ref(x, y), abs=1e-12)
    res = M.pairwise({"x": x, "y": y}, ["mutual_knn", "ii"], k=k, block_size=5)
    assert res["information_imbalance"][0][1, 0] == pytest.approx(R.ii_ref(y, x), abs=1e-12)


finite = st.floats(-100, 100, allow_nan=False, width=64)


@settings(max_examples=40, deadline=None)
@given(
    x=arrays(np.float64, st.tuples(st.integers(8, 30), st.integers(1, 5)), elements=finite),
    seed=st.integers(0, 2**16),
)
def test_ranges_and_symmetry(x: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = np.tanh(x @ rng.normal(size=(x.shape[1], 3))) + rng.normal(size=(x.shape[0], 3))
    c, cr = M.cka(x, y), M.cka(y, x)
    d, dr = M.dcor(x, y), M.dcor(y, x)
    if np.isfinite(c):
        assert -1e-12 <= c <= 1 + 1e-12
        assert c == pytest.approx(cr, rel=1e-9, abs=1e-12)
    assert -1e-12 <= d <= 1 + 1e-12
    assert d == pytest.approx(dr, rel=1e-9, abs=1e-12)
    assert d == pytest.approx(R.dcor_ref(x, y), abs=1e-8)
    m = M.mutual_knn(x, y, k=3)
    assert 0.0 <= m <= 1.0 and m == M.mutual_knn(y, x, k=3)
    ii = M.information_imbalance(x, y)
    assert 0.0 < ii <= 2.0


@settings(max_examples=25, deadline=None)
@given(
    x=arrays(
        np.float64,
        st.tuples(st.integers(8, 25), st.integers(2, 5)),
        elements=st.floats(-10, 10, allow_nan=False).filter(lambda v: abs(v) > 1e-3),
    ),
    k=st.integers(2, 6),
)
def test_cknna_matches_reference_property(x: np.ndarray, k: int) -> None:
    y = np.sin(x[:, ::-1]) + 0.1 * x[:, :1]
    ours, ref = M.cknna(x, y, k=k), R.cknna_ref(x, y, k)
    if np.isfinite(ref):
        assert ours == pytest.approx(ref, rel=1e-6, abs=1e-9)
