"""load_study: the rows valid in every model, each model's rows preprocessed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from matteralign.analysis import AlignmentError, load_study
from matteralign.io import EmbeddingFile, write_embeddings


def write(path: Path, model: str, x: np.ndarray, invalid: list[int]) -> Path:
    valid = np.ones(len(x), bool)
    valid[invalid] = False
    x = x.astype(np.float32)
    x[~valid] = np.nan
    write_embeddings(path, EmbeddingFile(
        ids=[f"s{i}" for i in range(len(x))], embeddings=x, valid=valid,
        errors=["" if v else "masked" for v in valid],
        attrs={"model": model, "dataset": "toy", "dataset_sha256": "abc"}))
    return path


def test_common_rows_and_l2(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(12, 3)) * 5, rng.normal(size=(12, 4))
    paths = [write(tmp_path / "a.h5", "a", a, [0]), write(tmp_path / "b.h5", "b", b, [0, 7])]
    study = load_study(paths)
    keep = np.ones(12, bool)
    keep[[0, 7]] = False
    assert study.names == ["a", "b"] and study.n_used == 10 and study.n_total == 12
    assert study.ids == [f"s{i}" for i in range(12) if keep[i]]
    np.testing.assert_array_equal(study.mask, keep)
    expected = a[keep].astype(np.float32).astype(np.float64)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(study.arrays["a"], expected, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(study.arrays["b"], axis=1), 1.0, rtol=1e-12)
    raw = load_study(paths, preprocessing="none")
    np.testing.assert_array_equal(raw.arrays["a"], a[keep].astype(np.float32))
    assert raw.preprocessing == "none" and study.attrs["dataset"] == "toy"


def test_refuses_what_cannot_be_compared(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = write(tmp_path / "a.h5", "a", rng.normal(size=(8, 2)), [])
    b = write(tmp_path / "b.h5", "b", rng.normal(size=(8, 2)), [1, 2, 3, 4, 5])
    with pytest.raises(AlignmentError, match=r"only 3 structures .*\(fewest: 'b' with 3\)"):
        load_study([a, b])
    with pytest.raises(AlignmentError, match="twice"):
        load_study([a, write(tmp_path / "a2.h5", "a", rng.normal(size=(8, 2)), [])])
    with pytest.raises(AlignmentError, match="no embedding files"):
        load_study([])
