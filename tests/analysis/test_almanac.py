"""The export for the paper authors' viewer (Garden-AI/almanac at 73832a5), read back as
their code reads it: ``load_cknna_distance_matrix`` and ``load_metadata`` of
``almanac_embeddings/export_layouts.py`` (5eab3fb) for ``_data/``, and the checks
``src/components/SimilarityTree.astro`` relies on for ``tree-data.json``. The two readers
below follow that code's logic (pandas frame built from literal-eval'd tuple keys, distance
1 − similarity, models with a missing pair dropped; matrix indexed by point order)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from matteralign.analysis.almanac import export_almanac
from matteralign.cli import main
from matteralign.io import read_metric


def load_cknna_distance_matrix(path: Path, k: str = "25") -> pd.DataFrame:
    """export_layouts.py's reader: tuple-repr keys, {"<k>": similarity}, 1 − similarity."""
    data = json.loads(path.read_text())
    pairs, models = [], set()
    for key, value in data.items():
        a, b = ast.literal_eval(key)
        models.update((a, b))
        if k in value:
            pairs.append((a, b, 1.0 - float(value[k])))
    idx = sorted(models)
    frame = pd.DataFrame(np.nan, index=idx, columns=idx, dtype=float)
    for m in idx:
        frame.loc[m, m] = 0.0
    for a, b, d in pairs:
        frame.loc[a, b] = d
        frame.loc[b, a] = d
    return frame.dropna(axis=0, how="any").dropna(axis=1, how="any")


def load_metadata(path: Path) -> dict[str, dict]:
    meta = json.loads(path.read_text())
    return {v["model_name"]: {"label": k, **v} for k, v in meta.items() if "model_name" in v}


def read_tree_data(path: Path) -> dict[str, dict]:
    """What SimilarityTree.astro takes for granted: n points, an n × n symmetric matrix with
    zero diagonal in point order, unique labels, the eight keys of every point."""
    keys = {"modelName", "label", "family", "corpus", "sizeM", "numParams", "slug",
            "trainedOn"}
    out = {}
    for ds in json.loads(path.read_text())["datasets"]:
        m = np.array(ds["matrix"], dtype=float)
        assert ds["n"] == len(ds["points"]) == m.shape[0] == m.shape[1]
        assert np.allclose(m, m.T) and np.all(np.diag(m) == 0) and np.all(m >= 0)
        labels = [p["label"] for p in ds["points"]]
        assert len(set(labels)) == len(labels) and ds["labels"] == labels
        assert all(set(p) == keys for p in ds["points"])
        out[ds["id"]] = {"models": [p["modelName"] for p in ds["points"]], "matrix": m,
                         "metric": ds["metric"]}
    return out


def test_export_reads_back_through_the_viewers_logic(aligned_study, tmp_path, capsys):
    results = tmp_path / "results"
    (results / "qm9").mkdir(parents=True)
    (results / "qm9" / "cknna.h5").write_bytes((aligned_study / "cknna.h5").read_bytes())
    metric = read_metric(results / "qm9" / "cknna.h5")
    out = tmp_path / "almanac"
    assert main(["export-almanac", "--results", str(results), "--out", str(out)]) == 0
    assert "cknnas.json" in capsys.readouterr().out
    k = str(int(metric.attrs["k"]))
    frame = load_cknna_distance_matrix(out / "_data" / "QM9" / "cknnas.json", k=k)
    assert sorted(frame.index) == sorted(metric.models)  # every model, every pair
    sym = (metric.matrix + metric.matrix.T) / 2
    for i, a in enumerate(metric.models):
        for j, b in enumerate(metric.models):
            expected = 0.0 if i == j else 1.0 - sym[i, j]
            assert frame.loc[a, b] == pytest.approx(expected, abs=1e-12)
    meta = load_metadata(out / "_data" / "model_metadata.json")
    assert set(meta) == set(metric.models)
    assert meta["mace-off23-small"]["architecture"] == ["Randomized"]  # the random-init control
    assert meta["morgan-fp"]["architecture"] == ["Baseline"]
    assert meta["chgnet-0.3.0"]["modality"] == ["3D"]
    tree = read_tree_data(out / "tree-data.json")["qm9"]
    # trained 3D models only, the study's tree distance in point order
    assert "morgan-fp" not in tree["models"] and "mace-off23-small" not in tree["models"]
    assert {"chgnet-0.3.0", "ani-1x", "sevennet-0"} <= set(tree["models"])
    rows = [metric.models.index(m) for m in tree["models"]]
    expected = np.sqrt(1 - np.clip(sym[np.ix_(rows, rows)], 0, 1))
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(tree["matrix"], expected, atol=5e-6)  # rounded to 5 dp
    assert f"k={k}" in tree["metric"] and "not public" in tree["metric"]
    # refuses to overwrite without --force; a results folder without cknna.h5 is said
    assert main(["export-almanac", "--results", str(results), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["export-almanac", "--results", str(tmp_path), "--out",
                 str(tmp_path / "x")]) == 2
    assert "cknna.h5" in capsys.readouterr().err
    assert export_almanac(results, tmp_path / "again").datasets == {"qm9": len(metric.models)}
