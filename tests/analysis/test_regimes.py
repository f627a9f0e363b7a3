"""Regimes: ID/OOD/control labels as declared, per-group summaries, files and figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from matteralign.analysis.regimes import (
    pair_type,
    read_domains,
    read_regimes,
    regimes,
    write_regimes,
)
from matteralign.cli import main
from matteralign.io import MetricFile, read_metric

MODELS = ["ani-1x", "minimol", "chgnet-0.3.0", "minilm-l6-v2", "morgan-fp", "sevennet-0"]


def files(random_init=("False",) * 6, calibrated: bool = True):
    m = len(MODELS)
    align = np.arange(m * m, dtype=float).reshape(m, m) / 100
    extra = {"calibrated": align * 2} if calibrated else {}
    alignment = MetricFile("cknna", MODELS, matrix=align, extra=extra,
                           attrs={"random_init": list(random_init)})
    ids = MetricFile("intrinsic_dim", MODELS[::-1], values=np.arange(m, dtype=float)[::-1] + 1,
                     extra={"ci_low": np.zeros(m), "ci_high": np.full(m, 9.0)})
    ii = MetricFile("information_imbalance", MODELS, matrix=1 - align)
    return alignment, ids, ii


def test_labels_as_declared_and_overrides_apply() -> None:
    result = regimes("molecules", *files())
    assert result.regime == ["ID", "ID", "OOD", "OOD", "control", "OOD"]
    result = regimes("crystals", *files())
    assert result.regime == ["OOD", "OOD", "ID", "OOD", "control", "ID"]
    flags = ("False", "False", "True", "False", "False", "False")  # chgnet random-init
    assert regimes("crystals", *files(flags)).regime[2] == "control"
    result = regimes("molecules", *files(), domains_overrides={"chgnet-0.3.0": ["molecules"]})
    assert result.regime[2] == "ID"
    with pytest.raises(ValueError, match="analysis.domains.chgnet-0.3.0"):
        regimes("molecules", *files(), domains_overrides={"chgnet-0.3.0": ["gas"]})
    with pytest.raises(ValueError, match="unknown dataset kind"):
        regimes("liquids", *files())


def test_summary_averages_within_each_group() -> None:
    alignment, ids, ii = files()
    result = regimes("molecules", alignment, ids, ii)
    # ID = {ani-1x (0), minimol (1)}; OOD = {2, 3, 5}; control = {4}
    cal = alignment.extra["calibrated"]
    assert result.alignment == "calibrated"
    assert result.summary["ID"]["mean_calibrated_alignment"] == pytest.approx(
        (cal[0, 1] + cal[1, 0]) / 2)
    ood = [2, 3, 5]
    pairs = [(i, j) for i in ood for j in ood if i != j]
    assert result.summary["OOD"]["mean_calibrated_alignment"] == pytest.approx(
        np.mean([cal[i, j] for i, j in pairs]))
    assert result.summary["OOD"]["mean_information_imbalance"] == pytest.approx(
        np.mean([ii.matrix[i, j] for i, j in pairs]))
    # intrinsic dims are matched by model name (the ID file lists them in another order)
    np.testing.assert_array_equal(result.intrinsic_dim, np.arange(6.0) + 1)
    assert result.summary["OOD"]["mean_intrinsic_dim"] == pytest.approx(np.mean([3, 4, 6]))
    assert result.summary["control"]["n_models"] == 1
    assert result.summary["control"]["mean_calibrated_alignment"] is None  # no pair
    assert result.pairs["ID-OOD"]["n_pairs"] == 6 and result.pairs["control"]["n_pairs"] == 5
    raw = regimes("molecules", *files(calibrated=False))
    assert raw.alignment == "raw"
    assert raw.summary["ID"]["mean_calibrated_alignment"] == pytest.approx(
        (alignment.matrix[0, 1] + alignment.matrix[1, 0]) / 2)


def test_pair_types() -> None:
    assert pair_type("OOD", "ID") == "ID-OOD" == pair_type("ID", "OOD")
    assert pair_type("ID", "control") == "control"
    assert pair_type("OOD", "OOD") == "OOD-OOD"


def test_read_domains() -> None:
    assert read_domains('{"minimol": ["crystals"]}') == {"minimol": ["crystals"]}
    assert read_domains(None) is None
    with pytest.raises(ValueError, match="analysis.domains"):
        read_domains("{not json")
    with pytest.raises(ValueError, match="analysis.domains"):
        read_domains('{"minimol": "crystals"}')


def test_write_regimes_round_trip_and_figures(aligned_study, tmp_path) -> None:
    out = tmp_path / "regimes.h5"
    root = aligned_study
    result = write_regimes("molecules", root / "intrinsic_dim.h5",
                           root / "information_imbalance.h5", root / "cknna.h5", out)
    from matteralign.analysis.regimes import modalities
    from matteralign.plots.study import plot_ii_plane, plot_intrinsic_dim

    plot_intrinsic_dim(out, tmp_path / "id.png",
                       modalities=modalities(read_metric(root / "cknna.h5")))
    plot_ii_plane(out, root / "information_imbalance.h5", tmp_path / "ii.png")
    data = read_regimes(out)
    assert data["models"] == read_metric(aligned_study / "cknna.h5").models
    labels = dict(zip(data["models"], data["regime"], strict=True))
    assert labels == {"ani-1x": "ID", "chgnet-0.3.0": "OOD", "sevennet-0": "OOD",
                      "minimol": "ID", "minilm-l6-v2": "OOD", "morgan-fp": "control",
                      "mace-off23-small": "control"}
    dims = read_metric(aligned_study / "intrinsic_dim.h5")
    np.testing.assert_array_equal(data["intrinsic_dim"], dims.values)
    np.testing.assert_array_equal(data["intrinsic_dim_ci_low"], dims.extra["ci_low"])
    assert data["summary"] == json.loads(json.dumps(result.summary))
    assert set(data["summary"]) == {"ID", "OOD", "control"}
    assert data["attrs"]["alignment"] == "calibrated"
    assert {"seed", "dataset", "git_commit"} <= set(data["attrs"])
    for png in ("id.png", "ii.png"):
        assert (tmp_path / png).stat().st_size > 10_000


def test_cli_regimes(aligned_study, tmp_path, capsys) -> None:
    root = aligned_study
    args = ["regimes", "--dataset-kind", "molecules", "--intrinsic-dim",
            str(root / "intrinsic_dim.h5"), "--ii", str(root / "information_imbalance.h5"),
            "--metric-file", str(root / "cknna.h5"), "--out", str(tmp_path / "r.h5"),
            "--figure-id", str(tmp_path / "a.png"), "--figure-ii", str(tmp_path / "b.png"),
            "--domains", '{"chgnet-0.3.0": ["molecules"]}']
    assert main(args) == 0
    data = read_regimes(tmp_path / "r.h5")
    assert data["regime"][data["models"].index("chgnet-0.3.0")] == "ID"
    bad = [*args, "--force"]  # over the outputs just written
    bad[2] = "liquids"
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "unknown dataset kind 'liquids'" in err and err.count("\n") == 1
