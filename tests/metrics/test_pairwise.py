"""The all-pairs driver: layout, equality with the single-pair functions, inputs, resampling."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from matteralign import metrics as M

from .conftest import correlated


@pytest.fixture(scope="module")
def emb() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    x, y = correlated(rng, 90, 7, 12)
    return {"a": x, "b": y, "c": rng.normal(size=(90, 3)), "d": np.abs(x[:, :5]) ** 1.5}


def test_registry() -> None:
    assert M.PAIRWISE_METRICS == ("cknna", "mutual_knn", "cka", "dcor", "information_imbalance",
                                  "gfre", "lfre")
    assert M.PER_MODEL_METRICS == ("intrinsic_dim",)
    for name in M.PAIRWISE_METRICS + M.PER_MODEL_METRICS:
        info = M.METRIC_INFO[name]
        assert isinstance(info["description"], str) and isinstance(info["symmetric"], bool)
    assert M.METRIC_INFO["information_imbalance"]["symmetric"] is False


def test_pairwise_equals_single_pair_functions(emb) -> None:
    res = M.pairwise(emb, k=8)
    names = list(emb)
    single = {
        "cknna": lambda x, y: M.cknna(x, y, k=8),
        "mutual_knn": lambda x, y: M.mutual_knn(x, y, k=8),
        "cka": M.cka,
        "dcor": M.dcor,
        "information_imbalance": M.information_imbalance,
    }
    for metric, f in single.items():
        mat, got_names = res[metric]
        assert got_names == names and mat.shape == (4, 4) and mat.dtype == np.float64
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if i != j:
                    assert mat[i, j] == pytest.approx(f(emb[a], emb[b]), rel=1e-12, abs=1e-14)
    ids, id_names = res["intrinsic_dim"]
    assert ids.shape == (4,) and id_names == names
    assert ids[1] == pytest.approx(M.twonn_id(emb["b"]), rel=1e-12)
    ii = res["information_imbalance"][0]
    assert not np.allclose(ii, ii.T)  # asymmetric, row = source
    assert np.allclose(np.diag(ii), 2 / 90)


def test_metric_subsets_are_consistent(emb) -> None:
    full = M.pairwise(emb, k=5)
    for name in ("information_imbalance", "dcor", "cknna", "intrinsic_dim"):
        alone = M.pairwise(emb, [name], k=5)
        assert set(alone) == {name}
        np.testing.assert_allclose(alone[name][0], full[name][0], rtol=1e-12, atol=1e-15)
    alias = M.pairwise(emb, ["ii", "twonn"])
    assert set(alias) == {"information_imbalance", "intrinsic_dim"}


def test_dtypes_and_torch_inputs(emb) -> None:
    torch = pytest.importorskip("torch")
    ref = M.pairwise({k: v.astype(np.float32).astype(np.float64) for k, v in emb.items()}, k=6)
    as32 = M.pairwise({k: v.astype(np.float32) for k, v in emb.items()}, k=6)
    tens = M.pairwise({k: torch.from_numpy(v.astype(np.float32)) for k, v in emb.items()}, k=6)
    on_cpu = M.pairwise(
        {k: torch.from_numpy(v.astype(np.float32)) for k, v in emb.items()}, k=6, device="cpu"
    )
    for name, (mat, _) in ref.items():
        for other in (as32, tens, on_cpu):
            assert isinstance(other[name][0], np.ndarray)
            np.testing.assert_allclose(other[name][0], mat, rtol=1e-9, atol=1e-12)
    x, y = emb["a"], emb["b"]
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    assert M.cknna(tx, ty, k=6) == pytest.approx(M.cknna(x, y, k=6), rel=1e-12)
    assert M.dcor(tx, ty) == pytest.approx(M.dcor(x, y), rel=1e-12)
    assert M.information_imbalance(tx, ty) == M.information_imbalance(x, y)


def test_bootstrap_and_permutation_keys(emb) -> None:
    sub = {k: emb[k] for k in ("a", "b", "c")}
    res = M.pairwise(
        sub, ["cknna", "dcor", "ii", "intrinsic_dim"], k=5, bootstrap=6, permutations=9, seed=3
    )
    again = M.pairwise(
        sub, ["cknna", "dcor", "ii", "intrinsic_dim"], k=5, bootstrap=6, permutations=9, seed=3
    )
    for name in ("cknna", "dcor", "information_imbalance"):
        for stat in ("ci_low", "ci_high", "boot_std", "null_mean", "null_std", "p_value"):
            key = f"{name}/{stat}"
            assert res[key][0].shape == (3, 3) and res[key][1] == ["a", "b", "c"]
            np.testing.assert_array_equal(res[key][0], again[key][0])  # seeded
        assert np.all(res[f"{name}/ci_low"][0] <= res[f"{name}/ci_high"][0] + 1e-15)
        assert np.isnan(np.diag(res[f"{name}/p_value"][0])).all()
    assert res["intrinsic_dim/ci_low"][0].shape == (3,)
    assert "intrinsic_dim/null_mean" not in res
    # a and b share a latent signal: every shuffle is less aligned than the data
    assert res["dcor/p_value"][0][0, 1] == pytest.approx(1 / 10)
    assert res["information_imbalance/p_value"][0][0, 1] == pytest.approx(1 / 10)
    # the null of an independent pair sits at the observed chance level
    assert res["information_imbalance/null_mean"][0][0, 2] == pytest.approx(1.0, abs=0.15)


def test_errors(emb) -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        M.pairwise(emb, ["cosine"])
    with pytest.raises(ValueError, match="expected shape"):
        M.pairwise({"a": emb["a"], "b": emb["b"][:50]})
    with pytest.raises(ValueError, match="k="):
        M.cknna(emb["a"], emb["b"], k=90)
    with pytest.raises(ValueError, match="row counts"):
        M.cka(emb["a"], emb["b"][:10])
    with pytest.raises(ValueError, match="estimator"):
        M.twonn_id(emb["a"], "bogus")


def test_duplicates_are_dropped_from_twonn_with_warning() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    x[1] = x[0]
    with pytest.warns(RuntimeWarning, match="duplicate"):
        value = M.twonn_id(x)
    assert np.isfinite(value)


def test_peak_memory_is_not_quadratic() -> None:
    """N = 6000: one float64 N×N matrix is 288 MB; the streamed engine stays far below."""
    rng = np.random.default_rng(1)
    n = 6000
    emb = {f"m{i}": rng.normal(size=(n, 4)).astype(np.float32) for i in range(3)}
    tracemalloc.start()
    M.pairwise(emb, ["cknna", "dcor", "ii", "intrinsic_dim"], k=10, memory_budget=16 * 2**20)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 0.25 * n * n * 8, peak
