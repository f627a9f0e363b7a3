"""PCA maps of embeddings and the model tree from alignment distances."""

from __future__ import annotations

import numpy as np
import pytest

from matteralign.analysis.maps import model_maps, pca, umap_available
from matteralign.analysis.tree import alignment_distance, model_tree
from matteralign.cli import main
from matteralign.metrics import pairwise


def test_pca_matches_scikit_learn() -> None:
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 9)) + 3.0
    scores, explained = pca(x, 3)
    ref = PCA(n_components=3, svd_solver="full").fit(x)
    np.testing.assert_allclose(explained, ref.explained_variance_ratio_, rtol=1e-10)
    reference = ref.transform(x)
    for k in range(3):  # axes agree up to sign
        sign = np.sign(scores[:, k] @ reference[:, k])
        np.testing.assert_allclose(scores[:, k], sign * reference[:, k], atol=1e-9)
    # the fixed sign: each axis's largest-magnitude loading is positive
    for k, axis in enumerate(ref.components_):
        axis = axis * np.sign(axis[np.abs(axis).argmax()])
        np.testing.assert_allclose(scores[:, k], (x - x.mean(0)) @ axis, atol=1e-9)


def test_pca_of_rank_one_data_has_an_empty_second_axis() -> None:
    t = np.linspace(-1, 1, 50)[:, None]
    scores, explained = pca(t @ np.array([[1.0, 2.0, -1.0]]))
    assert explained[0] == pytest.approx(1.0)
    assert explained[1] == pytest.approx(0.0, abs=1e-20)
    assert np.abs(scores[:, 1]).max() < 1e-12


def test_tree_distance_to_an_identical_copy_is_zero() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 5))
    emb = {"a": x, "a-copy": x.copy(), "b": rng.normal(size=(120, 4)),
           "c": np.tanh(x @ rng.normal(size=(5, 7)))}
    for metric in ("cknna", "cka"):
        matrix, names = pairwise(emb, [metric], k=10)[metric]
        tree = model_tree(names, matrix)
        assert tree.distance[0, 1] == pytest.approx(0.0, abs=1e-7)
        assert np.all(np.diag(tree.distance) == 0)
        first = tree.linkage[0]  # the copy is joined first, at height 0
        assert sorted(first[:2]) == [0, 1] and first[2] == pytest.approx(0.0, abs=1e-7)


def test_alignment_distance_closed_form_and_triangle_inequality_for_cka() -> None:
    c = np.array([[1.0, 0.6, -0.2], [0.4, 1.0, np.nan], [-0.2, np.nan, 1.0]])
    d, n_missing = alignment_distance(c)
    assert d[0, 1] == pytest.approx(np.sqrt(0.5))  # symmetrised (0.6 + 0.4)/2
    assert d[0, 2] == 1.0 and d[1, 2] == 1.0 and n_missing == 1
    # CKA is a cosine of centred Gram matrices, so sqrt(1 - CKA) is a metric
    rng = np.random.default_rng(2)
    base = rng.normal(size=(80, 3))
    emb = {f"m{i}": np.tanh(base @ rng.normal(size=(3, 4)) + i * 0.3 * rng.normal(size=(80, 4)))
           for i in range(6)}
    matrix, _ = pairwise(emb, ["cka"])["cka"]
    d, _ = alignment_distance(matrix)
    for i in range(6):
        for j in range(6):
            assert np.all(d[i, j] <= d[i, :] + d[:, j] + 1e-12)
    with pytest.raises(ValueError, match="square"):
        alignment_distance(np.ones((2, 3)))


def test_umap_is_seeded_deterministic_and_its_parameters_are_on_the_figure(
        aligned_study, tmp_path) -> None:
    from matteralign.analysis.maps import UmapSettings

    embeddings = sorted(str(p) for p in (aligned_study / "embeddings").glob("*.h5"))[:2]
    settings = UmapSettings(n_neighbors=10, min_dist=0.3)
    first = model_maps(aligned_study / "structures.h5", embeddings, "energy", seed=5,
                       umap=settings)
    again = model_maps(aligned_study / "structures.h5", embeddings, "energy", seed=5,
                       umap=settings)
    other = model_maps(aligned_study / "structures.h5", embeddings, "energy", seed=6,
                       umap=settings)
    for a, b, c in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(a.umap, b.umap)
        assert not np.array_equal(a.umap, c.umap)
    assert all(m.umap is None for m in model_maps(
        aligned_study / "structures.h5", embeddings, "energy", umap=None))
    out = tmp_path / "maps.png"
    assert main(["maps", "--structures", str(aligned_study / "structures.h5"), "--embeddings",
                 *embeddings, "--property", "energy", "--out", str(out), "--seed", "5",
                 "--umap-neighbors", "10", "--umap-min-dist", "0.3"]) == 0
    assert out.stat().st_size > 10_000
    import matplotlib.pyplot as plt

    from matteralign.plots.study import plot_maps

    captured = {}
    original = plt.Figure.suptitle

    def spy(self, text, **kwargs):
        captured["title"] = text
        return original(self, text, **kwargs)

    plt.Figure.suptitle = spy
    try:
        plot_maps(first, "energy", tmp_path / "m.png", umap_text=settings.describe(5))
    finally:
        plt.Figure.suptitle = original
    assert "UMAP n_neighbors=10, min_dist=0.3, seed=5" in captured["title"]


def test_neighbourhood_distance_is_the_root_mean_jsd_of_knn_distributions() -> None:
    from scipy.spatial.distance import jensenshannon
    from sklearn.neighbors import NearestNeighbors

    from matteralign.analysis.tree import neighbourhood_distance

    rng = np.random.default_rng(4)
    n, k = 80, 6
    base = rng.normal(size=(n, 5))
    xs = [base + s * rng.normal(size=(n, 5)) for s in (0.1, 0.5, 2.0)]
    # unit rows, as the study's (l2): inner-product neighbours are then Euclidean ones
    xs = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in xs]
    sets = [NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)[1][:, 1:] for x in xs]
    found = pairwise({f"m{i}": x for i, x in enumerate(xs)}, metrics=["mutual_knn"], k=k)
    distance, _ = neighbourhood_distance(found["mutual_knn"][0])
    for i in range(3):
        for j in range(3):
            jsd = []
            for row in range(n):
                p, q = np.zeros(n), np.zeros(n)
                p[sets[i][row]], q[sets[j][row]] = 1.0 / k, 1.0 / k
                jsd.append(jensenshannon(p, q, base=2) ** 2)
            assert distance[i, j] == pytest.approx(np.sqrt(np.mean(jsd)), abs=1e-7)


def test_clade_support_counts_replicate_trees_with_the_same_leaves() -> None:
    from matteralign.analysis.tree import clade_leaves

    names = ["a1", "a2", "b1", "b2"]
    planted = np.array([[1, .9, .1, .1], [.9, 1, .1, .1], [.1, .1, 1, .8], [.1, .1, .8, 1.]])
    tree = model_tree(names, planted, np.stack([planted] * 4))
    assert tree.support == [1.0, 1.0, 1.0]
    assert set(tree.clades()) == {frozenset({"a1", "a2"}), frozenset({"b1", "b2"}),
                                  frozenset(names)}
    # half of the replicates pair a1 with b1 instead
    swapped = planted[[0, 2, 1, 3]][:, [0, 2, 1, 3]]
    mixed = model_tree(names, planted, np.stack([planted, planted, swapped, swapped]))
    support = dict(zip(mixed.clades(), mixed.support, strict=True))
    assert support[frozenset({"a1", "a2"})] == 0.5 and support[frozenset(names)] == 1.0
    assert model_tree(names, planted).support == []
    assert [sorted(c) for c in clade_leaves(tree.linkage)][-1] == [0, 1, 2, 3]


def test_maps_and_tree_figures(aligned_study, tmp_path, capsys) -> None:
    embeddings = sorted(str(p) for p in (aligned_study / "embeddings").glob("*.h5"))
    maps = model_maps(aligned_study / "structures.h5", embeddings, "energy")
    assert [m.model for m in maps] == [p.rsplit("/", 1)[1][:-3] for p in embeddings]
    assert all(m.pca.shape == (120, 2) and m.values.shape == (120,) for m in maps)
    assert {m.model: m.control for m in maps}["mace-off23-small"] == "random-init"
    out = tmp_path / "maps_energy.png"
    assert main(["maps", "--structures", str(aligned_study / "structures.h5"), "--embeddings",
                 *embeddings, "--property", "energy", "--out", str(out)]) == 0
    assert umap_available()  # part of the study environment
    assert all(m.umap is not None and m.umap.shape == (120, 2) for m in maps)
    assert main(["maps", "--structures", str(aligned_study / "structures.h5"), "--embeddings",
                 *embeddings, "--property", "nope", "--out", str(tmp_path / "nope.png")]) == 2
    err = capsys.readouterr().err
    assert "--property 'nope'" in err and "energy" in err and err.count("\n") == 1
    assert main(["tree", "--metric-file", str(aligned_study / "cknna.h5"), "--out",
                 str(tmp_path / "tree.png")]) == 0
    assert (tmp_path / "tree.png").stat().st_size > 10_000
    from matteralign.analysis.align import align_dataset
    from matteralign.io import read_metric

    models = read_metric(aligned_study / "cknna.h5").models
    align_dataset([aligned_study / "embeddings" / f"{m}.h5" for m in models],
                  {"mutual_knn": tmp_path / "mutual_knn.h5"}, k=8, bootstrap=4)
    capsys.readouterr()
    assert main(["tree", "--metric-file", str(aligned_study / "cknna.h5"),
                 "--neighbourhood-file", str(tmp_path / "mutual_knn.h5"),
                 "--out", str(tmp_path / "tree2.png")]) == 0
    out = capsys.readouterr().out
    assert "√JSD of kNN neighbourhoods" in out and "half-sample trees" in out
    assert main(["tree", "--metric-file", str(aligned_study / "cknna.h5"),
                 "--neighbourhood-file", str(aligned_study / "cknna.h5"),
                 "--out", str(tmp_path / "t3.png")]) == 2
    assert "mutual_knn.h5" in capsys.readouterr().err
    assert main(["tree", "--metric-file", str(aligned_study / "intrinsic_dim.h5"), "--out",
                 str(tmp_path / "t.png")]) == 2
    assert "similarity matrix" in capsys.readouterr().err
