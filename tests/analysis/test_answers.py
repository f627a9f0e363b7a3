"""The answers page: verdict rules on small planted result files (STUDY_SPEC layouts)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from matteralign.analysis.answers import (
    AGREES,
    DISAGREES,
    INCONCLUSIVE,
    MIXED,
    UNTESTABLE,
    check_analysis_config,
    combine,
    describe_pair,
    pair_value,
    read_config_arg,
    study_answers,
)
from matteralign.config import ConfigError
from matteralign.io import MetricFile, atomic_h5, read_metric, set_attrs, strings, write_metric
from matteralign.plots.answers_page import write_answers

#: qm9 grid: model -> modality (real names, so training domains and controls resolve)
QM9 = {"chgnet-0.3.0": "atoms", "sevennet-0": "atoms", "ani-1x": "atoms",
       "cgcnn-formation-energy": "atoms", "minimol": "smiles", "rxnfp-bert-ft": "smiles",
       "minilm-l6-v2": "text", "morgan-fp": "smiles"}
STRUCTURE = ["chgnet-0.3.0", "sevennet-0", "ani-1x", "cgcnn-formation-energy"]
STRINGS = ["minimol", "rxnfp-bert-ft", "minilm-l6-v2"]


#: permutations of the planted files: the fewest with which p = 1/(P+1) reaches 0.05
P = 20
B = 10


def config(datasets: Sequence[str] = ("qm9",), permutations: int = P, **analysis) -> dict:
    return {"results": "results", "seed": 0,
            "datasets": {d: {"n": 100} for d in datasets},
            "models": {m: {} for m in QM9},
            "metrics": {"names": ["cknna", "mutual_knn", "cka", "information_imbalance",
                                  "intrinsic_dim"], "k": 5, "preprocessing": "l2",
                        "bootstrap": B, "permutations": permutations},
            "analysis": {"enabled": True, "reference": None, "domains": {},
                         "transfer_property": {}, "map_properties": {}, **analysis}}


def planted_replicates(matrix: np.ndarray, half_width: float, seed: int = 0) -> np.ndarray:
    """B half-sample values around ``matrix`` whose 95% spread is about ±half_width, each
    entry independent (symmetric like the matrix)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-half_width, half_width, size=(B, *matrix.shape))
    noise = (noise + noise.transpose(0, 2, 1)) / 2 * np.sqrt(2)
    return matrix[None] + noise


def pairwise_file(path: Path, metric: str, models: dict[str, str], matrix: np.ndarray,
                  null: float | None = 0.05, p95: float | None = 0.08, half_width: float = 0.02,
                  higher: bool = True, permutations: int = P, families=None) -> MetricFile:
    """A metric file with bootstrap intervals, half-sample replicates and a permutation null
    (None: no null) whose p-value is the smallest, 1/(P+1), beyond ``p95`` and 1 otherwise."""
    m = len(models)
    extra = {"ci_low": matrix - half_width, "ci_high": matrix + half_width,
             "replicates": planted_replicates(matrix, half_width)}
    if null is not None:
        null_mean, threshold = np.full((m, m), null), np.full((m, m), p95)
        np.fill_diagonal(null_mean, np.nan)
        np.fill_diagonal(threshold, np.nan)
        above = (matrix > threshold) if higher else (matrix < threshold)
        calibrated = ((matrix - null_mean) / (1.0 - null_mean) if higher
                      else (null_mean - matrix) / null_mean)
        p_value = np.where(above, 1.0 / (1 + permutations), 1.0)
        np.fill_diagonal(p_value, np.nan)
        extra.update(null_mean=null_mean, null_p95=threshold, calibrated=calibrated,
                     p_value=p_value,
                     above_chance=np.where(np.isfinite(threshold), above.astype(float), np.nan))
    result = MetricFile(metric, list(models), matrix=matrix, extra=extra, attrs={
        "dataset": path.parent.name, "n_used": 100, "k": 5, "bootstrap": B,
        "permutations": 0 if null is None else permutations,
        "modalities": list(models.values()), "random_init": ["False"] * m,
        "families": list(families or models), "higher_is_aligned": str(higher)})
    write_metric(path, result)
    return result


def cross_matrix(models: Sequence[str], cross: float, within: float = 0.6,
                 control_cross: float = 0.15) -> np.ndarray:
    """Symmetric planted alignments: `cross` between trained 3D and string models,
    `control_cross` between a control (morgan-fp) and a model of the other kind, else
    `within`."""
    kinds = [QM9[m] == "atoms" for m in models]
    controls = [m == "morgan-fp" for m in models]
    matrix = np.array([[1.0 if i == j else (control_cross if controls[i] or controls[j]
                                            else cross) if a != b else within
                        for j, b in enumerate(kinds)] for i, a in enumerate(kinds)])
    return matrix


def write_table(path: Path, datasets: dict, attrs: dict) -> None:
    with atomic_h5(path) as handle:
        for key, value in datasets.items():
            if isinstance(value, list) and value and isinstance(value[0], str):
                handle.create_dataset(key, data=strings(value))
            else:
                handle.create_dataset(key, data=np.asarray(value))
        set_attrs(handle, attrs)


def convergence_file(path: Path, models: Sequence[str], mae, align, rho, low, high,
                     flags=None, measure: str = "energy_mae", reference: str | None = None):
    mae = np.asarray(mae, dtype=float)
    reference = reference or models[int(np.nanargmin(mae))]
    write_table(path, {
        "models": list(models), "control": ["baseline" if m == "morgan-fp" else ""
                                            for m in models],
        "mae": mae, "alignment_to_reference": np.asarray(align, float),
        "mean_alignment": np.asarray(align, float),
        "local_optimum": np.zeros(len(models), bool) if flags is None else np.asarray(flags),
    }, {"metric": "cknna", "reference": reference, "performance_measure": measure,
        "n_models": int(np.isfinite(mae).sum()), "spearman_reference": rho,
        "spearman_reference_ci_low": low, "spearman_reference_ci_high": high,
        "spearman_mean": rho, "spearman_mean_ci_low": low, "spearman_mean_ci_high": high,
        "note": ""})


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A qm9 folder whose 3D and string models align well above chance."""
    folder = tmp_path / "results" / "qm9"
    models = list(QM9)
    pairwise_file(folder / "cknna.h5", "cknna", QM9, cross_matrix(models, 0.4))
    pairwise_file(folder / "mutual_knn.h5", "mutual_knn", QM9, cross_matrix(models, 0.3))
    # global CKA: large raw values but a null almost as large (chance inflated)
    pairwise_file(folder / "cka.h5", "cka", QM9, cross_matrix(models, 0.62, 0.65),
                  null=0.55, p95=0.6)
    dims = np.array([8.0, 9.0, 10.0, 11.0, 9.5, 10.5, 30.0, 4.0])
    write_metric(folder / "intrinsic_dim.h5", MetricFile(
        "intrinsic_dim", models, values=dims,
        extra={"ci_low": dims - 1.0, "ci_high": dims + 1.0},
        attrs={"modalities": list(QM9.values()), "random_init": ["False"] * len(models)}))
    return tmp_path / "results"


def claim(answers, key):
    return next(c for c in answers.claims if c.key == key)


def test_combine_rules():
    assert combine([]) == UNTESTABLE
    assert combine([UNTESTABLE, AGREES, INCONCLUSIVE]) == AGREES
    assert combine([AGREES, DISAGREES]) == MIXED
    assert combine([INCONCLUSIVE, UNTESTABLE]) == INCONCLUSIVE
    assert combine([DISAGREES, DISAGREES]) == DISAGREES


def test_cross_modality_above_chance_and_above_controls_agrees(results):
    answers = study_answers(results, config())
    test = claim(answers, "cross_modality").tests[0]
    assert test.verdict == AGREES, test.reason
    stats = test.numbers["trained"]
    assert stats["n_pairs"] == len(STRUCTURE) * len(STRINGS)
    assert stats["share_above_chance"] == 1.0
    np.testing.assert_allclose(stats["mean_calibrated"], (0.4 - 0.05) / 0.95)
    # the Morgan-fingerprint baseline replaces the SMILES partners: 0.4 - 0.15 on those 8
    # pairs; the 4 pairs with the text model have no control of their input type
    effect = test.numbers["effect_over_controls"]
    assert effect["n_pairs"] == len(STRUCTURE) * 2 and effect["controls"] == ["morgan-fp"]
    assert effect["value"] == pytest.approx(0.25)
    assert 0 < effect["ci"][0] < 0.25 < effect["ci"][1]
    assert test.numbers["controls"]["n_pairs"] == len(STRUCTURE)
    assert any("morgan-fp" in line for line in test.controls)


def test_cross_modality_as_aligned_as_a_control_never_agrees(results):
    """Pairs far above chance, but a baseline reaches the same: the rows correspond, and the
    alignment says nothing beyond what the baseline encodes."""
    folder = results / "qm9"
    for control_cross, expected in ((0.4, INCONCLUSIVE), (0.5, DISAGREES)):
        pairwise_file(folder / "cknna.h5", "cknna", QM9,
                      cross_matrix(list(QM9), 0.4, control_cross=control_cross))
        test = claim(study_answers(results, config()), "cross_modality").tests[0]
        assert test.numbers["trained"]["share_above_chance"] == 1.0
        assert test.verdict == expected, test.reason


def test_cross_modality_at_chance_disagrees(results):
    folder = results / "qm9"
    pairwise_file(folder / "cknna.h5", "cknna", QM9, cross_matrix(list(QM9), 0.06,
                                                                   control_cross=0.06))
    test = claim(study_answers(results, config()), "cross_modality").tests[0]
    assert test.verdict == DISAGREES
    assert test.numbers["trained"]["share_above_chance"] == 0.0


def test_cross_modality_needs_a_control_replicates_and_enough_permutations(results):
    folder = results / "qm9"
    grid = {m: k for m, k in QM9.items() if m != "morgan-fp"}
    pairwise_file(folder / "cknna.h5", "cknna", grid, cross_matrix(list(grid), 0.4))
    test = claim(study_answers(results, config()), "cross_modality").tests[0]
    assert test.verdict == UNTESTABLE and "no control" in test.reason
    pairwise_file(folder / "cknna.h5", "cknna", QM9, cross_matrix(list(QM9), 0.4),
                  permutations=10)
    test = claim(study_answers(results, config()), "cross_modality").tests[0]
    assert test.verdict == UNTESTABLE and "cannot reach 0.05" in test.reason
    metric = read_metric(folder / "cknna.h5")
    metric.extra.pop("replicates")
    metric.attrs["permutations"] = P
    write_metric(folder / "cknna.h5", metric)
    test = claim(study_answers(results, config()), "cross_modality").tests[0]
    assert test.verdict == UNTESTABLE and "replicates" in test.reason


def test_no_permutation_null_cannot_be_tested(results):
    folder = results / "qm9"
    for metric in ("cknna", "mutual_knn", "cka"):
        pairwise_file(folder / f"{metric}.h5", metric, QM9, cross_matrix(list(QM9), 0.4),
                      null=None)
    answers = study_answers(results, config(permutations=0))
    for key in ("cross_modality", "calibration"):
        c = claim(answers, key)
        assert c.verdict == UNTESTABLE
        assert all("metrics.permutations" in t.reason for t in c.tests)


def test_pair_line_gives_interval_chance_and_calibrated(results):
    metric = read_metric(results / "qm9" / "cknna.h5")
    line = describe_pair(metric, "chgnet-0.3.0", "minimol", "qm9")
    assert line == ("CKNNA(chgnet-0.3.0, minimol) on qm9 = 0.4 [0.38, 0.42], chance 0.05, "
                    "p = 0.048, calibrated 0.368 [0.347, 0.389], above chance")


def test_calibrated_value_without_stored_calibration_matches_formula(tmp_path):
    """Files with only null_mean/null_p95: calibrated = (obs - null)/(1 - null); for the
    information imbalance (null - obs)/null, and above chance means below the 5th pct."""
    models = {"chgnet-0.3.0": "atoms", "minimol": "smiles"}
    m = np.array([[1.0, 0.5], [0.5, 1.0]])
    path = tmp_path / "cka.h5"
    write_metric(path, MetricFile("cka", list(models), matrix=m, extra={
        "null_mean": np.array([[np.nan, 0.2], [0.2, np.nan]]),
        "null_p95": np.array([[np.nan, 0.3], [0.3, np.nan]])}))
    v = pair_value(read_metric(path), "chgnet-0.3.0", "minimol")
    assert v.calibrated == pytest.approx((0.5 - 0.2) / 0.8) and v.above_chance == 1.0
    ii = np.array([[0.02, 0.7], [0.9, 0.02]])
    path = tmp_path / "information_imbalance.h5"
    write_metric(path, MetricFile("information_imbalance", list(models), matrix=ii, extra={
        "null_mean": np.array([[np.nan, 1.0], [1.0, np.nan]]),
        "null_p95": np.array([[np.nan, 0.95], [0.95, np.nan]])},
        attrs={"higher_is_aligned": "False"}))
    metric = read_metric(path)
    forward, backward = (pair_value(metric, "chgnet-0.3.0", "minimol"),
                         pair_value(metric, "minimol", "chgnet-0.3.0"))
    assert forward.calibrated == pytest.approx(0.3) and forward.above_chance == 1.0
    assert backward.calibrated == pytest.approx(0.1) and backward.above_chance == 1.0


LADDER = [f"potential-{i}" for i in range(8)]


def ladder_files(folder: Path, align: Sequence[float], families=None) -> None:
    """A grid of 8 independent potentials (mae 0.01 ... 0.08 eV) plus their reference
    (`ani-1x`, the lowest error) whose CKNNA to the reference is ``align``."""
    grid = {"ani-1x": "atoms", **{m: "atoms" for m in LADDER}, "morgan-fp": "smiles"}
    m = len(grid)
    matrix = np.full((m, m), 0.3)
    np.fill_diagonal(matrix, 1.0)
    for i, value in enumerate(align):
        matrix[0, i + 1] = matrix[i + 1, 0] = value
    pairwise_file(folder / "cknna.h5", "cknna", grid, matrix,
                  families=["ani", *(families or LADDER), "baseline"])
    mae = [0.001, *[0.01 * (i + 1) for i in range(len(LADDER))], np.nan]
    convergence_file(folder / "convergence.h5", list(grid), mae, [1.0, *align, 0.3], np.nan,
                     np.nan, np.nan)


def test_planted_ladder_of_8_independent_models_agrees_with_the_exact_p(results):
    folder = results / "qm9"
    ladder_files(folder, [0.9 - 0.1 * i for i in range(8)])  # alignment falls as MAE rises
    test = claim(study_answers(results, config()), "convergence").tests[0]
    assert test.verdict == AGREES, test.reason
    assert test.numbers["rho"] == pytest.approx(-1.0)
    assert test.numbers["p_value"] == pytest.approx(2 / math.factorial(8))
    assert test.numbers["min_p"] == pytest.approx(2 / math.factorial(8))
    assert test.numbers["n_families"] == 8
    ladder_files(folder, [0.2 + 0.1 * i for i in range(8)])
    assert claim(study_answers(results, config()), "convergence").tests[0].verdict == DISAGREES
    ladder_files(folder, [0.5, 0.3, 0.6, 0.4, 0.7, 0.2, 0.5, 0.45])
    test = claim(study_answers(results, config()), "convergence").tests[0]
    assert test.verdict == INCONCLUSIVE and test.numbers["p_value"] > 0.05


def test_four_models_or_sibling_checkpoints_cannot_reach_agrees(results):
    folder = results / "qm9"
    # the same perfect ladder, but the 8 checkpoints are 4 families of 2
    ladder_files(folder, [0.9 - 0.1 * i for i in range(8)],
                 families=[f"family-{i // 2}" for i in range(8)])
    test = claim(study_answers(results, config()), "convergence").tests[0]
    assert test.verdict == UNTESTABLE, test.reason
    assert test.numbers["n_families"] == 4 and test.numbers["n_models"] == 8
    assert test.numbers["min_p"] == pytest.approx(2 / 24)
    assert "smallest attainable" in test.reason


def test_no_energies_cannot_be_tested(results):
    folder = results / "qm9"
    nan = [np.nan] * 4
    convergence_file(folder / "convergence.h5", STRUCTURE, [0.1, 0.2, 0.3, 0.4], [1, .8, .6, .4],
                     np.nan, np.nan, np.nan, measure="probe_mae")
    answers = study_answers(results, config())
    for key in ("convergence", "local_optimum"):
        test = claim(answers, key).tests[0]
        assert test.verdict == UNTESTABLE and "no reference energies" in test.reason
    convergence_file(folder / "convergence.h5", STRUCTURE, [0.1, 0.2] + nan[:2],
                     [1, .8, .6, .4], np.nan, np.nan, np.nan)
    test = claim(study_answers(results, config()), "convergence").tests[0]
    assert test.verdict == UNTESTABLE and "at least 3" in test.reason
    # three energy models: the reference and two others, too few for ρ
    convergence_file(folder / "convergence.h5", STRUCTURE, [0.1, 0.2, 0.3, np.nan],
                     [1, .8, .6, .4], np.nan, np.nan, np.nan)
    test = claim(study_answers(results, config()), "convergence").tests[0]
    assert test.verdict == UNTESTABLE and "besides the reference" in test.reason
    (folder / "convergence.h5").unlink()
    assert claim(study_answers(results, config()), "convergence").verdict == UNTESTABLE


def test_local_optimum_rules(results):
    folder = results / "qm9"
    # ani-1x is the reference; sevennet-0 is the most accurate of the rest but the least aligned
    models = ["ani-1x", "sevennet-0", "chgnet-0.3.0", "cgcnn-formation-energy"]
    cknna = cross_matrix(list(QM9), 0.4)
    index = {m: i for i, m in enumerate(QM9)}
    for other, value in (("sevennet-0", 0.2), ("chgnet-0.3.0", 0.7),
                         ("cgcnn-formation-energy", 0.6)):
        cknna[index["ani-1x"], index[other]] = cknna[index[other], index["ani-1x"]] = value
    pairwise_file(folder / "cknna.h5", "cknna", QM9, cknna)
    mae, align = [0.01, 0.02, 0.05, 0.1], [1.0, 0.2, 0.7, 0.6]
    convergence_file(folder / "convergence.h5", models, mae, align, 0.0, -1, 1,
                     flags=[False, True, False, False])
    test = claim(study_answers(results, config()), "local_optimum").tests[0]
    assert test.verdict == AGREES and test.numbers["separated"] == ["sevennet-0"]
    # an interval wider than the gap: flagged, but not separated
    pairwise_file(folder / "cknna.h5", "cknna", QM9, cknna, half_width=0.5)
    test = claim(study_answers(results, config()), "local_optimum").tests[0]
    assert test.verdict == INCONCLUSIVE
    # no candidate: the existential claim is neither shown nor refuted
    convergence_file(folder / "convergence.h5", models, mae, align, 0.0, -1, 1)
    test = claim(study_answers(results, config()), "local_optimum").tests[0]
    assert test.verdict == INCONCLUSIVE and "does not show that none exists" in test.reason
    convergence_file(folder / "convergence.h5", models[:3], mae[:3], align[:3], 0.0, -1, 1)
    assert claim(study_answers(results, config()), "local_optimum").tests[0].verdict == \
        UNTESTABLE


def regimes_file(path: Path, groups: dict[str, tuple[str, float]]) -> None:
    write_table(path, {"models": list(groups), "regime": [g for g, _ in groups.values()],
                       "intrinsic_dim": [d for _, d in groups.values()],
                       "intrinsic_dim_ci_low": [d - 1 for _, d in groups.values()],
                       "intrinsic_dim_ci_high": [d + 1 for _, d in groups.values()]},
                {"summary": json.dumps({}), "pairs": json.dumps(
                    {"ID-ID": {"n_pairs": 6, "mean_information_imbalance": 0.4,
                               "mean_calibrated_alignment": 0.3}})})


def regime_grid(folder: Path, groups: dict[str, tuple[str, float]], families=None) -> None:
    """cknna.h5 over the models of ``groups`` (3D unless named like a string model), so that
    modalities and families resolve, and regimes.h5 with their groups and dimensions."""
    grid = {m: QM9.get(m, "atoms") for m in groups}
    matrix = np.full((len(grid), len(grid)), 0.3)
    np.fill_diagonal(matrix, 1.0)
    pairwise_file(folder / "cknna.h5", "cknna", grid, matrix, families=families)
    regimes_file(folder / "regimes.h5", groups)


def test_ood_collapse_over_3d_families_agrees_reverse_disagrees_few_cannot_be_tested(results):
    folder = results / "qm9"
    ids = {f"id-{i}": ("ID", 12.0 + i) for i in range(4)}
    oods = {f"ood-{i}": ("OOD", 4.0 + i) for i in range(4)}
    others = {"minimol": ("ID", 2.0), "minilm-l6-v2": ("OOD", 30.0),  # other input types
              "morgan-fp": ("control", 6.0)}
    regime_grid(folder, {**ids, **oods, **others})
    test = claim(study_answers(results, config()), "regimes").tests[0]
    assert test.verdict == AGREES, test.reason
    assert "minimol" not in test.numbers["id"] and "minilm-l6-v2" not in test.numbers["ood"]
    assert test.numbers["p_value"] == pytest.approx(2 / 70)  # exact: 4 vs 4, fully separated
    flipped = {m: (g, 20.0 - d) for m, (g, d) in {**ids, **oods}.items()}
    regime_grid(folder, {**flipped, **others})
    assert claim(study_answers(results, config()), "regimes").tests[0].verdict == DISAGREES
    mixed = {**ids, **oods, "id-0": ("ID", 4.5), "ood-0": ("OOD", 12.5)}
    regime_grid(folder, {**mixed, **others})
    test = claim(study_answers(results, config()), "regimes").tests[0]
    assert test.verdict == INCONCLUSIVE and test.numbers["p_value"] > 0.05
    # the default study's shape: one ID potential family against three OOD families
    regime_grid(folder, {"ani-1x": ("ID", 12.0), "chgnet-0.3.0": ("OOD", 4.0),
                         "chgnet-0.2.0": ("OOD", 4.5), "sevennet-0": ("OOD", 5.0),
                         "cgcnn-formation-energy": ("OOD", 3.0), **others},
                families=["ani", "chgnet", "chgnet", "sevenn", "cgcnn", "minimol", "text",
                          "baseline"])
    test = claim(study_answers(results, config()), "regimes").tests[0]
    assert test.verdict == UNTESTABLE and test.numbers["min_p"] == pytest.approx(0.5)
    regime_grid(folder, {"ani-1x": ("ID", 12.0), "morgan-fp": ("control", 6.)})
    assert claim(study_answers(results, config()), "regimes").tests[0].verdict == UNTESTABLE


def test_intrinsic_dimension_rules(results):
    tests = {t.label: t for t in claim(study_answers(results, config()), "intrinsic_dim").tests}
    # trained non-text IDs 8..11 within a factor 2 of their median; MiniLM (30 ± 1) above it;
    # the baseline's 4 is a control and does not count
    assert tests["qm9: similar"].verdict == AGREES
    assert "morgan-fp" not in tests["qm9: similar"].numbers["ids"]
    assert tests["qm9: text higher"].verdict == AGREES
    models = list(QM9)
    dims = np.array([2.0, 9.0, 10.0, 30.0, 9.5, 10.5, 5.0, 4.0])
    write_metric(results / "qm9" / "intrinsic_dim.h5", MetricFile(
        "intrinsic_dim", models, values=dims, extra={"ci_low": dims - 1, "ci_high": dims + 1},
        attrs={"modalities": list(QM9.values())}))
    tests = {t.label: t for t in claim(study_answers(results, config()), "intrinsic_dim").tests}
    assert tests["qm9: similar"].verdict == DISAGREES
    assert tests["qm9: text higher"].verdict == DISAGREES


def test_transfer_rules(results):
    folder = results / "qm9"
    models = ["chgnet-0.3.0", "sevennet-0", "minimol", "morgan-fp"]
    direct = np.array([0.8, 0.6, 0.1, 0.9])  # minimol's own probe is too weak to transfer
    r2 = np.array([[0.8, 0.6, 0.5, 0.7], [0.5, 0.6, 0.4, 0.5], [0.0, 0.0, 0.1, 0.0],
                   [0.8, 0.8, 0.8, 0.9]])

    def table(r2, direct, from_controls):
        write_table(folder / "transfer.h5", {
            "models": models, "r2": r2, "r2_direct": direct, "r2_lo": r2 - 0.05,
            "r2_hi": r2 + 0.05, "r2_from_controls": np.asarray(from_controls, float)},
            {"property": "gap"})

    table(r2, direct, [0.2, 0.1, 0.0, np.nan])
    test = claim(study_answers(results, config()), "transfer").tests[0]
    # owners chgnet (0.6/0.8, 0.5/0.8) and sevennet (0.5/0.6, 0.4/0.6): median 0.708
    assert test.verdict == AGREES, test.reason
    assert test.numbers["median_retention"] == pytest.approx(np.median(
        [0.6 / 0.8, 0.5 / 0.8, 0.5 / 0.6, 0.4 / 0.6]))
    assert test.numbers["n_pairs"] == 4 and test.numbers["share_beyond_controls"] == 1.0
    assert claim(study_answers(results, config()), "transfer").source.startswith(
        "a popular-press account")
    # a control that transfers as well: retention alone does not make an answer
    table(r2, direct, [0.6, 0.5, 0.0, np.nan])
    assert claim(study_answers(results, config()), "transfer").tests[0].verdict == INCONCLUSIVE
    table(r2 * np.where(np.eye(4), 1.0, 0.2), direct, [0.0, 0.0, 0.0, np.nan])
    assert claim(study_answers(results, config()), "transfer").tests[0].verdict == DISAGREES
    table(r2 * 0.1, direct * 0.1, [0.0, 0.0, 0.0, np.nan])
    assert claim(study_answers(results, config()), "transfer").tests[0].verdict == UNTESTABLE


def test_calibration_global_gone_local_survives(results):
    tests = {t.label: t for t in claim(study_answers(results, config()), "calibration").tests}
    # CKA: raw mean ≈ 0.64 against a null of 0.55: calibration keeps ≈ 20 % of it
    assert tests["qm9: global"].verdict == AGREES
    assert tests["qm9: global"].numbers["retained"] < 0.5
    assert tests["qm9: local"].verdict == AGREES
    # a CKA that survives calibration disagrees with the critique
    pairwise_file(results / "qm9" / "cka.h5", "cka", QM9, cross_matrix(list(QM9), 0.6),
                  null=0.02, p95=0.04)
    tests = {t.label: t for t in claim(study_answers(results, config()), "calibration").tests}
    assert tests["qm9: global"].verdict == DISAGREES


def test_calibration_shows_raw_and_chance_against_width(results):
    from scipy.stats import spearmanr

    from matteralign.io import read_metric

    cka = read_metric(results / "qm9" / "cka.h5")
    widths = {m: 16 * (i + 1) for i, m in enumerate(cka.models)}
    # a chance level that grows with the pair's widths, as Gröger et al. describe
    null = np.array([[0.1 + 0.001 * (widths[a] + widths[b]) for b in cka.models]
                     for a in cka.models])
    np.fill_diagonal(null, np.nan)
    cka.extra["null_mean"] = null
    cka.attrs["dims"] = [widths[m] for m in cka.models]
    write_metric(results / "qm9" / "cka.h5", cka)
    test = {t.label: t for t in claim(study_answers(results, config()), "calibration").tests}[
        "qm9: global"]
    found = test.numbers["width"]["cka"]
    models = sorted(found["width"])
    rho = spearmanr([found["width"][m] for m in models], [found["chance"][m] for m in models])
    assert found["rho_chance"] == pytest.approx(rho.statistic) and found["rho_chance"] > 0.9
    assert any("ρ(embedding width" in line for line in test.measured)


def test_crystals_have_no_cross_modality_test(results):
    answers = study_answers(results, config(datasets=("qm9", "coremof")))
    labels = [t.label for t in claim(answers, "cross_modality").tests]
    assert labels == ["qm9"]  # coremof is not a molecule dataset
    assert any(m.startswith("coremof/") for m in answers.missing)
    assert claim(answers, "convergence").tests[1].verdict == UNTESTABLE


def test_write_answers_page_and_json(results):
    figure = results / "qm9" / "figures" / "cknna.png"
    figure.parent.mkdir(parents=True)
    figure.write_bytes(b"\x89PNG\r\n\x1a\nplanted")
    out = results / "answers.html"
    answers = write_answers(results, config(), out)
    page = out.read_text()
    for c in answers.claims:
        assert f'<section id="{c.key}">' in page
    assert "data:image/png;base64," in page and "not produced" in page
    numbers = json.loads((results / "answers.json").read_text())
    assert [c["key"] for c in numbers["claims"]] == [c.key for c in answers.claims]
    assert numbers["claims"][0]["verdict"] == AGREES
    assert "NaN" not in (results / "answers.json").read_text()
    assert not list(results.glob(".answers*"))  # no temporary file left behind
    linked = write_answers(results, config(), results / "linked.html", embed_figures=False)
    assert linked.claims and 'src="qm9/figures/cknna.png"' in (results /
                                                               "linked.html").read_text()


def test_cli_answers(results, tmp_path, capsys):
    from matteralign.cli import main

    path = tmp_path / "study.yaml"
    path.write_text(json.dumps(config()))
    out = tmp_path / "page" / "answers.html"
    assert main(["answers", "--results", str(results), "--config", str(path),
                 "--out", str(out)]) == 0
    assert out.exists() and (tmp_path / "page" / "answers.json").exists()
    assert "agrees" in capsys.readouterr().out
    bad = config(reference="uma-s-1p1")
    assert main(["answers", "--results", str(results), "--config", json.dumps(bad),
                 "--out", str(tmp_path / "bad.html")]) == 2
    assert "analysis.reference" in capsys.readouterr().err


@pytest.mark.parametrize(("analysis", "key"), [
    ({"reference": "no-such-model"}, "analysis.reference"),
    ({"domains": {"chgnet-3": ["molecules"]}}, "analysis.domains.chgnet-3"),
    ({"transfer_property": {"coremof": "density"}}, "analysis.transfer_property.coremof"),
    ({"map_properties": {"qm9": ["gapp"]}}, "analysis.map_properties.qm9"),
])
def test_config_problems_name_the_key(analysis, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_analysis_config(config(**analysis))


def test_config_gap_suggests_the_property():
    with pytest.raises(ConfigError, match="Did you mean 'gap'"):
        check_analysis_config(config(map_properties={"qm9": ["gapp"]}))
    check_analysis_config(config(map_properties={"qm9": ["gap"]}, reference="ani-1x"))


def test_config_arg_fills_schema_defaults():
    raw = config()
    del raw["analysis"]
    filled = read_config_arg(json.dumps(raw))
    assert filled["analysis"] == {"enabled": True, "reference": None, "domains": {},
                                  "transfer_property": {}, "map_properties": {}}
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_arg("no/such/config.yaml")
