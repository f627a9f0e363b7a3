"""Convergence: Spearman ρ of error against alignment, its bootstrap, the local-optimum flag."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
from scipy.stats import spearmanr

from matteralign.analysis.convergence import (
    convergence,
    local_optima,
    mean_to_others,
    read_convergence,
    spearman,
    write_convergence,
)
from matteralign.cli import main
from matteralign.io import atomic_h5, set_attrs, strings


def planted(m: int = 7) -> tuple[list[str], np.ndarray, np.ndarray]:
    """MAE rising with index; every model's alignment to the others falling with index."""
    models = [f"m{i}" for i in range(m)]
    mae = np.linspace(0.01, 0.5, m)
    quality = np.linspace(1.0, 0.1, m)
    matrix = np.sqrt(np.outer(quality, quality))
    np.fill_diagonal(matrix, 1.0)
    return models, mae, matrix


def test_spearman_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 5, size=12).astype(float)  # ties
        y = rng.normal(size=12)
        assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert np.isnan(spearman(np.ones(5), np.arange(5.0)))
    assert np.isnan(spearman(np.arange(2.0), np.arange(2.0)))


def test_planted_monotone_data_give_exactly_minus_one() -> None:
    models, mae, matrix = planted()
    result = convergence(models, mae, matrix, n_boot=200)
    assert result.reference == "m0"
    for key in ("reference", "mean"):
        rho, low, high = result.spearman[key]
        assert rho == -1.0 and low == -1.0 and high == -1.0
    assert result.n_models == 7
    assert not result.local_optimum.any()
    # alignment rising with error is the opposite sign
    flipped = convergence(models, mae[::-1].copy(), matrix, reference="m0", n_boot=0)
    assert flipped.spearman["mean"][0] == 1.0


def test_reference_and_mean_alignment_exclude_self_and_nan() -> None:
    models, mae, matrix = planted(4)
    matrix[1, 2] = matrix[2, 1] = np.nan
    mean = mean_to_others(matrix)
    assert mean[1] == pytest.approx(np.mean([matrix[1, 0], matrix[1, 3]]))
    asym = matrix.copy()
    asym[0, 3], asym[3, 0] = 0.2, 0.4  # CKNNA is not symmetric: the pair's mean is used
    result = convergence(models, mae, asym, reference="m0", n_boot=0)
    assert result.alignment_to_reference[3] == pytest.approx(0.3)


def test_controls_are_excluded_from_rho_and_from_being_the_reference() -> None:
    models, mae, matrix = planted()
    models.append("control")
    mae = np.append(mae, 0.001)  # most "accurate", but a control
    matrix = np.pad(matrix, ((0, 1), (0, 1)), constant_values=0.9)  # and strongly aligned
    matrix[-1, -1] = 1.0
    controls = [False] * 7 + [True]
    result = convergence(models, mae, matrix, controls=controls, n_boot=50)
    assert result.reference == "m0"
    assert result.spearman["mean"][0] == pytest.approx(
        spearman(mae[:7], mean_to_others(matrix)[:7]))
    assert result.n_models == 7


def test_local_optimum_fires_on_an_accurate_weakly_aligned_model() -> None:
    models, mae, matrix = planted(10)
    matrix[1, :] = matrix[:, 1] = 0.05  # second-best MAE, least aligned of all
    matrix[1, 1] = 1.0
    result = convergence(models, mae, matrix, n_boot=0)
    assert result.local_optimum.tolist() == [i == 1 for i in range(10)]
    # thirds: n // 3 of the eligible models; the reference is not eligible
    eligible = np.ones(4, bool)
    flags = local_optima(np.array([1.0, 2, 3, 4]), np.array([0.1, 0.9, 0.8, 0.7]), eligible)
    assert flags.tolist() == [True, False, False, False]
    assert not local_optima(np.array([1.0, 2]), np.array([0.1, 0.9]), np.ones(2, bool)).any()


def test_reference_not_in_grid_names_the_config_key() -> None:
    models, mae, matrix = planted()
    with pytest.raises(ValueError, match=r"analysis\.reference: model 'nope'.*m0"):
        convergence(models, mae, matrix, reference="nope")


def test_write_convergence_round_trip(aligned_study, tmp_path) -> None:
    out = tmp_path / "convergence.h5"
    result = write_convergence(aligned_study / "performance.h5", aligned_study / "cknna.h5", out,
                               seed=3)
    from matteralign.plots.study import plot_convergence

    plot_convergence(out, tmp_path / "convergence.png")
    data = read_convergence(out)
    attrs = data["attrs"]
    assert attrs["performance_measure"] == "energy_mae"
    assert attrs["reference"] == "ani-1x" and attrs["metric"] == "cknna"
    assert data["models"] == result.models
    # energies for ani-1x, chgnet, sevennet (trained) + the random-init control (excluded)
    assert attrs["n_models"] == 3
    assert data["control"][data["models"].index("mace-off23-small")] == "random-init"
    assert attrs["spearman_mean"] == pytest.approx(result.spearman["mean"][0])
    assert {"seed", "dataset", "git_commit", "note"} <= set(attrs)
    np.testing.assert_array_equal(data["local_optimum"], result.local_optimum)
    assert (tmp_path / "convergence.png").stat().st_size > 10_000
    again = write_convergence(aligned_study / "performance.h5", aligned_study / "cknna.h5",
                              tmp_path / "again.h5", seed=3)
    np.testing.assert_equal(again.spearman, result.spearman)  # seeded
    assert "besides the reference" in attrs["note"]  # 2 models left: no ρ to reference


def _performance(path, models, energy, probe) -> None:
    with atomic_h5(path) as handle:
        handle.create_dataset("models", data=strings(models))
        handle.create_dataset("control", data=strings([""] * len(models)))
        handle.create_dataset("energy_mae", data=np.asarray(energy, float))
        handle.create_dataset("probe_mae", data=np.asarray(probe, float))
        set_attrs(handle, {"dataset": "toy"})


def test_without_energies_probe_mae_is_used_and_too_few_models_give_nan(aligned_study,
                                                                        tmp_path) -> None:
    models = ["ani-1x", "chgnet-0.3.0", "sevennet-0", "minimol", "minilm-l6-v2"]
    _performance(tmp_path / "p.h5", models, [np.nan] * 5, [0.1, 0.2, 0.3, 0.4, 0.5])
    write_convergence(tmp_path / "p.h5", aligned_study / "cknna.h5", tmp_path / "c.h5")
    attrs = read_convergence(tmp_path / "c.h5")["attrs"]
    assert attrs["performance_measure"] == "probe_mae" and attrs["n_models"] == 5
    assert "not in p.h5" in attrs["note"]  # morgan-fp, mace-off23-small
    _performance(tmp_path / "q.h5", models, [0.1, np.nan, np.nan, np.nan, np.nan],
                 [np.nan] * 5)
    write_convergence(tmp_path / "q.h5", aligned_study / "cknna.h5", tmp_path / "d.h5")
    from matteralign.plots.study import plot_convergence

    plot_convergence(tmp_path / "d.h5", tmp_path / "d.png")
    attrs = read_convergence(tmp_path / "d.h5")["attrs"]
    assert np.isnan(attrs["spearman_reference"]) and np.isnan(attrs["spearman_mean"])
    assert "cannot be tested" in attrs["note"]
    assert (tmp_path / "d.png").exists()


def test_cli_convergence_and_one_line_errors(aligned_study, tmp_path, capsys) -> None:
    args = ["convergence", "--performance", str(aligned_study / "performance.h5"),
            "--metric-file", str(aligned_study / "cknna.h5"), "--out", str(tmp_path / "c.h5"),
            "--figure", str(tmp_path / "c.png")]
    assert main(args) == 0
    with h5py.File(tmp_path / "c.h5") as handle:
        assert handle.attrs["reference"] == "ani-1x"
    proc = subprocess.run([sys.executable, "-m", "matteralign", *args, "--reference", "nope",
                           "--force"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "analysis.reference" in proc.stderr
    assert main([*args[:2], str(tmp_path / "missing.h5"), *args[3:]]) == 2
    assert "missing input file" in capsys.readouterr().err
