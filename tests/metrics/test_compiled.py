"""The compiled kNN-list kernels, the pure-array fallback and the reused workspaces must all
give the reference numbers — ties included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from matteralign import metrics as M
from matteralign.metrics import _compiled

from . import reference as R
from .conftest import correlated

needs_numba = pytest.mark.skipif(_compiled.topk_rows is None, reason="numba not installed")


@pytest.fixture(params=["compiled", "fallback"])
def kernels(request, monkeypatch) -> str:
    if request.param == "compiled" and _compiled.topk_rows is None:
        pytest.skip("numba not installed")
    if request.param == "fallback":
        for name in ("topk_rows", "mutual_rows", "intersect_rows"):
            monkeypatch.setattr(_compiled, name, None)
    return request.param


@needs_numba
def test_topk_rows_matches_stable_sort_with_ties() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(-2, 3, size=(40, 57)).astype(np.float64)  # many ties
    a[np.arange(40), np.arange(40)] = -np.inf
    for k in (1, 5, 56):
        idx, vals = _compiled.topk_rows(a, k)
        ref = R._topk_stable(a, k)
        ref.sort(axis=1)
        np.testing.assert_array_equal(idx, ref)
        np.testing.assert_array_equal(vals, np.take_along_axis(a, ref, 1))


@needs_numba
def test_row_kernels_match_global_search() -> None:
    rng = np.random.default_rng(4)
    n, k = 30, 6
    ix = np.sort(np.stack([rng.choice(n, k, replace=False) for _ in range(n)]), axis=1)
    iy = np.sort(np.stack([rng.choice(n, k, replace=False) for _ in range(n)]), axis=1)
    kx = (np.arange(n)[:, None] * n + ix).reshape(-1)
    ky = (np.arange(n)[:, None] * n + iy).reshape(-1)
    pos = _compiled.intersect_rows(ix, iy).reshape(-1)
    expected = np.array([np.flatnonzero(ky == key)[0] if key in ky else -1 for key in kx])
    np.testing.assert_array_equal(pos, expected)
    mutual = _compiled.mutual_rows(ix).reshape(-1)
    transposed = (kx % n) * n + kx // n
    np.testing.assert_array_equal(mutual, np.isin(transposed, kx))


small_ints = arrays(
    np.float64, st.tuples(st.integers(6, 20), st.integers(1, 3)), elements=st.integers(-3, 3)
)


@settings(max_examples=30, deadline=None)
@given(x=small_ints, data=st.data())
def test_both_paths_exact_on_tied_integer_data(x: np.ndarray, data) -> None:
    n = x.shape[0]
    y = data.draw(arrays(np.float64, (n, 2), elements=st.integers(-3, 3)))
    k = data.draw(st.integers(1, n - 1))
    results = {}
    for path in ("compiled", "fallback"):
        with pytest.MonkeyPatch.context() as mp:
            if path == "fallback":
                for name in ("topk_rows", "mutual_rows", "intersect_rows"):
                    mp.setattr(_compiled, name, None)
            results[path] = (M.mutual_knn(x, y, k=k), M.cknna(x, y, k=k))
    assert results["compiled"][0] == pytest.approx(R.mutual_knn_ref(x, y, k), abs=1e-12)
    assert results["fallback"][0] == pytest.approx(R.mutual_knn_ref(x, y, k), abs=1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):  # degenerate draws: ref is NaN
        ref = R.cknna_ref(x, y, k) if n >= 4 else None
    for path, (_, c) in results.items():
        if ref is not None and np.isfinite(ref):
            assert c == pytest.approx(ref, rel=1e-9, abs=1e-12), path


def test_kernel_metrics_agree_with_reference(kernels) -> None:
    x, y = correlated(np.random.default_rng(5), 120, 7, 5)
    assert M.cknna(x, y, k=9) == pytest.approx(R.cknna_ref(x, y, 9), rel=1e-9, abs=1e-12)
    assert M.mutual_knn(x, y, k=9) == pytest.approx(R.mutual_knn_ref(x, y, 9), abs=1e-15)
    res = M.pairwise({"x": x, "y": y}, ["cknna", "mutual_knn"], k=9, block_size=17)
    assert res["cknna"][0][0, 1] == pytest.approx(R.cknna_ref(x, y, 9), rel=1e-9, abs=1e-12)
    assert res["cknna"][0][1, 0] == pytest.approx(R.cknna_ref(y, x, 9), rel=1e-9, abs=1e-12)


def test_reused_workspace_gives_fresh_results() -> None:
    """Calls of different sizes share the cached scratch buffers; nothing returned may alias
    them, and a cleared cache gives the same numbers."""
    rng = np.random.default_rng(6)
    big = correlated(rng, 300, 6, 4)
    small = correlated(rng, 90, 5, 3)
    metrics = ["cknna", "mutual_knn", "dcor", "information_imbalance", "intrinsic_dim"]
    M.clear_workspace()
    first = M.pairwise({"a": big[0], "b": big[1]}, metrics, k=7)
    second = M.pairwise({"a": small[0], "b": small[1]}, metrics, k=7)
    again = M.pairwise({"a": big[0], "b": big[1]}, metrics, k=7)
    M.clear_workspace()
    fresh_small = M.pairwise({"a": small[0], "b": small[1]}, metrics, k=7)
    for name in first:
        np.testing.assert_array_equal(first[name][0], again[name][0])
        np.testing.assert_array_equal(second[name][0], fresh_small[name][0])
    assert M.dcor(*small) == pytest.approx(R.dcor_ref(*small), abs=1e-12)


def test_non_finite_rows_are_named() -> None:
    x, y = correlated(np.random.default_rng(7), 30, 4, 3)
    x[[3, 11]] = np.nan
    with pytest.raises(ValueError, match=r"X: 2 row\(s\) contain NaN or inf \(first: \[3, 11\]\)"):
        M.cknna(x, y, k=5)
    with pytest.raises(ValueError, match="bad: 2 row"):
        M.pairwise({"good": y, "bad": x}, ["dcor"])
    with pytest.raises(ValueError, match="NaN or inf"):
        M.twonn_id(x)


@settings(max_examples=25, deadline=None)
@given(x=small_ints, data=st.data())
def test_information_imbalance_paths_exact_with_ties(x: np.ndarray, data) -> None:
    """Three models, so every target ranks two sources' thresholds in one pass: the compiled
    threshold counts, the torch searchsorted histogram and the plain comparisons all give
    the stable-sort reference, ties and duplicate points included."""
    torch = pytest.importorskip("torch")
    n = x.shape[0]
    others = [data.draw(arrays(np.float64, (n, 2), elements=st.integers(-3, 3))) for _ in "ab"]
    emb = {"x": x, "y": others[0], "z": others[1]}
    expected = np.array([[R.ii_ref(emb[s], emb[t]) if s != t else 2.0 / n for t in emb]
                         for s in emb])
    block = data.draw(st.integers(1, n))
    for path in ("compiled", "fallback", "torch"):
        with pytest.MonkeyPatch.context() as mp:
            inputs = emb
            if path == "fallback":
                mp.setattr(_compiled, "threshold_counts", None)
            if path == "torch":
                inputs = {k: torch.from_numpy(v) for k, v in emb.items()}
            got = M.pairwise(inputs, ["ii"], block_size=block)["information_imbalance"][0]
        off = ~np.eye(3, dtype=bool)
        np.testing.assert_allclose(got[off], expected[off], rtol=0, atol=1e-12, err_msg=path)
