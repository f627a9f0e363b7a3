"""The HDF5 contract of docs/formats.md, read back with plain h5py."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from ase.build import bulk, molecule

from matteralign.datasets.store import read_structures, write_structures
from matteralign.io import (
    EmbeddingFile,
    MetricFile,
    atomic_h5,
    read_embeddings,
    read_metric,
    write_embeddings,
    write_metric,
)
from matteralign.records import Record


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError):
        with atomic_h5(target) as handle:
            handle.create_dataset("x", data=[1, 2, 3])
            raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_write_keeps_previous_file_until_success(tmp_path):
    target = tmp_path / "out.h5"
    with atomic_h5(target) as handle:
        handle.create_dataset("x", data=[1])
    with pytest.raises(RuntimeError):
        with atomic_h5(target) as handle:
            handle.create_dataset("x", data=[2])
            raise RuntimeError
    with h5py.File(target) as handle:
        assert handle["x"][0] == 1


def test_embedding_file_contract(tmp_path):
    path = tmp_path / "m.h5"
    emb = np.arange(12, dtype=np.float32).reshape(3, 4)
    emb[1] = np.nan
    write_embeddings(path, EmbeddingFile(
        ids=["a", "b", "c"], embeddings=emb, valid=np.array([True, False, True]),
        errors=["", "ValueError: isolated atom", ""], energy=np.array([-1.0, np.nan, -2.0]),
        attrs={"model": "m", "weights": "random-init", "modalities": ["atoms", "text"]},
    ))
    with h5py.File(path) as handle:
        assert handle["embeddings"].dtype == np.float32
        assert handle["embeddings"].shape == (3, 4)
        assert [s.decode() for s in handle["ids"][()]] == ["a", "b", "c"]
        assert handle["valid"].dtype == bool
        assert handle["errors"][1].decode() == "ValueError: isolated atom"
        assert handle["energy"].dtype == np.float64
        assert handle.attrs["n"] == 3 and handle.attrs["dim"] == 4
        assert handle.attrs["weights"] == "random-init"
    back = read_embeddings(path)
    assert back.ids == ["a", "b", "c"] and back.errors[0] == ""
    assert back.attrs["modalities"] == ["atoms", "text"]
    np.testing.assert_array_equal(back.embeddings[[0, 2]], emb[[0, 2]])


def test_embedding_file_rejects_inconsistent_n(tmp_path):
    with pytest.raises(ValueError, match="disagree on N"):
        write_embeddings(tmp_path / "m.h5", EmbeddingFile(
            ids=["a"], embeddings=np.zeros((2, 3), np.float32), valid=np.ones(2, bool),
            errors=["", ""]))


def test_metric_file_contract(tmp_path):
    path = tmp_path / "cka.h5"
    matrix = np.array([[1.0, 0.3], [0.3, 1.0]])
    write_metric(path, MetricFile(metric="cka", models=["x", "y"], matrix=matrix,
                                  attrs={"k": 25, "n_used": 10, "dataset": "qm9"}))
    with h5py.File(path) as handle:
        assert handle["matrix"].dtype == np.float64
        assert [s.decode() for s in handle["models"][()]] == ["x", "y"]
        assert handle.attrs["metric"] == "cka" and handle.attrs["n_used"] == 10
    assert read_metric(path).matrix.tolist() == matrix.tolist()
    with pytest.raises(ValueError):
        write_metric(path, MetricFile(metric="x", models=["a"]))


def test_structures_round_trip(tmp_path):
    water = molecule("H2O")
    water.info["charge"] = -1.0
    si = bulk("Si", "diamond", a=5.43)
    records = [
        Record("mol:1", atoms=water, smiles="O", text="water", properties={"energy": -2.5}),
        Record("xtal:1", atoms=si, text="silicon", properties={"gap": 1.1}),
        Record("seq:1", sequence="MKV", text="peptide"),
    ]
    path = tmp_path / "structures.h5"
    digest = write_structures(path, records, {"dataset": "toy"})
    back = read_structures(path)
    assert [r.id for r in back] == ["mol:1", "xtal:1", "seq:1"]
    np.testing.assert_array_equal(back[0].atoms.positions, water.positions)
    np.testing.assert_array_equal(back[1].atoms.cell.array, si.cell.array)
    assert back[1].atoms.pbc.all() and not back[0].atoms.pbc.any()
    assert back[0].atoms.info["charge"] == -1.0
    assert back[0].smiles == "O" and back[1].smiles is None
    assert back[2].atoms is None and back[2].sequence == "MKV"
    assert back[0].properties == {"energy": -2.5} and back[1].properties == {"gap": 1.1}
    # the hash depends on content only
    assert write_structures(tmp_path / "again.h5", back, {"dataset": "toy"}) == digest
    back[0].atoms.positions[0, 0] += 1e-6
    assert write_structures(tmp_path / "moved.h5", back, {"dataset": "toy"}) != digest
