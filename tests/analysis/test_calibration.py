"""Permutation-calibrated alignment: the null sits at chance, planted alignment is significant."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from matteralign.analysis.calibration import above_chance, calibrated_score
from matteralign.io import read_metric
from matteralign.metrics import cka, dcor, information_imbalance, pairwise

N, P = 150, 40


@pytest.fixture(scope="module")
def independent() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {"x": rng.normal(size=(N, 6)), "y": rng.normal(size=(N, 4))}


@pytest.fixture(scope="module")
def null(independent):
    return pairwise(independent, ["cka", "dcor", "ii"], permutations=P, seed=11)


def test_null_p95_is_the_order_statistic_of_the_shuffled_scores(independent, null) -> None:
    # replay pairwise's seeded shuffles (one permutation per model per replicate) with the
    # single-pair functions
    rng = np.random.default_rng(11)
    x, y = independent["x"], independent["y"]
    scores = {"cka": [], "dcor": [], "information_imbalance": []}
    for _ in range(P):
        px, py = rng.permutation(N), rng.permutation(N)
        scores["cka"].append(cka(x[px], y[py]))
        scores["dcor"].append(dcor(x[px], y[py]))
        scores["information_imbalance"].append(information_imbalance(x[px], y[py]))
    rank = int(np.ceil(0.95 * (P + 1)))  # the order statistic beyond which p <= 0.05
    for name, index in (("cka", rank - 1), ("dcor", rank - 1),
                        ("information_imbalance", P - rank)):
        p95 = null[f"{name}/null_p95"][0]
        assert p95[0, 1] == pytest.approx(np.sort(scores[name])[index], abs=1e-12)
        assert null[f"{name}/null_mean"][0][0, 1] == pytest.approx(np.mean(scores[name]),
                                                                    abs=1e-12)
        assert np.isnan(np.diag(p95)).all()
    # lower-is-aligned: the threshold is the lower tail of the null
    assert null["information_imbalance/null_p95"][0][0, 1] < np.mean(
        scores["information_imbalance"])


def _permutation_mean(a: np.ndarray, b: np.ndarray) -> float:
    """E over uniform permutations π of Σ_ij A_ij B_π(i)π(j) for double-centred A, B:
    tr(A) tr(B) / (n − 1) (off-diagonal sums are −tr for centred matrices; Mantel 1967)."""
    return float(np.trace(a) * np.trace(b) / (len(a) - 1))


def _centre(m: np.ndarray) -> np.ndarray:
    return m - m.mean(0) - m.mean(1)[:, None] + m.mean()


def test_null_of_independent_embeddings_sits_at_chance(independent, null) -> None:
    x, y = independent["x"], independent["y"]
    # linear CKA: the denominators are permutation invariant, so the exact null mean is
    # E<K̃, P L̃ Pᵀ> / (‖K̃‖ ‖L̃‖)
    k, l_ = _centre(x @ x.T), _centre(y @ y.T)
    exact = _permutation_mean(k, l_) / np.sqrt((k * k).sum() * (l_ * l_).sum())
    mean, std = null["cka/null_mean"][0][0, 1], null["cka/null_std"][0][0, 1]
    assert mean == pytest.approx(exact, abs=4 * std / np.sqrt(P))
    # dCor² likewise from the double-centred distance matrices: E[dCor²] = mean² + var
    a = _centre(np.linalg.norm(x[:, None] - x[None], axis=-1))
    b = _centre(np.linalg.norm(y[:, None] - y[None], axis=-1))
    exact_sq = _permutation_mean(a, b) / np.sqrt((a * a).sum() * (b * b).sum())
    mean_d, std_d = null["dcor/null_mean"][0][0, 1], null["dcor/null_std"][0][0, 1]
    assert mean_d**2 + std_d**2 * (P - 1) / P == pytest.approx(exact_sq, rel=0.1)
    for name in ("cka", "dcor"):
        obs = null[name][0][0, 1]
        calibrated = calibrated_score(obs, null[f"{name}/null_mean"][0][0, 1], True)
        assert abs(calibrated) < 0.05  # chance -> about 0
        assert above_chance(obs, null[f"{name}/null_p95"][0][0, 1], True) == 0.0
    # the information imbalance of unrelated neighbourhoods is 1 in expectation (random ranks)
    ii_mean = null["information_imbalance/null_mean"][0][0, 1]
    assert ii_mean == pytest.approx(1.0, abs=0.03)
    obs = null["information_imbalance"][0][0, 1]
    ii_std = null["information_imbalance/null_std"][0][0, 1]
    # Δ is noisy at small N (sd ≈ 2/√(12 N)): the observed value is within the null's spread
    assert abs(calibrated_score(obs, ii_mean, False)) < 4 * ii_std / ii_mean


def test_planted_aligned_pair_is_significant_and_calibrated_near_one() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(N, 6))
    rotation, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    emb = {"x": x, "y": x @ rotation + 1e-3 * rng.normal(size=(N, 6))}
    res = pairwise(emb, ["cka", "dcor", "ii"], permutations=20, seed=2)
    for name, higher in (("cka", True), ("dcor", True), ("information_imbalance", False)):
        obs = res[name][0][0, 1]
        score = calibrated_score(obs, res[f"{name}/null_mean"][0][0, 1], higher)
        assert score > 0.97
        assert above_chance(obs, res[f"{name}/null_p95"][0][0, 1], higher) == 1.0
        assert res[f"{name}/p_value"][0][0, 1] == pytest.approx(1 / 21)


def test_calibrated_score_closed_form() -> None:
    assert calibrated_score(0.6, 0.2, True) == pytest.approx(0.5)
    assert calibrated_score(0.1, 0.2, True) == pytest.approx(-0.125)  # below chance
    assert calibrated_score(0.25, 1.0, False) == pytest.approx(0.75)
    assert np.isnan(calibrated_score(1.0, 1.0, True))  # the null already at the ceiling
    assert np.isnan(calibrated_score(0.3, 0.0, False))
    np.testing.assert_array_equal(above_chance([0.5, 0.1, np.nan], [0.3, 0.3, 0.3], True),
                                  [1.0, 0.0, np.nan])
    np.testing.assert_array_equal(above_chance([0.5, 0.9], [0.8, 0.8], False), [1.0, 0.0])


@given(null=st.floats(-0.5, 0.95), obs=st.floats(-1, 1), upper=st.floats(1.0, 2.0))
def test_calibration_maps_chance_to_zero_and_perfect_to_one(null, obs, upper) -> None:
    assert calibrated_score(null, null, True, upper) == pytest.approx(0.0, abs=1e-12)
    assert calibrated_score(upper, null, True, upper) == pytest.approx(1.0)
    # monotone in the observed score
    assert calibrated_score(obs + 0.01, null, True, upper) > calibrated_score(obs, null, True,
                                                                              upper)


def test_metric_files_gain_calibration_with_bootstrap_and_permutations(aligned_study) -> None:
    for metric, formula in (("cknna", "(obs - null_mean)"),
                            ("information_imbalance", "(null_mean - obs)")):
        result = read_metric(aligned_study / f"{metric}.h5")
        for key in ("calibrated", "null_p95", "above_chance"):
            assert result.extra[key].shape == result.matrix.shape
            assert np.isnan(np.diag(result.extra[key])).all()
        assert formula in result.attrs["calibration"]
        higher = metric == "cknna"
        np.testing.assert_allclose(
            result.extra["calibrated"],
            calibrated_score(result.matrix, result.extra["null_mean"], higher), equal_nan=True)
        off = ~np.eye(len(result.models), dtype=bool)
        assert set(np.unique(result.extra["above_chance"][off])) <= {0.0, 1.0}
    # the independent embeddings (morgan-fp, random-init here) are not above chance to ani-1x
    cknna = read_metric(aligned_study / "cknna.h5")
    i, j = cknna.models.index("ani-1x"), cknna.models.index("morgan-fp")
    assert cknna.extra["above_chance"][i, j] == 0.0
    assert cknna.extra["above_chance"][i, cknna.models.index("chgnet-0.3.0")] == 1.0
    assert "calibrated" not in read_metric(aligned_study / "intrinsic_dim.h5").extra


def test_no_calibration_without_bootstrap(tmp_path) -> None:
    from tests.analysis.conftest import write_aligned_study

    root = write_aligned_study(tmp_path, n=60, bootstrap=0, permutations=3)
    result = read_metric(root / "cka.h5")
    assert "calibrated" not in result.extra and "calibration" not in result.attrs
    assert "null_p95" in result.extra  # pairwise's threshold is kept whenever P > 0


def test_heatmap_hatches_entries_not_above_chance(aligned_study, tmp_path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matteralign.plots.alignment import _hatch_not_above_chance, plot_metric

    above = np.array([[np.nan, 1.0, 0.0], [1.0, np.nan, 0.0], [0.0, 1.0, np.nan]])
    fig, ax = plt.subplots()
    assert _hatch_not_above_chance(ax, above, [2, 0, 1]) == 3
    cells = sorted((p.get_x(), p.get_y()) for p in ax.patches)
    # displayed order [2, 0, 1]: zeros at (0,2)->(1,0), (1,2)->(2,0), (2,0)->(0,1)
    assert cells == [(0.0, 1.0), (0.0, 2.0), (1.0, 0.0)]
    plt.close(fig)
    plot_metric(aligned_study / "cknna.h5", tmp_path / "cknna.png")
    assert (tmp_path / "cknna.png").stat().st_size > 10_000


def test_heatmap_labels_mark_both_kinds_of_control():
    from matteralign.io import MetricFile
    from matteralign.plots.alignment import _labels

    result = MetricFile("cka", ["sevennet-0", "composition", "chgnet-0.3.0"],
                        matrix=np.eye(3), attrs={"random_init": ["False", "False", "True"]})
    assert _labels(result) == ["sevennet-0", "composition (baseline)",
                               "chgnet-0.3.0 (random-init)"]


@given(st.integers(1, 120), st.integers(0, 2**32 - 1), st.booleans())
def test_beyond_the_threshold_exactly_when_p_is_at_most_005(p: int, seed: int,
                                                             higher: bool) -> None:
    """The threshold and the p-value (1 + #as aligned)/(1 + P) give the same decision, ties
    included; with P < 19 nothing is above chance."""
    from matteralign.metrics.resampling import chance_threshold, permutation_p

    rng = np.random.default_rng(seed)
    nulls = rng.integers(0, 6, size=(p, 7)).astype(float)  # many ties
    observed = rng.integers(0, 7, size=7).astype(float)
    pv = permutation_p(observed, nulls, higher)
    threshold = chance_threshold(nulls, higher)
    beyond = observed > threshold if higher else observed < threshold
    np.testing.assert_array_equal(beyond, pv <= 0.05)
    if p < 19:
        assert not beyond.any()


def test_benjamini_hochberg_matches_scipy() -> None:
    from scipy.stats import false_discovery_control

    from matteralign.analysis.calibration import benjamini_hochberg

    p = np.random.default_rng(3).uniform(size=40) ** 3
    p[[3, 9]] = np.nan
    q = benjamini_hochberg(p)
    finite = np.isfinite(p)
    np.testing.assert_allclose(q[finite], false_discovery_control(p[finite]), rtol=1e-12)
    assert np.isnan(q[~finite]).all()


def test_groger_score_is_the_margin_over_the_pooled_order_statistic() -> None:
    """Gröger et al.: obs minus the ceil(0.95 (P + 1))-th value of obs and nulls together,
    scaled to the maximum, clipped at 0."""
    from matteralign.analysis.calibration import groger_score
    from matteralign.metrics.resampling import null_summary

    nulls = [np.array([[v]]) for v in np.linspace(0.0, 0.19, 20)]  # P = 20
    for obs, expected in ((0.6, (0.6 - 0.19) / (1 - 0.19)), (0.1, 0.0)):
        q = null_summary(nulls, np.array([[obs]]), True)["null_pooled_q95"]
        # rank ceil(0.95 * 21) = 20 of the 21 pooled values
        pooled = np.sort(np.append(np.linspace(0.0, 0.19, 20), obs))
        assert q[0, 0] == pytest.approx(pooled[19])
        assert groger_score(obs, q, True)[0, 0] == pytest.approx(expected)
