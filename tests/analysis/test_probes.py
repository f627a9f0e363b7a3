"""probes.h5: every probe-able property of every model, and its heatmap."""

from __future__ import annotations

import json

import numpy as np

from matteralign.analysis.performance import write_performance
from matteralign.analysis.probes import read_probes, write_probes
from matteralign.analysis.ridge import ridge_probe, shuffle_rank
from matteralign.io import read_embeddings
from matteralign.plots.probes import model_labels
from tests.analysis.study_files import write_study


def test_write_probes_file_and_figure(tmp_path):
    study = write_study(tmp_path, n=400, masked={"sevennet-0": [5, 9]})
    out, figure = tmp_path / "probes.h5", tmp_path / "figures" / "probes.png"
    write_probes(study.structures, study.embeddings, out, figure, seed=0)
    result = read_probes(out)
    assert result.models == study.models
    assert result.control == ["", "", "baseline", "random-init"]
    assert result.properties == ["atomization_energy", "homo", "gap", "n_atoms"]
    assert "dipole" in result.attrs["skipped"]  # 5 values: too few to probe
    j = {p: k for k, p in enumerate(result.properties)}
    # homo is linear in the latent the first two models embed (the second rotated, scaled)
    assert (result.r2[:2, j["homo"]] > 0.99).all()
    assert (np.abs(result.r2[:, j["gap"]]) <= 0.05).all()  # gap is noise for every model
    assert abs(result.r2[2, j["homo"]]) <= 0.05  # the noise "baseline" knows nothing
    assert result.n[1].tolist() == [398] * 4 and result.n[0].tolist() == [400] * 4
    assert result.alpha.shape == (4, 4, 5)
    assert json.loads(result.attrs["units"])["homo"] == "eV"
    assert result.attrs["folds"] == 5 and len(result.attrs["alphas"]) == 10
    assert {"git_commit", "created", "packages", "seed", "dataset"} <= set(result.attrs)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # performance.h5's probe of the reference energy is the same probe
    performance = write_performance(study.structures, study.embeddings, tmp_path / "p.h5")
    assert np.allclose(performance.probe_r2, result.r2[:, j["atomization_energy"]], atol=1e-12)


def test_probes_use_the_full_dataset_folds_for_a_masked_model(tmp_path):
    masked = [0, 3, 4, 10, 11]
    study = write_study(tmp_path, n=120, masked={"sevennet-0": masked})
    result = write_probes(study.structures, study.embeddings, tmp_path / "p.h5", None, seed=2)
    keep = np.ones(120, bool)
    keep[masked] = False
    x = read_embeddings(study.embeddings[1]).embeddings[keep]
    direct = ridge_probe(x, study.properties["homo"][keep], seed=2,
                         rank=shuffle_rank(120, 2)[keep])
    assert result.r2[1, result.properties.index("homo")] == direct.r2


def test_model_labels_mark_controls():
    assert model_labels(["a", "b", "c"], ["", "baseline", "random-init"]) == \
        ["a", "b (baseline)", "c (random-init)"]
