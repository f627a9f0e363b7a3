"""Probe transfer between models, its ridge pieces against scikit-learn, transfer.h5, and the
CLI's one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import t as student_t
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import PredefinedSplit, cross_val_score
from sklearn.preprocessing import StandardScaler

from matteralign.analysis.ridge import (
    MAP_ALPHAS,
    block_cv_errors,
    choose_alpha,
    choose_map_alpha,
    map_cv_errors,
    principal_coordinates,
    repeated_cv_interval,
    ridge_basis,
    ridge_predict,
    shuffle_rank,
)
from matteralign.analysis.transfer import probe_transfer, read_transfer, write_transfer
from matteralign.cli import main
from tests.analysis.study_files import write_study


def test_transfer_to_a_rotated_scaled_copy_is_its_own_r2_and_to_noise_zero():
    rng = np.random.default_rng(0)
    n = 200
    latent = rng.normal(size=(n, 6))
    a = np.column_stack([latent @ rng.normal(size=(6, 10)), 0.1 * rng.normal(size=(n, 3))])
    rotation, _ = np.linalg.qr(rng.normal(size=(13, 13)))
    b = 4.0 * a @ rotation - 2.0
    noise = rng.normal(size=(n, 7))
    y = latent @ rng.normal(size=6) + 0.1 * rng.normal(size=n)
    out = probe_transfer([a, b, noise], [np.ones(n, bool)] * 3, y, seed=1, repeats=2,
                         control=["", "", "baseline"])
    direct = out["r2_direct"]
    assert np.allclose(np.diag(out["r2"]), direct) and direct[0] > 0.98
    assert out["r2"][0, 1] == pytest.approx(direct[0], abs=0.005)
    assert out["r2"][1, 0] == pytest.approx(direct[1], abs=0.005)
    assert out["r2_lo"][0, 1] <= out["r2"][0, 1] <= out["r2_hi"][0, 1]
    assert out["r2"][0, 2] < 0.05 and direct[2] < 0.05  # noise carries nothing over
    assert out["r2_from_controls"][0] == out["r2"][0, 2]
    assert np.isnan(out["r2_from_controls"][2])  # the only control is the owner itself
    assert (out["n"] == 200).all() and (out["n_test"] == 200).all()
    assert (out["n_train"] == 160).all()  # 5 folds of 40
    assert out["r2_repeats"].shape == (3, 3, 2)


def test_an_unrelated_model_with_an_equally_good_probe_does_not_transfer():
    """Both spaces encode y in one column; everything else is independent noise.

    B's own probe is as good as A's, and B reconstructs A's y-column, but nothing of the
    other 99 of A's 100 dimensions: the map chosen to reconstruct all of Z_A shrinks to ≈ 0,
    so A's frozen probe finds ≈ nothing in B mapped into A. The old read-out regression
    (alpha chosen to predict A's read-out ≈ y) is B's own probe in disguise and "transfers".
    """
    rng = np.random.default_rng(5)
    n = 250
    y = rng.normal(size=n)
    a = np.column_stack([y + 0.1 * rng.normal(size=n), rng.normal(size=(n, 99))])
    b = np.column_stack([rng.normal(size=(n, 99)), y + 0.1 * rng.normal(size=n)])
    out = probe_transfer([a, b], [np.ones(n, bool)] * 2, y, seed=0, repeats=1)
    own_a, own_b = out["r2_direct"]
    assert own_a > 0.95 and own_b > 0.95 and own_b == pytest.approx(own_a, abs=0.03)
    assert out["r2_mapped_own"][0, 1] == own_b
    assert abs(out["r2"][0, 1]) < 0.1 and abs(out["r2"][1, 0]) < 0.1
    assert out["r2_readout"][0, 1] == pytest.approx(own_b, abs=0.03)
    assert out["r2_readout"][1, 0] == pytest.approx(own_a, abs=0.03)
    assert out["alpha_map"][0, 1] >= 1e4  # the map shrinks to nothing


def standardised_pair(train_x, test_x):
    scaler = StandardScaler().fit(train_x)
    return scaler.transform(train_x), scaler.transform(test_x)


def test_transfer_equals_the_explicit_blind_map_then_frozen_probe():
    """Per fold: W fitted by scikit-learn's multi-output Ridge on the fold's training rows
    (alpha by refitted inner CV of the reconstruction of Z_A), A's probe by Ridge, and the
    pooled held-out R² of ŷ = ȳ + (Z_B W) β. The map's alphas do not change when y does."""
    rng = np.random.default_rng(3)
    n, folds = 100, 5
    a = rng.normal(size=(n, 5))
    b = np.tanh(a @ rng.normal(size=(5, 9))) + 0.3 * rng.normal(size=(n, 9))
    y = a[:, 0] - 2 * a[:, 1] + 0.2 * rng.normal(size=n)
    out = probe_transfer([a, b], [np.ones(n, bool)] * 2, y, seed=4, repeats=1)
    rank = shuffle_rank(n, 4)
    outer, inner = rank % folds, (rank // folds) % folds
    prediction = np.empty(n)
    for k in range(folds):
        train, test = outer != k, outer == k
        za_train, _ = standardised_pair(a[train], a[test])
        zb_train, zb_test = standardised_pair(b[train], b[test])
        errors = []
        for alpha in MAP_ALPHAS:  # refitted inner CV of the reconstruction, blind to y
            total = 0.0
            for block in range(folds):
                fit_rows = inner[train] != block
                x_fit, x_held = standardised_pair(b[train][fit_rows], b[train][~fit_rows])
                model = Ridge(alpha=alpha).fit(x_fit, za_train[fit_rows])
                total += ((model.predict(x_held) - za_train[~fit_rows]) ** 2).sum()
            errors.append(total)
        assert out["alpha_map_folds"][0, 1, 0, k] == MAP_ALPHAS[int(np.argmin(errors))]
        w = Ridge(alpha=out["alpha_map_folds"][0, 1, 0, k]).fit(zb_train, za_train)
        beta = Ridge(alpha=out["alpha_probe_folds"][0, 1, 0, k]).fit(za_train, y[train])
        prediction[test] = beta.predict(w.predict(zb_test))
    r2 = 1 - ((y - prediction) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert out["r2"][0, 1] == pytest.approx(r2, abs=1e-8)
    shuffled = probe_transfer([a, b], [np.ones(n, bool)] * 2, rng.permutation(y), seed=4,
                              repeats=1)
    assert np.array_equal(shuffled["alpha_map_folds"], out["alpha_map_folds"], equal_nan=True)


@pytest.mark.parametrize("width", [6, 40])  # primal (D < n) and dual (D > n) decompositions
def test_ridge_pieces_match_scikit_learn(width):
    rng = np.random.default_rng(width)
    n = 30
    x = rng.normal(size=(n, width)) * rng.uniform(0.5, 3, size=width) + 2.0
    x_new = rng.normal(size=(7, width))
    y = x[:, :3] @ [1.0, -2.0, 0.5] + 0.3 * rng.normal(size=n)
    targets = np.column_stack([y, x[:, 1] ** 2])
    basis = ridge_basis(x)
    scaler = StandardScaler().fit(x)
    z, z_new = scaler.transform(x), scaler.transform(x_new)
    for alpha in (1e-3, 1.0, 50.0):
        expected = Ridge(alpha=alpha).fit(z, targets).predict(z_new)
        assert np.allclose(ridge_predict(basis, targets, x_new, alpha), expected,
                           rtol=1e-9, atol=1e-9)
    # K-fold CV on fixed (once-standardised) features: block_cv_errors and RidgeCV
    blocks = np.arange(n) % 5
    alphas = np.logspace(-3, 3, 7)
    errors = block_cv_errors(basis, y, blocks, alphas)[:, 0]
    split = PredefinedSplit(blocks)
    expected = [-cross_val_score(Ridge(alpha=alpha), z, y, cv=split,
                                 scoring="neg_mean_squared_error").mean() for alpha in alphas]
    assert np.allclose(errors, expected, rtol=1e-9)
    best = RidgeCV(alphas=alphas, cv=split, scoring="neg_mean_squared_error").fit(z, y)
    assert choose_alpha(basis, y, blocks, alphas)[0] == best.alpha_
    # the map's CV refits (and re-standardises) per block, over all outputs at once
    space = principal_coordinates(ridge_basis(targets))
    mine = map_cv_errors(x, space, blocks, alphas)
    brute = []
    for alpha in alphas:
        total = 0.0
        for block in range(5):
            fit_x, held_x = standardised_pair(x[blocks != block], x[blocks == block])
            model = Ridge(alpha=alpha).fit(fit_x, space[blocks != block])
            total += ((model.predict(held_x) - space[blocks == block]) ** 2).sum()
        brute.append(total / n)
    assert np.allclose(mine, brute, rtol=1e-9)
    assert choose_map_alpha(x, space, blocks, alphas) == alphas[int(np.argmin(brute))]
    # principal coordinates keep every squared error of the standardised space
    zt = StandardScaler().fit_transform(targets)
    assert np.allclose(principal_coordinates(ridge_basis(targets)) @
                       principal_coordinates(ridge_basis(targets)).T, zt @ zt.T)


def test_repeated_cv_interval_is_the_corrected_resampled_t():
    scores = np.array([[0.80, 0.85, 0.78, 0.90, 0.82], [0.88, 0.79, 0.84, 0.86, 0.81]])
    lo, hi = repeated_cv_interval(scores, folds=5)
    half = student_t.ppf(0.975, 9) * np.sqrt((1 / 10 + 1 / 4) * scores.var(ddof=1))
    assert (lo, hi) == pytest.approx((scores.mean() - half, scores.mean() + half), rel=1e-12)
    lo2, hi2 = repeated_cv_interval(scores, folds=5, centre=0.5)
    assert (hi2 - lo2) == pytest.approx(hi - lo) and (lo2 + hi2) / 2 == pytest.approx(0.5)
    assert np.isnan(repeated_cv_interval(np.array([[0.5]]), folds=5)[0])


def test_write_transfer_round_trip_intensive_targets_and_default_property(tmp_path):
    study = write_study(tmp_path, n=120, masked={"composition": [1, 2]})
    out, figure = tmp_path / "transfer.h5", tmp_path / "probe_transfer.png"
    from matteralign.plots.probes import plot_transfer

    plot_transfer(write_transfer(study.structures, study.embeddings, out, seed=0, repeats=2),
                  figure)
    result = read_transfer(out)
    assert result.models == study.models and result.r2.shape == (4, 4)
    assert result.attrs["property"] == "atomization_energy"  # qm9's reference energy
    assert result.properties == ["atomization_energy", "atomization_energy_per_atom", "gap"]
    assert result.stacks["r2_all"].shape == (3, 4, 4)
    assert result.stacks["r2_repeats_all"].shape == (3, 4, 4, 2)
    assert np.array_equal(result.stacks["r2_all"][0], result.r2, equal_nan=True)
    assert result.attrs["repeats"] == 2 and result.attrs["folds"] == 5
    assert result.n[0, 2] == 118 and result.n_test[0, 2] == 118 and result.n[0, 1] == 120
    assert {"git_commit", "created", "seed", "dataset"} <= set(result.attrs)
    assert np.array_equal(result.r2_direct, np.diag(result.r2))
    assert np.isnan(np.diag(result.alpha_map)).all()
    assert result.r2_from_controls[0] == max(result.r2[0, 2], result.r2[0, 3])
    assert figure.read_bytes()[:4] == b"\x89PNG"
    homo = write_transfer(study.structures, study.embeddings, tmp_path / "t2.h5",
                          prop="homo", repeats=1)
    assert homo.properties[0] == "homo"
    assert homo.r2[0, 1] == pytest.approx(homo.r2_direct[0], abs=0.01)
    with pytest.raises(ValueError, match=r"--property.*'atomization_energy', 'homo'"):
        write_transfer(study.structures, study.embeddings, tmp_path / "t3.h5",
                       prop="band_gap")


def one_line_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_cli_commands_and_their_one_line_errors(tmp_path, capsys):
    study = write_study(tmp_path, n=40, masked={"composition": list(range(34))})
    emb = [str(p) for p in study.embeddings]
    common = ["--structures", str(study.structures), "--embeddings"]
    assert main(["performance", *common, *emb[:2], "--out", str(tmp_path / "p.h5")]) == 0
    assert main(["probes", *common, *emb[:2], "--out", str(tmp_path / "pr.h5"),
                 "--figure", str(tmp_path / "pr.png"), "--seed", "3", "--repeats", "2"]) == 0
    assert main(["transfer", *common, *emb[:2], "--out", str(tmp_path / "t.h5"),
                 "--figure", str(tmp_path / "t.png"), "--property", "homo",
                 "--repeats", "1"]) == 0
    assert read_transfer(tmp_path / "t.h5").attrs["repeats"] == 1
    capsys.readouterr()
    err = one_line_error(capsys, ["transfer", *common, *emb[:2], "--out", str(tmp_path / "x"),
                                  "--figure", str(tmp_path / "x.png"), "--property", "nope"])
    assert "--property" in err and "homo" in err
    err = one_line_error(capsys, ["probes", *common, *emb, "--out", str(tmp_path / "x"),
                                  "--figure", str(tmp_path / "x.png")])
    assert "'composition'" in err and "only 6" in err and "at least 10" in err
    err = one_line_error(capsys, ["transfer", *common, *emb, "--out", str(tmp_path / "x"),
                                  "--figure", str(tmp_path / "x.png")])
    assert "composition" in err and "at least 10" in err
    err = one_line_error(capsys, ["performance", "--structures", str(tmp_path / "none.h5"),
                                  "--embeddings", *emb, "--out", str(tmp_path / "x")])
    assert "none.h5" in err
    assert not (tmp_path / "x").exists()
