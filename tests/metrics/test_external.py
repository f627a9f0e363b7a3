"""Agreement with the reference packages: ``dcor`` and dadapy."""

from __future__ import annotations

import numpy as np
import pytest

from matteralign import metrics as M

from .conftest import correlated, import_dadapy_parts

dcor_pkg = pytest.importorskip("dcor")


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(11)
    t = np.sort(rng.uniform(0, 2 * np.pi, 300))
    helix = np.c_[np.cos(t), np.sin(t), 0.2 * t]
    return {
        "independent": (rng.normal(size=(300, 16)), rng.normal(size=(300, 32))),
        "correlated": correlated(rng, 300, 24, 10),
        "helix_vs_angle": (helix, np.c_[t, t**2] + 0.05 * rng.normal(size=(300, 2))),
        "offset_1d": (rng.normal(size=(300, 1)) + 1e3, rng.normal(size=(300, 1)) * 1e-3),
    }


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_dcor_matches_package(case: str) -> None:
    x, y = CASES[case]
    assert M.dcor(x, y) == pytest.approx(dcor_pkg.distance_correlation(x, y), abs=1e-9)
    assert M.dcor(x, y, unbiased=True) == pytest.approx(
        dcor_pkg.u_distance_correlation_sqr(x, y), abs=1e-9
    )


def test_dcor_float32_input_reaches_1e6() -> None:
    """float32 embeddings: upcast before the Gram trick keeps us within 1e-6 of the
    package evaluated on the same (float32-valued) numbers in float64."""
    rng = np.random.default_rng(5)
    x, y = correlated(rng, 400, 64, 48)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    ref = dcor_pkg.distance_correlation(x32.astype(np.float64), y32.astype(np.float64))
    assert abs(M.dcor(x32, y32) - ref) < 1e-9


@pytest.fixture(scope="module")
def dadapy_parts():
    return import_dadapy_parts()


# dadapy ranks with sklearn's float64 Gram-trick distances, which lose ~1e-5 relative on the
# 1-d offset case and reorder near-ties there; that case is covered by the cdist reference.
DADAPY_CASES = sorted(c for c in CASES if c != "offset_1d")


@pytest.mark.parametrize("case", DADAPY_CASES)
def test_information_imbalance_matches_dadapy(case: str, dadapy_parts) -> None:
    return_imbalance, compute_nn_distances, _ = dadapy_parts
    x, y = CASES[case]
    n = x.shape[0]
    _, ix = compute_nn_distances(x, maxk=n - 1, metric="euclidean")
    _, iy = compute_nn_distances(y, maxk=n - 1, metric="euclidean")
    rng = np.random.default_rng(0)
    assert M.information_imbalance(x, y) == pytest.approx(return_imbalance(ix, iy, rng), abs=1e-12)
    assert M.information_imbalance(y, x) == pytest.approx(return_imbalance(iy, ix, rng), abs=1e-12)


@pytest.mark.parametrize("case", DADAPY_CASES)
def test_twonn_matches_dadapy(case: str, dadapy_parts) -> None:
    _, _, IdEstimation = dadapy_parts
    for x in CASES[case]:
        ie = IdEstimation(coordinates=np.ascontiguousarray(x), maxk=5, verbose=False)
        ml = ie.compute_id_2NN(algorithm="ml", mu_fraction=1.0)[0]
        fit = ie.compute_id_2NN(algorithm="base", mu_fraction=0.9)[0]
        assert M.twonn_id(x, "mle") == pytest.approx(ml, rel=1e-9)
        # dadapy fits with scipy's iterative curve_fit; ours is the closed-form slope
        assert M.twonn_id(x, "fit", discard=0.1) == pytest.approx(fit, rel=1e-6)


def test_twonn_recovers_known_dimension() -> None:
    rng = np.random.default_rng(2)
    z = rng.uniform(size=(3000, 3))
    x = z @ rng.normal(size=(3, 40))  # a 3-d linear manifold in 40-d
    assert M.twonn_id(x, "mle") == pytest.approx(3.0, abs=0.25)
    assert M.twonn_id(x, "fit") == pytest.approx(3.0, abs=0.25)
