"""align_dataset: common valid structures, preprocessing, one pairwise call, file contract."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from matteralign.analysis.align import AlignmentError, align_dataset
from matteralign.analysis.preprocess import preprocess
from matteralign.io import EmbeddingFile, read_metric, write_embeddings
from matteralign.metrics import cka, information_imbalance

METRICS = ["cknna", "mutual_knn", "cka", "dcor", "information_imbalance", "intrinsic_dim"]


def make_files(tmp_path, n=80, invalid=None):
    rng = np.random.default_rng(1)
    base = rng.normal(size=(n, 6))
    embeddings = {
        "a": base @ rng.normal(size=(6, 12)),
        "b": np.tanh(base @ rng.normal(size=(6, 5))),
        "c": rng.normal(size=(n, 9)),
    }
    paths = []
    for name, emb in embeddings.items():
        valid = np.ones(n, bool)
        errors = [""] * n
        if invalid and name in invalid:
            valid[invalid[name]] = False
            for i in invalid[name]:
                errors[i] = "masked"
        emb = emb.astype(np.float32)
        emb[~valid] = np.nan
        path = tmp_path / f"{name}.h5"
        write_embeddings(path, EmbeddingFile(
            ids=[f"s{i}" for i in range(n)], embeddings=emb, valid=valid, errors=errors,
            attrs={"model": name, "modality": "atoms", "dataset": "toy",
                   "dataset_sha256": "abc"}))
        paths.append(path)
    return paths, embeddings


def test_align_uses_structures_valid_in_every_model(tmp_path):
    paths, embeddings = make_files(tmp_path, invalid={"a": [0, 1], "c": [1, 5]})
    outputs = {m: tmp_path / f"{m}.h5" for m in METRICS}
    align_dataset(paths, outputs, k=5)
    keep = np.ones(80, bool)
    keep[[0, 1, 5]] = False
    result = read_metric(outputs["cka"])
    assert result.models == ["a", "b", "c"]
    assert result.attrs["n_used"] == 77 and result.attrs["n_total"] == 80
    assert result.attrs["preprocessing"] == "l2" and result.attrs["k"] == 5
    x = {k: preprocess(v[keep], "l2") for k, v in embeddings.items()}
    assert result.matrix[0, 1] == pytest.approx(cka(x["a"], x["b"]), abs=1e-9)
    ii = read_metric(outputs["information_imbalance"])
    assert ii.matrix[2, 0] == pytest.approx(information_imbalance(x["c"], x["a"]), abs=1e-12)
    assert ii.attrs["symmetric"] is False and ii.attrs["higher_is_aligned"] is False
    # stored as HDF5 booleans, not as the strings "True"/"False"
    with h5py.File(outputs["information_imbalance"]) as handle:
        assert handle.attrs["symmetric"].dtype == np.bool_
        assert handle.attrs["random_init"].dtype == np.bool_
    assert result.attrs["symmetric"] is True and result.attrs["random_init"] == [False] * 3
    dims = read_metric(outputs["intrinsic_dim"])
    assert dims.values.shape == (3,) and dims.matrix is None


def test_align_refuses_mismatched_or_too_few_structures(tmp_path):
    paths, _ = make_files(tmp_path, n=30, invalid={"b": list(range(25))})
    with pytest.raises(AlignmentError, match="'b'"):
        align_dataset(paths, {"cka": tmp_path / "cka.h5"}, k=5)
    other = tmp_path / "other"
    other.mkdir()
    paths2, _ = make_files(other, n=31)
    with pytest.raises(AlignmentError, match="different"):
        align_dataset([paths[0], paths2[1]], {"cka": tmp_path / "cka.h5"}, k=5)


def test_metric_files_with_string_flags_read_as_booleans(tmp_path):
    """Files written before the flags were HDF5 booleans held "True"/"False" strings."""
    from matteralign.io import MetricFile, write_metric

    path = tmp_path / "old.h5"
    write_metric(path, MetricFile(metric="information_imbalance", models=["a", "b"],
                                  matrix=np.eye(2), attrs={
                                      "symmetric": "False", "higher_is_aligned": "False",
                                      "random_init": ["False", "True"]}))
    attrs = read_metric(path).attrs
    assert attrs["symmetric"] is False and attrs["higher_is_aligned"] is False
    assert attrs["random_init"] == [False, True]
