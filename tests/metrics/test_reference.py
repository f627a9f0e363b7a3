"""Every public function against the dense float64 reference formulas in reference.py."""

from __future__ import annotations

import numpy as np
import pytest

from matteralign import metrics as M

from . import reference as R
from .conftest import correlated

N = 120


def _datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    out = {}
    out["gaussian"] = (rng.normal(size=(N, 6)), rng.normal(size=(N, 9)))
    out["correlated"] = correlated(rng, N, 12, 7)
    # three tight clusters: kNN lists mostly inside a cluster
    centres = rng.normal(scale=5.0, size=(3, 5))
    lab = rng.integers(0, 3, N)
    x = centres[lab] + 0.3 * rng.normal(size=(N, 5))
    out["clusters"] = (x, x @ rng.normal(size=(5, 3)) + 0.1 * rng.normal(size=(N, 3)))
    # a large common offset (anisotropic 'LLM-like' embeddings): exercises centring
    z = rng.normal(size=(N, 8))
    out["offset"] = (z + 300.0, np.sin(z[:, :4]) - 50.0)
    # distinct integer grid points: many exactly tied distances and inner products
    grid = np.array(np.meshgrid(*[np.arange(-3, 4)] * 3)).reshape(3, -1).T
    pick = rng.choice(len(grid), N, replace=False)
    gx = grid[pick].astype(float)
    out["integer_ties"] = (gx, np.abs(gx) + grid[rng.permutation(len(grid))[:N]] % 2)
    return out


DATA = _datasets()
CASES = sorted(DATA)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("k", [1, 5, 17])
def test_cknna_and_mutual_knn(case: str, k: int) -> None:
    x, y = DATA[case]
    assert M.cknna(x, y, k=k) == pytest.approx(R.cknna_ref(x, y, k), abs=1e-9, rel=1e-9)
    assert M.mutual_knn(x, y, k=k) == pytest.approx(R.mutual_knn_ref(x, y, k), abs=1e-12)


def test_cknna_eps_option() -> None:
    """platonic-rep's 1e-6 in the denominator is available but off by default."""
    x, y = DATA["correlated"]
    K, L = x @ x.T, y @ y.T
    mk, ml = R.knn_mask(x, 10), R.knn_mask(y, 10)
    kl = R.hsic_unbiased(mk * ml * K, mk * ml * L)
    den = np.sqrt(R.hsic_unbiased(mk * K, mk * K) * R.hsic_unbiased(ml * L, ml * L))
    assert M.cknna(x, y, k=10) == pytest.approx(kl / den, rel=1e-9)
    assert M.cknna(x, y, k=10, eps=1e-6) == pytest.approx(kl / (den + 1e-6), rel=1e-9)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("unbiased", [False, True])
def test_cka(case: str, unbiased: bool) -> None:
    x, y = DATA[case]
    assert M.cka(x, y, unbiased=unbiased) == pytest.approx(
        R.cka_ref(x, y, unbiased), abs=1e-9, rel=1e-7
    )


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("unbiased", [False, True])
def test_dcor(case: str, unbiased: bool) -> None:
    x, y = DATA[case]
    assert M.dcor(x, y, unbiased=unbiased) == pytest.approx(R.dcor_ref(x, y, unbiased), abs=1e-9)


@pytest.mark.parametrize("case", CASES)
def test_information_imbalance(case: str) -> None:
    x, y = DATA[case]
    assert M.information_imbalance(x, y) == pytest.approx(R.ii_ref(x, y), abs=1e-12)
    assert M.information_imbalance(y, x) == pytest.approx(R.ii_ref(y, x), abs=1e-12)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("estimator", ["mle", "fit"])
def test_twonn(case: str, estimator: str) -> None:
    x, _ = DATA[case]
    assert M.twonn_id(x, estimator) == pytest.approx(R.twonn_ref(x, estimator), rel=1e-9)
    assert M.twonn_id(x, "fit", discard=0.3) == pytest.approx(R.twonn_ref(x, "fit", 0.3), rel=1e-9)


@pytest.mark.parametrize("block", [1, 7, 50, None])
def test_pairwise_blocks_match_reference(block: int | None) -> None:
    """Streaming in blocks (including 1-row blocks and a ragged last block) is exact."""
    rng = np.random.default_rng(3)
    x, y = correlated(rng, 61, 5, 8)
    z = rng.normal(size=(61, 3))
    names = ["x", "y", "z"]
    emb = dict(zip(names, [x, y, z], strict=True))
    res = M.pairwise(emb, k=6, block_size=block)
    for i, a in enumerate(emb.values()):
        assert res["intrinsic_dim"][0][i] == pytest.approx(R.twonn_ref(a), rel=1e-9)
        for j, b in enumerate(emb.values()):
            if i == j:
                continue
            assert res["cknna"][0][i, j] == pytest.approx(R.cknna_ref(a, b, 6), rel=1e-9)
            assert res["mutual_knn"][0][i, j] == pytest.approx(R.mutual_knn_ref(a, b, 6))
            assert res["cka"][0][i, j] == pytest.approx(R.cka_ref(a, b), rel=1e-9)
            assert res["dcor"][0][i, j] == pytest.approx(R.dcor_ref(a, b), abs=1e-9)
            assert res["information_imbalance"][0][i, j] == pytest.approx(R.ii_ref(a, b), abs=1e-12)
    assert res["cknna"][1] == names


def test_unbiased_variants_in_pairwise() -> None:
    x, y = DATA["correlated"]
    res = M.pairwise({"x": x, "y": y}, ["cka", "dcor"], cka_unbiased=True, dcor_unbiased=True)
    assert res["cka"][0][0, 1] == pytest.approx(R.cka_ref(x, y, True), rel=1e-7)
    assert res["dcor"][0][0, 1] == pytest.approx(R.dcor_ref(x, y, True), abs=1e-9)


@pytest.mark.parametrize("offset", [0.0, 2.29, 1e3])
def test_duplicate_points_sit_at_distance_zero(offset):
    """Groups of identical embeddings (isomers under a composition baseline, duplicate
    fingerprints) far from the origin: the Gram trick alone leaves them ~1e-8 apart
    (√ of its cancellation error), which moved dCor by 3e-8 before near-zero distances
    were recomputed directly."""
    rng = np.random.default_rng(7)
    base = rng.normal(size=(6, 4)) + offset
    x = base[rng.integers(0, 6, size=40)]  # 40 rows, only 6 distinct
    y = np.tanh(x @ rng.normal(size=(4, 3))) + 0.1 * rng.normal(size=(40, 3))
    assert M.dcor(x, y) == pytest.approx(R.dcor_ref(x, y), abs=1e-12)
    assert M.dcor(x, y, unbiased=True) == pytest.approx(
        R.dcor_ref(x, y, unbiased=True), abs=1e-12)
    out = M.pairwise({"x": x, "y": y}, metrics=["dcor"])
    assert out["dcor"][0][0, 1] == pytest.approx(R.dcor_ref(x, y), abs=1e-12)
