"""End to end: a small study of the default grid through Snakemake, then its contract.

Uses the real models (in their family environments) on real data, at small N.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from tests.conftest import ROOT, family_python

pytestmark = pytest.mark.slow

MODELS = ["chgnet-0.3.0", "sevennet-0", "minilm-l6-v2", "morgan-fp", "composition"]
FAMILIES = {"chgnet-0.3.0": "chgnet", "sevennet-0": "sevenn", "minilm-l6-v2": "text",
            "morgan-fp": "baseline", "composition": "baseline", "ani-1x": "ani"}
#: the trained ladder, tiny: two sizes, a second seed at one, and the two rungs of size 50
#: again without nitrogen, read against ANI-1x (its rungs join QM9's models)
LADDER = {"enabled": True, "sizes": [50, 60], "replicate_sizes": [50], "replicate_seeds": [1],
          "held_out": {"element": "N", "sizes": [50]},
          "validation": 50, "test": 50, "training": {"steps": 48, "batch_size": 16}}
RUNGS = ["ani-qm9-n50-s0", "ani-qm9-n60-s0", "ani-qm9-n50-s1", "ani-qm9-noN-n50-s0",
         "ani-qm9-noN-n50-s1"]
GRID = {"qm9": MODELS + ["ani-1x"] + RUNGS,
        "coremof": [m for m in MODELS if m != "morgan-fp"]}
METRICS = ["cknna", "mutual_knn", "cka", "dcor", "information_imbalance", "intrinsic_dim",
           "gfre", "lfre"]
#: the analysis files of every dataset, and its figures besides the metric heatmaps
ANALYSIS = ["performance", "probes", "transfer", "convergence", "regimes"]
ANALYSIS_FIGURES = ["probes", "probe_transfer", "convergence", "tree", "intrinsic_dim_regimes",
                    "ii_plane"]
MAPS = {"qm9": ["gap"], "coremof": ["density"]}
CLAIMS = ["cross_modality", "convergence", "local_optimum", "regimes", "intrinsic_dim",
          "transfer", "calibration"]


def snakemake(config: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    return subprocess.run(
        # targets first: --configfile takes several values and would swallow them
        [sys.executable, "-m", "snakemake", *args, "--cores", "2", "--configfile", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def planned_jobs(config: Path, *targets: str) -> dict[str, int]:
    """rule -> job count of a dry run."""
    proc = snakemake(config, *targets, "-n", "--quiet", "rules", timeout=120)
    assert proc.returncode == 0, proc.stderr
    counts = {}
    for line in (proc.stdout + proc.stderr).splitlines():
        match = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    for family in set(FAMILIES.values()):
        family_python(family)
    work = tmp_path_factory.mktemp("study")
    config = {
        "results": str(work / "results"),
        "seed": 3,
        # QM9 also atom by atom (its two potentials), within a bound on the atoms kept
        "datasets": {"qm9": {"n": 60, "atoms": True, "max_atoms_total": 600,
                             "by_element": True},
                     "coremof": {"n": 40, "options": {"max_atoms": 60}}},
        "models": {m: {} for m in MODELS},
        # small B; P = 19, the fewest for which p = 1/(P+1) can reach 0.05
        "metrics": {"names": METRICS, "k": 5, "bootstrap": 5, "permutations": 19},
        "analysis": {"map_properties": MAPS},
        "ladder": LADDER,
    }
    # options and a weights pin travel from the config entry to the job
    config["models"]["chgnet-0.3.0"] = {"options": {"max_atoms": 50}}
    config["models"]["sevennet-0"] = {"sha256": sevennet_sha256()}
    config["models"]["ani-1x"] = {"datasets": ["qm9"]}  # the held-out design's reference
    path = work / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    proc = snakemake(path)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return path, work / "results"


def sevennet_sha256() -> str:
    from matteralign.io import sha256_file
    from matteralign.models import registered_models

    site = next((ROOT / ".envs" / "sevenn").glob("lib/python3*/site-packages"))
    return sha256_file(site / registered_models()["sevennet-0"].weights_in_package)


def test_model_options_and_pins_reach_the_jobs(study):
    _, results = study
    # CoRE MOF cells here have 20-60 atoms: about half are over the model's limit
    with h5py.File(results / "coremof" / "embeddings" / "chgnet-0.3.0.h5") as handle:
        assert handle.attrs["options"] == '{"max_atoms": 50}'
        errors = [e.decode() for e in handle["errors"][()]]
    assert any("atoms > max_atoms=50" in e for e in errors)
    with h5py.File(results / "qm9" / "embeddings" / "sevennet-0.h5") as handle:
        assert handle.attrs["weights_sha256"] == sevennet_sha256()


def test_every_target_exists(study):
    _, results = study
    for dataset, models in GRID.items():
        for model in models:
            assert (results / dataset / "embeddings" / f"{model}.h5").exists()
        for metric in METRICS:
            assert (results / dataset / f"{metric}.h5").exists()
            png = results / dataset / "figures" / f"{metric}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (results / "logs" / "embed" / dataset / "sevennet-0.log").exists()
        for name in ANALYSIS:
            assert (results / dataset / f"{name}.h5").exists(), (dataset, name)
        for name in ANALYSIS_FIGURES + [f"maps_{p}" for p in MAPS[dataset]]:
            png = results / dataset / "figures" / f"{name}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    atoms = results / "qm9" / "atoms"
    for metric in METRICS:
        assert (atoms / f"{metric}.h5").exists(), metric
        assert (atoms / "by_element" / f"{metric}.h5").exists(), metric
        png = atoms / "figures" / f"{metric}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (results / "qm9" / "figures" / "pooled_vs_atoms.png").exists()
    assert not (results / "coremof" / "atoms").exists()  # atoms: false
    assert (results / "summary.tsv").exists()
    assert (results / "answers.html").exists() and (results / "answers.json").exists()
    for rung in RUNGS:  # trained, then embedded like any model (pooled only)
        assert (results / "ladder" / rung / "model.pt").exists()
        assert not (results / "qm9" / "atoms" / f"{rung}.h5").exists()
    assert (results / "ladder" / "ladder.h5").exists()
    assert (results / "qm9" / "figures" / "ladder.png").read_bytes()[:4] == b"\x89PNG"
    assert (results / "qm9" / "figures" / "held_out.png").read_bytes()[:4] == b"\x89PNG"
    from matteralign.analysis.held_out import read_held_out

    held = read_held_out(results / "ladder" / "held_out.h5")
    assert held.pairs == [("ani-qm9-noN-n50-s0", "ani-qm9-n50-s0"),
                          ("ani-qm9-noN-n50-s1", "ani-qm9-n50-s1")]
    assert held.reference == "ani-1x" and held.n_per_subset >= 7
    assert not (results / "coremof" / "embeddings" / "morgan-fp.h5").exists()


def test_answers_cover_every_claim(study):
    from matteralign.analysis.answers import UNTESTABLE, VERDICTS

    _, results = study
    answers = json.loads((results / "answers.json").read_text())
    claims = {c["key"]: c for c in answers["claims"]}
    assert list(claims) == CLAIMS
    assert all(c["verdict"] in VERDICTS and c["tests"] for c in claims.values())
    # QM9: 3D potentials and a text model with a permutation null: the claim is testable
    qm9 = next(t for t in claims["cross_modality"]["tests"] if t["label"] == "qm9")
    assert qm9["verdict"] != UNTESTABLE, qm9["reason"]
    # (chgnet, sevennet, ani-1x and the five rungs) × minilm
    assert "chance" in " ".join(qm9["measured"]) and qm9["numbers"]["trained"]["n_pairs"] == 8
    # claim 4 under control: two pairs of twins cannot reach the level (or the tiny rungs
    # fail the design check), and it says which
    held = [t for t in claims["regimes"]["tests"] if t["label"].startswith("qm9: held-out")]
    assert held and {t["verdict"] for t in held} == {UNTESTABLE}, held
    assert any(w in held[0]["reason"] for w in ("6 pairs", "not out of distribution"))
    # CoRE MOF has no reference energies: convergence cannot be tested there, and says why
    ladder = next(t for t in claims["convergence"]["tests"]
                  if t["label"] == "qm9: trained ladder → the most accurate rung of another seed")
    # two sizes of the ladder's seed cannot give a rank test, and it says so
    assert ladder["verdict"] == UNTESTABLE and "rung" in ladder["reason"]
    coremof = next(t for t in claims["convergence"]["tests"] if t["label"] == "coremof")
    assert coremof["verdict"] == UNTESTABLE and "reference energies" in coremof["reason"]
    assert answers["missing"] == []
    page = (results / "answers.html").read_text()
    for key in CLAIMS:
        assert f'<section id="{key}">' in page
    assert page.count("data:image/png;base64,") >= len(ANALYSIS_FIGURES)


def test_embedding_files_record_their_isolated_environment(study):
    _, results = study
    pythons = {}
    for model, family in FAMILIES.items():
        with h5py.File(results / "qm9" / "embeddings" / f"{model}.h5") as handle:
            attrs = dict(handle.attrs)
            assert handle["embeddings"].shape == (60, attrs["dim"])
            assert handle["valid"][()].sum() == attrs["n_valid"] > 0
        assert attrs["family"] == family
        assert Path(attrs["python"]).parent.parent.name == family
        assert attrs["dataset_sha256"] and attrs["git_commit"] and attrs["packages"]
        pythons[family] = attrs["python"]
        if model in ("chgnet-0.3.0", "sevennet-0", "minilm-l6-v2"):
            assert len(attrs["weights_sha256"]) == 64 and attrs["weights"] != "random-init"
    assert len(set(pythons.values())) == len(set(FAMILIES.values()))  # one env a family


def test_matrices_are_sane(study):
    _, results = study
    for dataset, models in GRID.items():
        for metric in ("cknna", "cka", "dcor", "mutual_knn"):
            with h5py.File(results / dataset / f"{metric}.h5") as handle:
                matrix = handle["matrix"][()]
                assert [m.decode() for m in handle["models"][()]] == models
                assert handle.attrs["k"] == 5 and handle.attrs["preprocessing"] == "l2"
                assert 0 < handle.attrs["n_used"] <= handle.attrs["n_total"]
            np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-9)
            if metric != "cknna":  # CKNNA's masked kernels make it slightly asymmetric
                np.testing.assert_allclose(matrix, matrix.T, atol=1e-9)
            off = matrix[~np.eye(len(models), dtype=bool)]
            assert np.all(off < 1 - 1e-6) and np.ptp(off) > 1e-3
        with h5py.File(results / dataset / "information_imbalance.h5") as handle:
            ii = handle["matrix"][()]
            n_used = handle.attrs["n_used"]
        # a space predicts itself perfectly: every nearest neighbour has rank 1
        np.testing.assert_allclose(np.diag(ii), 2.0 / n_used, atol=1e-12)
        assert np.all(ii[~np.eye(len(models), dtype=bool)] > 2.0 / n_used)
        with h5py.File(results / dataset / "intrinsic_dim.h5") as handle:
            assert np.all(handle["values"][()] > 0)


def test_atom_level_files_match_the_pooled_study(study):
    from matteralign.io import read_atom_embeddings, read_embeddings, read_metric

    _, results = study
    for model in ("ani-1x", "chgnet-0.3.0", "sevennet-0"):
        pooled = read_embeddings(results / "qm9" / "embeddings" / f"{model}.h5")
        atoms = read_atom_embeddings(results / "qm9" / "atoms" / f"{model}.h5")
        assert 0 < len(atoms.structure_ids) <= 600
        for i in np.unique(atoms.structure_index):
            rows = atoms.structure_index == i
            np.testing.assert_array_equal(
                atoms.embeddings[rows].mean(axis=0).astype(np.float32), pooled.embeddings[i])
    cknna = read_metric(results / "qm9" / "atoms" / "cknna.h5")
    assert sorted(cknna.models) == ["ani-1x", "chgnet-0.3.0", "sevennet-0"]
    np.testing.assert_allclose(np.diag(cknna.matrix), 1.0, atol=1e-9)
    assert cknna.attrs["level"] == "atoms" and cknna.attrs["n_atoms"] > cknna.attrs["n_structures"]
    assert "ci_low" in cknna.extra and "above_chance" in cknna.extra
    table = (results / "qm9" / "atoms" / "pooled_vs_atoms.tsv").read_text().splitlines()
    assert table[0].startswith("metric\tsource\ttarget\tpooled") and "atoms_C" in table[0]


def test_rerun_schedules_only_what_is_missing(study):
    config, results = study
    assert planned_jobs(config, str(results / "qm9" / "cknna.h5")) == {}
    (results / "qm9" / "embeddings" / "composition.h5").unlink()
    planned = planned_jobs(config)
    analysis = {rule: 1 for rule in ("performance", "probes", "transfer", "convergence",
                                     "regimes", "tree", "answers")}
    # nothing is trained again: the ladder's figure only redraws the new cknna.h5
    assert planned == {"embed": 1, "align": 1, "plot_metric": len(METRICS), "summary": 1,
                       "maps": len(MAPS["qm9"]), "pooled_vs_atoms": 1, "plot_ladder": 1,
                       **analysis, "all": 1}, planned
    proc = snakemake(config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (results / "qm9" / "embeddings" / "composition.h5").exists()


def test_report(study):
    config, results = study
    report = results / "report.html"
    proc = snakemake(config, "--report", str(report), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert report.stat().st_size > 10_000
    # the answers page is embedded as a data URI: every claim's section is in it
    pages = [base64.b64decode(uri).decode() for uri in re.findall(
        r"data:text/html[^\"',]*;base64,([A-Za-z0-9+/=]+)", report.read_text())]
    answers = [page for page in pages if '<section id="cross_modality">' in page]
    assert answers, f"{len(pages)} HTML pages in the report, none is answers.html"
    for key in CLAIMS:
        assert f'<section id="{key}">' in answers[0]
