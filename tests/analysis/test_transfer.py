"""Probe transfer between models, transfer.h5, and the CLI's one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from matteralign.analysis.ridge import shuffle_rank
from matteralign.analysis.transfer import probe_transfer, read_transfer, write_transfer
from matteralign.cli import main
from tests.analysis.study_files import write_study


def standardised(x):
    return (x - x.mean(0)) / x.std(0)


def test_transfer_to_a_rotated_scaled_copy_is_as_good_as_the_direct_probe():
    rng = np.random.default_rng(0)
    n = 400
    latent = rng.normal(size=(n, 6))
    a = np.column_stack([latent @ rng.normal(size=(6, 10)), 0.1 * rng.normal(size=(n, 3))])
    rotation, _ = np.linalg.qr(rng.normal(size=(13, 13)))
    b = 4.0 * a @ rotation - 2.0
    noise = rng.normal(size=(n, 7))
    y = latent @ rng.normal(size=6) + 0.1 * rng.normal(size=n)
    usable = [np.ones(n, bool)] * 3
    out = probe_transfer([a, b, noise], usable, y, seed=1)
    direct = out["r2_direct"]
    assert np.allclose(np.diag(out["r2"]), direct) and direct[0] > 0.98
    assert out["r2"][0, 1] == pytest.approx(direct[0], abs=0.005)
    assert out["r2"][1, 0] == pytest.approx(direct[1], abs=0.005)
    assert out["r2"][0, 2] < 0.1 and direct[2] < 0.1  # noise carries nothing over
    assert (out["n_train"] == 200).all() and (out["n_test"] == 200).all()


def test_transfer_equals_the_explicit_map_then_probe():
    """Z_B W β with W the multi-output ridge map B -> A, fitted and applied explicitly."""
    rng = np.random.default_rng(3)
    n = 120
    a = rng.normal(size=(n, 5))
    b = np.tanh(a @ rng.normal(size=(5, 9))) + 0.3 * rng.normal(size=(n, 9))
    y = a[:, 0] - 2 * a[:, 1] + 0.2 * rng.normal(size=n)
    out = probe_transfer([a, b], [np.ones(n, bool)] * 2, y, seed=4)
    train = shuffle_rank(n, 4) < n // 2
    za_train, zb_train = standardised(a[train]), standardised(b[train])
    za_test = (a[~train] - a[train].mean(0)) / a[train].std(0)
    zb_test = (b[~train] - b[train].mean(0)) / b[train].std(0)

    def ridge(z, target, alpha):
        zc = z - z.mean(0)
        return np.linalg.solve(zc.T @ zc + alpha * np.eye(z.shape[1]),
                               zc.T @ (target - target.mean(0)))

    beta = ridge(za_train, y[train], out["alpha_probe"][0, 1])
    w = ridge(zb_train, za_train, out["alpha_map"][0, 1])  # [D_B, D_A]
    mapped = za_train.mean(0) + (zb_test - zb_train.mean(0)) @ w
    prediction = y[train].mean() + (mapped - za_train.mean(0)) @ beta
    y_test = y[~train]
    r2 = 1 - ((y_test - prediction) ** 2).sum() / ((y_test - y_test.mean()) ** 2).sum()
    assert out["r2"][0, 1] == pytest.approx(r2, abs=1e-8)
    direct = y[train].mean() + za_test @ ridge(za_train, y[train], out["alpha_probe"][0, 0])
    r2_direct = 1 - ((y_test - direct) ** 2).sum() / ((y_test - y_test.mean()) ** 2).sum()
    assert out["r2_direct"][0] == pytest.approx(r2_direct, abs=1e-8)


def test_write_transfer_round_trip_and_default_property(tmp_path):
    study = write_study(tmp_path, n=200, masked={"composition": [1, 2]})
    out, figure = tmp_path / "transfer.h5", tmp_path / "probe_transfer.png"
    write_transfer(study.structures, study.embeddings, out, figure, seed=0)
    result = read_transfer(out)
    assert result.models == study.models and result.r2.shape == (4, 4)
    assert result.attrs["property"] == "atomization_energy"  # qm9's reference energy
    assert result.attrs["train_fraction"] == 0.5 and result.attrs["n_test"] > 90
    assert result.n_train[0, 2] + result.n_test[0, 2] == 198
    assert {"git_commit", "created", "seed", "dataset"} <= set(result.attrs)
    assert np.array_equal(result.r2_direct, np.diag(result.r2))
    assert figure.read_bytes()[:4] == b"\x89PNG"
    homo = write_transfer(study.structures, study.embeddings, tmp_path / "t2.h5", None,
                          prop="homo")
    assert homo.r2[0, 1] == pytest.approx(homo.r2_direct[0], abs=0.01)
    with pytest.raises(ValueError, match=r"--property.*'atomization_energy', 'homo'"):
        write_transfer(study.structures, study.embeddings, tmp_path / "t3.h5", None,
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
                 "--figure", str(tmp_path / "pr.png"), "--seed", "3"]) == 0
    assert main(["transfer", *common, *emb[:2], "--out", str(tmp_path / "t.h5"),
                 "--figure", str(tmp_path / "t.png"), "--property", "homo"]) == 0
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
