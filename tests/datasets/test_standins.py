"""The *-like stand-ins: named as such, deterministic, and of the right kind."""

from __future__ import annotations

import numpy as np
import pytest

from matteralign.datasets import get_dataset, registered_datasets
from matteralign.datasets.standins import ionise, prototypes

STANDINS = ("omat24-like", "salex-like", "omol25-like")


def test_named_and_flagged_as_standins() -> None:
    datasets = registered_datasets()
    for name in STANDINS:
        cls = datasets[name]
        assert cls.standin and name.endswith("-like")
        assert "STAND-IN" in cls.description
        assert "energy" not in cls.properties  # no DFT energies are invented
    for name, cls in datasets.items():
        assert cls.standin == name.endswith("-like"), name


@pytest.mark.parametrize("name", ["omat24-like", "salex-like"])
def test_crystals(name: str) -> None:
    dataset = get_dataset(name)
    records = dataset.load(40, seed=0)
    assert [r.id for r in dataset.load(10, seed=0)] == [r.id for r in records[:10]]
    again = dataset.load(40, seed=0)
    for a, b in zip(records, again, strict=True):
        assert a.atoms is not None and b.atoms is not None
        np.testing.assert_array_equal(a.atoms.positions, b.atoms.positions)
    for record in records:
        atoms = record.atoms
        assert atoms is not None and atoms.pbc.all() and atoms.cell.volume > 0
        # no two atoms closer than 0.5 Å (displacements stay physical)
        distances = atoms.get_all_distances(mic=True) + 10 * np.eye(len(atoms))
        assert distances.min() > 0.5, record.id
        assert record.text.startswith("Inorganic crystal") and record.smiles is None
    sizes = [len(r.atoms) for r in records if r.atoms is not None]
    if name == "omat24-like":
        assert min(sizes) >= 8 and max(sizes) <= 64
        assert {r.id.rsplit("/", 1)[1] for r in records} == {"rattled", "strained", "thermal"}
    else:
        assert max(r.properties["volume_scale"] for r in records) <= 1.02


def test_prototypes_are_sane() -> None:
    protos = prototypes()
    assert len(protos) == 63 and len({name for name, _ in protos}) == 63
    for name, atoms in protos:
        distances = atoms.repeat(2).get_all_distances(mic=True) + 10 * np.eye(8 * len(atoms))
        assert 1.2 < distances.min() < 5.0, name  # K: 4.6 Å


def test_omol25_like_molecules() -> None:
    pytest.importorskip("rdkit")
    from rdkit import Chem

    dataset = get_dataset("omol25-like")
    if not dataset.available()[0]:
        pytest.skip(dataset.available()[1])
    assert dataset.size() == 176_074  # the MOSES test split
    records = dataset.load(24, seed=0)
    assert [r.id for r in dataset.load(24, seed=0)] == [r.id for r in records]
    charges = [r.atoms.info["charge"] for r in records if r.atoms is not None]
    assert any(c != 0 for c in charges)  # some charged species
    for record in records:
        atoms = record.atoms
        assert atoms is not None and not atoms.pbc.any() and atoms.info["spin"] == 1
        mol = Chem.MolFromSmiles(record.smiles)
        assert mol is not None and Chem.GetFormalCharge(mol) == atoms.info["charge"]
        assert Chem.AddHs(mol).GetNumAtoms() == len(atoms)
        assert record.properties["charge"] == atoms.info["charge"]
        assert f"charge {int(atoms.info['charge']):+d}" in record.text


def test_ionise() -> None:
    from rdkit import Chem

    def charge(smiles: str) -> int:
        return Chem.GetFormalCharge(ionise(Chem.MolFromSmiles(smiles)))

    assert charge("CC(=O)O") == -1
    assert charge("CCN(C)C") == 1
    assert charge("CC(=O)N(C)C") == 0  # amides are not basic
    assert charge("c1ccncc1") == 1
    assert charge("c1ccccc1") == 0


def test_options_rejected() -> None:
    for name in STANDINS:
        with pytest.raises(ValueError, match="no options"):
            get_dataset(name, path="x")
