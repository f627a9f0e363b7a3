"""Compositional energy correction, the ridge solver and the nested-CV probe, performance.h5."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from matteralign.analysis.performance import (
    compositional_fit,
    energy_mae,
    read_performance,
    ridge_probe,
    write_performance,
)
from matteralign.analysis.ridge import (
    DEFAULT_ALPHAS,
    block_cv_errors,
    ridge_basis,
    ridge_predict,
    shuffle_rank,
)
from tests.analysis.study_files import OFFSETS, element_counts, write_study


def reference_ridge(x_train, y_train, x_new, alpha):
    """Ridge with intercept on train-standardised features: scikit-learn if installed, else
    the dense normal equations (ZᵀZ + αI) β = Zᵀ(y − ȳ)."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    z, z_new = (x_train - mean) / std, (x_new - mean) / std
    try:
        from sklearn.linear_model import Ridge
    except ImportError:
        beta, intercept = normal_equations(z, y_train, alpha)
        return intercept + z_new @ beta
    return Ridge(alpha=alpha).fit(z, y_train).predict(z_new)


def normal_equations(z, y, alpha):
    """Textbook ridge with intercept: (ZcᵀZc + αI) β = Zcᵀ yc, or its dual
    β = Zcᵀ (ZcZcᵀ + αI)⁻¹ yc when there are more features than rows."""
    zc, yc = z - z.mean(axis=0), y - y.mean()
    n, d = zc.shape
    if d <= n:
        beta = np.linalg.solve(zc.T @ zc + alpha * np.eye(d), zc.T @ yc)
    else:
        beta = zc.T @ np.linalg.solve(zc @ zc.T + alpha * np.eye(n), yc)
    return beta, y.mean() - z.mean(axis=0) @ beta


# --- compositional correction ---------------------------------------------------------------


def test_compositional_fit_recovers_planted_offsets():
    rng = np.random.default_rng(0)
    counts = element_counts(rng, 120)
    train = np.arange(120) % 2 == 0
    y = counts @ OFFSETS
    assert np.allclose(compositional_fit(counts, y, train), OFFSETS, rtol=0, atol=1e-10)


def test_energy_mae_is_zero_when_prediction_is_reference_plus_offsets():
    rng = np.random.default_rng(1)
    counts = element_counts(rng, 200)
    ref = rng.normal(size=200) * 5 - counts.sum(axis=1)
    error = energy_mae(ref + counts @ OFFSETS, ref, counts, seed=3)
    assert error.mae < 1e-9 and error.mae_per_atom < 1e-9
    assert error.n == 100 and error.n_calibration == 100 and error.n_excluded == 0


def test_energy_mae_matches_dense_least_squares_and_excludes_masked_rows():
    rng = np.random.default_rng(2)
    counts = element_counts(rng, 150)
    ref = rng.normal(size=150)
    pred = ref + counts @ OFFSETS + rng.normal(scale=0.3, size=150)
    pred[[3, 7, 11]] = np.nan  # masked by the model
    error = energy_mae(pred, ref, counts, seed=5, calibration_fraction=0.4)
    usable = np.isfinite(pred)
    calibrating = shuffle_rank(150, 5) < 60
    fit, held = usable & calibrating, usable & ~calibrating
    c, r = counts[fit], (pred - ref)[fit]
    offsets = np.linalg.solve(c.T @ c, c.T @ r)  # textbook normal equations
    corrected = np.abs((pred - ref - counts @ offsets)[held])
    assert error.mae == pytest.approx(corrected.mean(), abs=1e-10)
    assert error.mae_per_atom == pytest.approx((corrected / counts[held].sum(1)).mean(), abs=1e-10)
    assert error.n_excluded == 3 and error.n == held.sum() and error.n_calibration == fit.sum()
    assert energy_mae(pred, ref, counts, seed=5, calibration_fraction=0.4) == error


@given(st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=4), st.integers(0, 2**16))
def test_energy_mae_is_blind_to_per_element_offsets(offsets, seed):
    rng = np.random.default_rng(seed)
    counts = element_counts(rng, 60)
    ref = rng.normal(size=60)
    pred = ref + rng.normal(scale=0.1, size=60)
    base = energy_mae(pred, ref, counts, seed=seed)
    shifted = energy_mae(pred + counts @ np.array(offsets), ref, counts, seed=seed)
    assert shifted.mae == pytest.approx(base.mae, abs=1e-7)


def test_energy_mae_refuses_a_bad_fraction_and_reports_too_few():
    counts = np.ones((10, 1))
    with pytest.raises(ValueError, match="calibration_fraction"):
        energy_mae(np.zeros(10), np.zeros(10), counts, seed=0, calibration_fraction=1.0)
    assert math.isnan(energy_mae(np.full(10, np.nan), np.zeros(10), counts, seed=0).mae)


# --- ridge and the probe -------------------------------------------------------------------


@pytest.mark.parametrize(("n", "d"), [(80, 6), (40, 120)])
@pytest.mark.parametrize("alpha", [1e-4, 1.0, 300.0])
def test_ridge_matches_independent_reference(n, d, alpha):
    rng = np.random.default_rng(n + d)
    x = rng.normal(size=(n, d)) * rng.uniform(0.1, 20, size=d) + rng.normal(size=d)
    y = x[:, :3] @ [1.0, -2.0, 0.5] + rng.normal(size=n)
    x_new = rng.normal(size=(9, d)) * 5
    ours = ridge_predict(ridge_basis(x), y, x_new, alpha)
    assert np.allclose(ours, reference_ridge(x, y, x_new, alpha), rtol=0, atol=1e-8)
    z_new = (x_new - x.mean(0)) / x.std(0)
    beta, intercept = normal_equations((x - x.mean(0)) / x.std(0), y, alpha)
    assert np.allclose(ours, intercept + z_new @ beta, rtol=0, atol=1e-8)


@pytest.mark.parametrize(("n", "d"), [(50, 7), (40, 90)])
def test_block_cv_errors_equal_refitting_every_fold(n, d):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(n, d))
    y = x[:, :5] @ rng.normal(size=5) + rng.normal(size=n)
    blocks = np.arange(n) % 5
    basis = ridge_basis(x)
    z = basis.standardise(x)  # the CV keeps the standardisation of all rows
    alphas = np.array([1e-5, 1e-3, 1.0, 50.0])
    errors = block_cv_errors(basis, y, blocks, alphas)[:, 0]
    for a, alpha in enumerate(alphas):
        squared = 0.0
        for k in range(5):
            held = blocks == k
            beta, intercept = normal_equations(z[~held], y[~held], alpha)
            squared += ((intercept + z[held] @ beta - y[held]) ** 2).sum()
        assert errors[a] == pytest.approx(squared / n, rel=1e-8)


def test_ridge_probe_equals_brute_force_nested_cv():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(60, 8))
    y = x @ rng.normal(size=8) + rng.normal(scale=2.0, size=60)
    alphas = np.array([1e-2, 1.0, 10.0, 100.0])
    result = ridge_probe(x, y, seed=2, folds=4, alphas=alphas)
    rank = shuffle_rank(60, 2)
    outer, inner = rank % 4, (rank // 4) % 4
    expected = np.empty(60)
    for k in range(4):
        test = outer == k
        xt, yt, it = x[~test], y[~test], inner[~test]
        z = (xt - xt.mean(0)) / xt.std(0)
        cv = []
        for alpha in alphas:
            err = 0.0
            for j in range(4):
                held = it == j
                beta, intercept = normal_equations(z[~held], yt[~held], alpha)
                err += ((intercept + z[held] @ beta - yt[held]) ** 2).sum()
            cv.append(err)
        alpha = alphas[len(alphas) - 1 - int(np.argmin(cv[::-1]))]
        assert result.alpha_per_fold[k] == alpha
        expected[test] = reference_ridge(xt, yt, x[test], alpha)
    assert np.allclose(result.predictions, expected, rtol=0, atol=1e-8)
    assert result.mae == pytest.approx(np.abs(expected - y).mean(), abs=1e-10)
    r2 = 1 - ((y - expected) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert result.r2 == pytest.approx(r2, abs=1e-10) and result.n == 60


def test_probe_of_planted_linear_target_and_of_noise():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(500, 20))
    planted = x @ rng.normal(size=20) + 0.01 * rng.normal(size=500)
    assert ridge_probe(x, planted, seed=0).r2 > 0.99
    noise = ridge_probe(x, rng.normal(size=500), seed=0)
    assert abs(noise.r2) <= 0.05
    wide = ridge_probe(rng.normal(size=(60, 300)) @ np.diag(np.linspace(1, 2, 300)),
                       rng.normal(size=60), seed=0)  # D > N runs through the dual form
    assert np.isfinite(wide.r2) and set(wide.alpha_per_fold) <= set(DEFAULT_ALPHAS)


def test_ridge_probe_refuses_bad_input():
    with pytest.raises(ValueError, match="at least 10"):
        ridge_probe(np.zeros((8, 2)), np.zeros(8), seed=0)
    with pytest.raises(ValueError, match="NaN"):
        ridge_probe(np.full((20, 2), np.nan), np.zeros(20), seed=0)


# --- performance.h5 ---------------------------------------------------------------------------


def test_write_performance_round_trip(tmp_path):
    study = write_study(tmp_path, n=200, masked={"chgnet-0.3.0": [0, 1, 2, 3]})
    written = write_performance(study.structures, study.embeddings, tmp_path / "p.h5", seed=1)
    result = read_performance(tmp_path / "p.h5")
    assert result.models == study.models
    assert result.control == ["", "", "baseline", "random-init"]
    assert result.energy_mae[0] < 1e-9 and np.isnan(result.energy_mae[1:]).all()
    assert result.energy_n_excluded[0] == 4 and result.energy_n[0] + 4 <= 200
    assert result.probe_n.tolist() == [196, 200, 200, 200]
    assert np.allclose(result.probe_r2, written.probe_r2, equal_nan=True)
    attrs = result.attrs
    assert attrs["target"] == "atomization_energy" and attrs["target_units"] == "eV"
    assert attrs["seed"] == 1 and attrs["folds"] == 5 and attrs["dataset"] == "qm9"
    assert attrs["calibration_fraction"] == 0.5 and "predicts no energy" in attrs["note"]
    assert {"git_commit", "created", "packages", "python"} <= set(attrs)
    again = write_performance(study.structures, study.embeddings, tmp_path / "q.h5", seed=1)
    assert np.array_equal(again.probe_mae, written.probe_mae)


def test_dataset_without_reference_energy_gives_nan_columns(tmp_path):
    study = write_study(tmp_path, n=60, dataset="coremof")
    result = write_performance(study.structures, study.embeddings, tmp_path / "p.h5")
    assert np.isnan(result.energy_mae).all() and np.isnan(result.probe_r2).all()
    assert result.attrs["target"] == "" and "no reference energy" in result.attrs["note"]


def test_too_few_embedded_structures_names_the_model(tmp_path):
    study = write_study(tmp_path, n=30, masked={"composition": list(range(25))})
    with pytest.raises(ValueError, match=r"'composition' embedded only 5 of 30.*at least 10"):
        write_performance(study.structures, study.embeddings, tmp_path / "p.h5")
