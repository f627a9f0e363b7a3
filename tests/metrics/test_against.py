"""One new model against a zoo gives pairwise's numbers for the (new, zoo model) entries."""

from __future__ import annotations

import numpy as np
import pytest

from matteralign.analysis.preprocess import preprocess
from matteralign.metrics import PAIRWISE_METRICS, PER_MODEL_METRICS, pairwise
from matteralign.metrics.against import against, dense_bytes, rank_matrix
from matteralign.metrics.resampling import half_samples
from matteralign.metrics.spec import METRICS

ALL = PAIRWISE_METRICS + PER_MODEL_METRICS


def _study(n: int = 160, dims: tuple[int, ...] = (5, 12, 30), seed: int = 0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 6))

    def one(d: int) -> np.ndarray:
        return preprocess(np.tanh(z @ rng.normal(size=(6, d))) + 0.4 * rng.normal(size=(n, d)),
                          "l2")

    return one(9), {f"m{i}": one(d) for i, d in enumerate(dims)}


def _pairwise_entries(result: dict, key: str) -> np.ndarray:
    arr = result[key][0]
    if key.endswith("/replicates"):  # half-sample replicates: (B, M, M) or (B, M)
        if arr.ndim == 2:
            return arr[:, :1]
        return np.stack([arr[:, 0, 1:], arr[:, 1:, 0]], axis=1)
    return arr[:1] if arr.ndim == 1 else np.stack([arr[0, 1:], arr[1:, 0]])


@pytest.mark.parametrize("unbiased", [False, True])
def test_values_and_intervals_equal_pairwise_for_every_metric(unbiased: bool) -> None:
    new, zoo = _study()
    kwargs = {"k": 7, "bootstrap": 4, "seed": 3, "cka_unbiased": unbiased,
              "dcor_unbiased": unbiased}
    mine, names = against(new, zoo, permutations=3, **kwargs)
    reference = pairwise({"new": new, **zoo}, **kwargs)
    assert names == list(zoo)
    assert {key.split("/")[0] for key in mine} == {spec.name for spec in METRICS}
    for key in reference:
        np.testing.assert_allclose(mine[key], _pairwise_entries(reference, key), rtol=0,
                                   atol=1e-12, err_msg=key)


def test_null_is_the_metric_of_the_new_models_shuffled_rows() -> None:
    new, zoo = _study(n=120)
    permutations, seed = 3, 5
    mine, _ = against(new, zoo, PAIRWISE_METRICS, k=6, bootstrap=2, permutations=permutations,
                      seed=seed)
    rng = np.random.default_rng(seed)
    half_samples(rng, len(new), 2)  # the half-samples are drawn first, as in against
    replicates = []
    for _ in range(permutations):
        shuffled = new[rng.permutation(len(new))]
        result = pairwise({"new": shuffled, **zoo}, PAIRWISE_METRICS, k=6)
        replicates.append({key: _pairwise_entries(result, key) for key in result})
    for metric in PAIRWISE_METRICS:
        stack = np.stack([r[metric] for r in replicates])
        np.testing.assert_allclose(mine[f"{metric}/null_mean"], stack.mean(0), atol=1e-12)
        observed = mine[metric]
        higher = next(s for s in METRICS if s.name == metric).higher_is_aligned
        as_aligned = (stack >= observed) if higher else (stack <= observed)
        np.testing.assert_array_equal(mine[f"{metric}/p_value"],
                                      (1 + as_aligned.sum(0)) / (1 + permutations))


def test_an_identical_copy_is_perfectly_aligned_and_above_every_null() -> None:
    new, zoo = _study()
    zoo["copy"] = new.copy()
    result, names = against(new, zoo, ALL, k=8, permutations=19)
    j = names.index("copy")
    for metric in ("cknna", "mutual_knn", "cka", "dcor"):
        np.testing.assert_allclose(result[metric][:, j], 1.0, atol=1e-12)
        assert (result[metric][:, j] > result[f"{metric}/null_p95"][:, j]).all()
        np.testing.assert_allclose(result[f"{metric}/p_value"][:, j], 1 / 20)
    # with P = 9 no value can pass the threshold: p >= 1/10 > 0.05
    few, _ = against(new, zoo, ["cka"], k=8, permutations=9)
    assert np.isinf(few["cka/null_p95"]).all()
    # each point's nearest neighbour is its own nearest neighbour: rank 1, Δ = 2/N
    np.testing.assert_allclose(result["information_imbalance"][:, j], 2 / len(new))


def test_an_orthogonal_rotation_leaves_cka_and_cknna_at_one() -> None:
    new, _ = _study()
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(9, 9)))
    result, _ = against(new, {"rotated": new @ rotation}, ("cka", "cknna"), k=8)
    np.testing.assert_allclose(result["cka"], 1.0, atol=1e-10)
    np.testing.assert_allclose(result["cknna"], 1.0, atol=1e-10)


def test_rank_matrix_follows_the_information_imbalance_tie_rule() -> None:
    # row 0: distances 0 (self), 2, 1, 1, 2 -> ranks: j=2 and j=3 tie at 1 (lower index first)
    d = np.array([[0, 2, 1, 1, 2], [2, 0, 1, 3, 0], [1, 1, 0, 2, 2], [1, 3, 2, 0, 1],
                  [2, 0, 2, 1, 0]], dtype=float)
    rank = rank_matrix(d)
    assert rank[0].tolist()[1:] == [3, 1, 2, 4]
    # row 1 has a duplicate at distance 0 (column 4), which ranks first, before the others
    assert rank[1, 4] == 1 and rank[1, 2] == 2 and rank[1, 0] == 3 and rank[1, 3] == 4
    # against the definition: 1 + #{l != i: d_il < d_ij} + #{l != i, l < j: d_il == d_ij}
    for i in range(5):
        for j in range(5):
            if i != j:
                others = [m for m in range(5) if m != i]
                expected = 1 + sum(d[i, m] < d[i, j] for m in others) + \
                    sum(d[i, m] == d[i, j] and m < j for m in others)
                assert rank[i, j] == expected


def test_bad_input_names_the_problem() -> None:
    new, zoo = _study(n=40)
    with pytest.raises(ValueError, match="expected shape"):
        against(new[:30], zoo)
    with pytest.raises(ValueError, match="k=25 must be"):
        against(new, zoo, k=25, bootstrap=2)
    with pytest.raises(ValueError, match="no zoo models"):
        against(new, {})
    bad = new.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="new model"):
        against(bad, zoo, k=5)


def test_dense_memory_estimate_grows_with_n_squared_and_the_zoo() -> None:
    assert dense_bytes(2000, 10) == 4 * dense_bytes(1000, 10)
    assert dense_bytes(1000, 20) > dense_bytes(1000, 10)
