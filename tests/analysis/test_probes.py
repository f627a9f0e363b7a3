"""probes.h5: every probe-able property of every model, and its heatmap."""

from __future__ import annotations

import json

import numpy as np
import pytest

from matteralign.analysis.performance import write_performance
from matteralign.analysis.probes import read_probes, write_probes
from matteralign.analysis.ridge import repeated_cv_interval, ridge_probe, shuffle_rank
from matteralign.io import read_embeddings
from matteralign.plots.probes import model_labels
from tests.analysis.study_files import write_study


def test_write_probes_file_and_figure(tmp_path):
    study = write_study(tmp_path, n=400, masked={"sevennet-0": [5, 9]})
    out, figure = tmp_path / "probes.h5", tmp_path / "figures" / "probes.png"
    from matteralign.plots.probes import plot_probes

    plot_probes(write_probes(study.structures, study.embeddings, out, seed=0, repeats=2),
                figure)
    result = read_probes(out)
    assert result.models == study.models
    assert result.control == ["", "", "baseline", "random-init"]
    assert result.properties == ["atomization_energy", "homo", "gap", "n_atoms",
                                 "atomization_energy_per_atom"]  # the intensive companion
    assert "dipole" in result.attrs["skipped"]  # 5 values: too few to probe
    j = {p: k for k, p in enumerate(result.properties)}
    # homo is linear in the latent the first two models embed (the second rotated, scaled)
    assert (result.r2[:2, j["homo"]] > 0.99).all()
    assert (np.abs(result.r2[:, j["gap"]]) <= 0.05).all()  # gap is noise for every model
    assert abs(result.r2[2, j["homo"]]) <= 0.05  # the noise "baseline" knows nothing
    assert result.n[1].tolist() == [398] * 5 and result.n[0].tolist() == [400] * 5
    assert result.alpha.shape == (4, 5, 5) and result.r2_folds.shape == (4, 5, 2, 5)
    units = json.loads(result.attrs["units"])
    assert units["homo"] == "eV" and units["atomization_energy_per_atom"] == "eV/atom"
    assert result.attrs["folds"] == 5 and len(result.attrs["alphas"]) == 10
    assert result.attrs["repeats"] == 2
    assert np.allclose(result.r2, result.r2_repeats.mean(axis=-1))
    assert (result.r2_lo <= result.r2).all() and (result.r2 <= result.r2_hi).all()
    # the best control's R² beside every model's: the random-init tanh of the latent
    assert result.r2_control[j["homo"]] == max(result.r2[2, j["homo"]], result.r2[3, j["homo"]])
    assert result.r2_control_hi[j["homo"]] == result.r2_hi[3, j["homo"]]
    assert {"git_commit", "created", "packages", "seed", "dataset"} <= set(result.attrs)
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # performance.h5's probe of the reference energy is the same probe
    performance = write_performance(study.structures, study.embeddings, tmp_path / "p.h5")
    assert np.allclose(performance.probe_r2, result.r2_repeats[:, j["atomization_energy"], 0],
                       atol=1e-12)


def test_probes_use_the_full_dataset_folds_for_a_masked_model(tmp_path):
    masked = [0, 3, 4, 10, 11]
    study = write_study(tmp_path, n=120, masked={"sevennet-0": masked})
    result = write_probes(study.structures, study.embeddings, tmp_path / "p.h5", seed=2,
                          repeats=3)
    keep = np.ones(120, bool)
    keep[masked] = False
    x = read_embeddings(study.embeddings[1]).embeddings[keep]
    j = result.properties.index("homo")
    for r in range(3):  # repeat r is the probe with the folds of seed 2 + r
        direct = ridge_probe(x, study.properties["homo"][keep], seed=2 + r,
                             rank=shuffle_rank(120, 2 + r)[keep])
        assert result.r2_repeats[1, j, r] == direct.r2


def test_probe_interval_is_the_corrected_t_of_the_fold_scores(tmp_path):
    """r2_folds are each fold's own R²; the interval is centred on the mean pooled R²."""
    study = write_study(tmp_path, n=100)
    result = write_probes(study.structures, study.embeddings, tmp_path / "p.h5", seed=0,
                          repeats=5)
    j = result.properties.index("atomization_energy")
    x = read_embeddings(study.embeddings[0]).embeddings
    y = study.properties["atomization_energy"]
    rank = shuffle_rank(100, 1)
    probe = ridge_probe(x, y, seed=1, rank=rank)
    fold = rank % 5 == 3
    own = 1 - ((y[fold] - probe.predictions[fold]) ** 2).sum() / \
        ((y[fold] - y[fold].mean()) ** 2).sum()
    assert result.r2_folds[0, j, 1, 3] == pytest.approx(own, abs=1e-12)
    lo, hi = repeated_cv_interval(result.r2_folds[0, j], 5, centre=result.r2[0, j])
    assert (result.r2_lo[0, j], result.r2_hi[0, j]) == (lo, hi)
    assert hi - lo > 0


def test_model_labels_mark_controls():
    assert model_labels(["a", "b", "c"], ["", "baseline", "random-init"]) == \
        ["a", "b (baseline)", "c (random-init)"]


def test_the_transfer_diagonal_is_the_repeated_probe(tmp_path):
    """Same rows, folds and seeds: transfer.h5's own probes are probes.h5's."""
    from matteralign.analysis.transfer import write_transfer

    study = write_study(tmp_path, n=60, masked={"composition": [0, 7]})
    probed = write_probes(study.structures, study.embeddings, tmp_path / "p.h5", seed=1,
                          repeats=2)
    moved = write_transfer(study.structures, study.embeddings, tmp_path / "t.h5",
                           prop="homo", seed=1, repeats=2)
    for p, name in enumerate(moved.properties):
        j = probed.properties.index(name)
        assert np.allclose(np.diagonal(moved.stacks["r2_all"][p]), probed.r2[:, j],
                           atol=1e-12)
