"""GFRE and LFRE: their limits (0, ≈1), asymmetry, invariances, and dense references."""

from __future__ import annotations

import numpy as np
import pytest

from matteralign.metrics import gfre, lfre, pairwise
from matteralign.metrics.reconstruction import (
    RELATIVE_ALPHAS,
    gfre_fit,
    gfre_matrix,
    lfre_fit,
    lfre_matrix,
)


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = train.mean(0)
    scale = np.sqrt(((train - mean) ** 2).sum() / len(train))
    return (train - mean) / scale, (test - mean) / scale


def _ridge(x: np.ndarray, y: np.ndarray, relative: float) -> np.ndarray:
    """Ridge coefficients from the normal equations (dual form when D > n), no intercept."""
    alpha = relative * np.linalg.norm(x, 2) ** 2
    if x.shape[1] <= x.shape[0]:
        return np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ y)
    return x.T @ np.linalg.solve(x @ x.T + alpha * np.eye(x.shape[0]), y)


def _related(n: int, dx: int, dy: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dx)) @ rng.normal(size=(dx, dx)) + 3.0
    y = np.tanh(0.5 * x @ rng.normal(size=(dx, dy))) + 0.2 * rng.normal(size=(n, dy))
    return x, y


def test_a_linear_transform_is_reconstructed() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 10))
    assert gfre(x, x @ rng.normal(size=(10, 10))) < 1e-3
    assert gfre(x, x @ rng.normal(size=(10, 14))) < 1e-3  # wider target, rank 10


def test_independent_noise_is_not_reconstructed() -> None:
    rng = np.random.default_rng(1)
    x, noise = rng.normal(size=(400, 12)), rng.normal(size=(400, 8))
    assert gfre(x, noise) == pytest.approx(1.0, abs=0.1)
    assert lfre(x, noise) == pytest.approx(1.0, abs=0.1)


def test_gfre_is_asymmetric_on_a_planted_subspace() -> None:
    x = np.random.default_rng(2).normal(size=(400, 10))
    assert gfre(x, x[:, :2]) < 1e-3
    # 8 of 10 independent unit-variance columns are missing from the source: ≈ √(8/10)
    assert gfre(x[:, :2], x) == pytest.approx(np.sqrt(0.8), abs=0.05)


@pytest.mark.parametrize("dx", [5, 45])  # primal (D < n_train) and D > n_train
def test_gfre_equals_dense_ridge_on_the_same_folds(dx: int) -> None:
    x, y = _related(60, dx, 3, seed=3)
    fit = gfre_fit(x, y, folds=2, seed=4)
    rank = np.empty(60, dtype=np.int64)
    rank[np.random.default_rng(4).permutation(60)] = np.arange(60)
    np.testing.assert_array_equal(fit.outer, rank % 2)
    inner = (rank // 2) % 2
    squared = 0.0
    for f in range(2):
        train, test = fit.outer != f, fit.outer == f
        x_tr, x_te = _standardise(x[train], x[test])
        y_tr, y_te = _standardise(y[train], y[test])
        halves = inner[train]
        curve = np.zeros(len(RELATIVE_ALPHAS))
        for a, relative in enumerate(RELATIVE_ALPHAS):
            for h in (0, 1):
                w = _ridge(x_tr[halves == h], y_tr[halves == h], relative)
                curve[a] += ((y_tr[halves != h] - x_tr[halves != h] @ w) ** 2).sum()
        np.testing.assert_allclose(fit.cv_error[f], curve, rtol=1e-8, atol=1e-10)
        assert fit.relative_alpha[f] == RELATIVE_ALPHAS[np.argmin(curve)]
        w = _ridge(x_tr, y_tr, fit.relative_alpha[f])
        squared += ((y_te - x_te @ w) ** 2).sum()
    assert fit.value == pytest.approx(np.sqrt(squared / 60), rel=1e-10, abs=1e-12)


def test_lfre_equals_dense_local_ridge_and_leave_one_out() -> None:
    x, y = _related(70, 3, 2, seed=5)
    k = 8
    fit = lfre_fit(x, y, k_local=k, folds=2, seed=6)
    squared = 0.0
    checked = RELATIVE_ALPHAS[::4]
    for f in range(2):
        train, test = fit.outer != f, fit.outer == f
        x_tr, x_te = _standardise(x[train], x[test])
        y_tr, y_te = _standardise(y[train], y[test])
        loo = np.zeros(len(checked))
        for i in range(len(x_te)):
            nb = np.argsort(((x_tr - x_te[i]) ** 2).sum(1), kind="stable")[:k]
            xl, yl = x_tr[nb], y_tr[nb]
            unit = np.linalg.norm(xl - xl.mean(0), 2) ** 2
            for a, relative in enumerate(checked):
                alpha = relative * unit
                for j in range(k):  # refit without neighbour j (re-centred), predict it
                    keep = np.arange(k) != j
                    xc, yc = xl[keep] - xl[keep].mean(0), yl[keep] - yl[keep].mean(0)
                    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(3), xc.T @ yc)
                    guess = yl[keep].mean(0) + (xl[j] - xl[keep].mean(0)) @ w
                    loo[a] += ((yl[j] - guess) ** 2).sum()
            xc, yc = xl - xl.mean(0), yl - yl.mean(0)
            alpha = fit.relative_alpha[f] * unit
            w = np.linalg.solve(xc.T @ xc + alpha * np.eye(3), xc.T @ yc)
            squared += ((y_te[i] - yl.mean(0) - (x_te[i] - xl.mean(0)) @ w) ** 2).sum()
        np.testing.assert_allclose(fit.cv_error[f, ::4], loo, rtol=1e-8)
    assert fit.value == pytest.approx(np.sqrt(squared / 70), rel=1e-10)


def test_lfre_reconstructs_a_smooth_nonlinear_map_that_gfre_does_not() -> None:
    z = np.random.default_rng(7).uniform(-1, 1, size=(400, 1))
    y = np.column_stack([np.sin(3 * z[:, 0]), np.cos(3 * z[:, 0]), z[:, 0] ** 2])
    assert lfre(z, y) < 0.05
    assert gfre(z, y) > 0.3


def test_invariant_to_rotations_and_global_scaling() -> None:
    x, y = _related(200, 6, 4, seed=8)
    rng = np.random.default_rng(9)
    rot_x, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    rot_y, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    x2, y2 = 3.7 * x @ rot_x + 1.0, 0.2 * y @ rot_y - 5.0
    assert gfre(x2, y2) == pytest.approx(gfre(x, y), rel=1e-8)
    assert lfre(x2, y2) == pytest.approx(lfre(x, y), rel=1e-8)


def test_pairwise_matrices_are_the_single_pair_functions() -> None:
    x, y = _related(90, 5, 4, seed=10)
    models = {"x": x, "y": y, "noise": np.random.default_rng(11).normal(size=(90, 3))}
    result = pairwise(models, metrics=["gfre", "lfre"])
    arrays = list(models.values())
    for name, function, matrix in (("gfre", gfre, gfre_matrix), ("lfre", lfre, lfre_matrix)):
        values, names = result[name]
        assert names == list(models)
        np.testing.assert_array_equal(values, matrix(arrays))
        np.testing.assert_array_equal(np.diag(values), 0.0)
        for i, a in enumerate(arrays):
            for j, b in enumerate(arrays):
                if i != j:
                    assert values[i, j] == function(a, b)
        assert values[0, 1] < values[0, 2]  # a related target is better reconstructed


def test_small_samples_use_the_whole_training_part() -> None:
    x, y = _related(30, 4, 3, seed=13)
    assert lfre(x, y, k_local=100) == lfre(x, y, k_local=15)  # 15 training rows per fold
    assert lfre(x, y, k_local=100) != lfre(x, y, k_local=14)
    for n in (4, 5, 7):  # the smallest samples still give finite errors
        assert np.isfinite(gfre(x[:n], y[:n])) and np.isfinite(lfre(x[:n], y[:n]))


def test_bad_input_names_the_problem() -> None:
    x = np.random.default_rng(12).normal(size=(40, 3))
    with pytest.raises(ValueError, match="vary"):
        gfre(x, np.ones((40, 2)))
    with pytest.raises(ValueError, match="N >= 4"):
        gfre(x[:3], x[:3])
    with pytest.raises(ValueError, match="k_local"):
        lfre(x, x, k_local=1)
    with pytest.raises(ValueError, match="rows"):
        gfre(x, x[:30])
    with pytest.raises(ValueError, match="folds"):
        gfre(x, x, folds=1)
