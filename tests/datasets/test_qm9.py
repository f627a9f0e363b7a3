"""QM9 from the qm9pack wheel: sampling, parsing, properties and the structures file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from matteralign.datasets import DatasetUnavailable, get_dataset, registered_datasets, subsample
from matteralign.datasets.qm9 import (
    ATOM_U0_HARTREE,
    HARTREE_EV,
    QM9,
    parse_coordinates,
    parse_elements,
)
from matteralign.datasets.store import read_structures, write_structures
from matteralign.records import Record

N = 20


@pytest.fixture(scope="session")
def qm9() -> QM9:
    dataset = get_dataset("qm9")
    try:
        dataset.size()
    except DatasetUnavailable as err:
        pytest.skip(str(err))
    assert isinstance(dataset, QM9)
    return dataset


@pytest.fixture(scope="session")
def records(qm9: QM9) -> list[Record]:
    return qm9.load(N, seed=0)


def test_registered_with_its_metadata() -> None:
    cls = registered_datasets()["qm9"]
    assert cls is QM9
    assert cls.kind == "molecules"
    assert cls.modalities == ("atoms", "smiles", "text")
    assert not cls.standin
    assert {"energy", "atomization_energy", "homo", "lumo", "gap", "dipole"} <= set(cls.properties)


def test_import_is_cheap() -> None:
    # the registry imports every dataset module just to list them
    code = (
        "import sys, matteralign.datasets.qm9; "
        "print(sorted(m for m in ('pandas', 'rdkit', 'ase') if m in sys.modules))"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": src},
    )
    assert out.stdout.strip() == "[]"


def test_full_size(qm9: QM9) -> None:
    assert qm9.size() == 130_831


def test_sampling_is_deterministic(qm9: QM9, records: list[Record]) -> None:
    ids = [r.id for r in records]
    assert ids == [r.id for r in qm9.load(N, seed=0)]
    assert [r.id for r in qm9.load(5, seed=0)] == ids[:5]  # a smaller n is a prefix
    other = [r.id for r in qm9.load(N, seed=1)]
    assert other != ids and len(set(other) & set(ids)) < N
    assert len(set(ids)) == N


def test_sample_follows_the_seeded_permutation(qm9: QM9, records: list[Record]) -> None:
    table = qm9._table()
    expected = [f"qm9:gdb_{table.at[i, 'Index']}" for i in subsample(len(table), N, 0)[:N]]
    assert [r.id for r in records] == expected


def test_more_than_size_raises(qm9: QM9) -> None:
    with pytest.raises(ValueError, match="only 130831"):
        qm9.load(qm9.size() + 1, seed=0)


def test_methane_properties(qm9: QM9) -> None:
    methane = qm9.record(1)
    assert methane.id == "qm9:gdb_1"
    assert methane.atoms is not None
    assert methane.atoms.get_chemical_formula() == "CH4"
    u0 = -40.47893  # Hartree, QM9 gdb_1
    reference = ATOM_U0_HARTREE["C"] + 4 * ATOM_U0_HARTREE["H"]
    assert methane.properties["energy"] == pytest.approx(u0 * HARTREE_EV)
    assert methane.properties["atomization_energy"] == pytest.approx((u0 - reference) * HARTREE_EV)
    assert methane.properties["atomization_energy"] == pytest.approx(-17.1722, abs=1e-3)
    assert methane.properties["gap"] == pytest.approx(0.5048 * HARTREE_EV)
    assert methane.properties["homo"] == pytest.approx(-0.3877 * HARTREE_EV)
    assert methane.properties["lumo"] == pytest.approx(0.1171 * HARTREE_EV)
    assert methane.properties["dipole"] == pytest.approx(0.0)
    assert methane.properties["n_atoms"] == 5
    assert methane.smiles == "C"
    assert methane.text == "Molecule with formula CH4; SMILES: C"
    # C-H bonds of methane are ~1.09 Å
    distances = methane.atoms.get_distances(0, [1, 2, 3, 4])
    np.testing.assert_allclose(distances, 1.09, atol=0.01)
    with pytest.raises(KeyError):
        qm9.record(10**7)


def test_records_are_consistent(records: list[Record]) -> None:
    from rdkit import Chem
    from rdkit.Chem.rdMolDescriptors import CalcMolFormula

    for record in records:
        atoms = record.atoms
        assert atoms is not None
        assert len(atoms) == record.properties["n_atoms"]
        assert not atoms.pbc.any()
        assert atoms.info == {"charge": 0, "spin": 1}
        assert set(atoms.get_chemical_symbols()) <= set(ATOM_U0_HARTREE)
        assert record.properties["atomization_energy"] < 0
        # QM9 rounds HOMO, LUMO and gap to 1e-4 Ha each
        assert record.properties["gap"] == pytest.approx(
            record.properties["lumo"] - record.properties["homo"], abs=2e-4 * HARTREE_EV
        )
        # canonical, parseable, and the same molecule as the geometry
        assert record.smiles is not None
        mol = Chem.MolFromSmiles(record.smiles)
        assert mol is not None
        assert Chem.MolToSmiles(mol) == record.smiles
        assert CalcMolFormula(mol) == atoms.get_chemical_formula(mode="hill")
        assert record.text.startswith("Molecule with formula ")
        assert record.smiles in record.text
        assert record.input_for("atoms") is atoms
        assert record.input_for("smiles") == record.smiles


def test_coordinates_parse_python_and_mathematica_literals() -> None:
    text = "[[0.,1.,-2.5],[1.2*^-6,3e-2,4]]"  # "0." is not JSON; "*^" is Mathematica
    np.testing.assert_array_equal(
        parse_coordinates(text, 2), [[0.0, 1.0, -2.5], [1.2e-6, 0.03, 4.0]]
    )
    with pytest.raises(ValueError, match="shape"):
        parse_coordinates(text, 3)
    with pytest.raises(SyntaxError):
        parse_coordinates("[[0.1, 0.2", 1)
    assert parse_elements("['C','H']", 2) == ["C", "H"]
    with pytest.raises(ValueError, match="elements"):
        parse_elements("['C','Si']", 2)


def test_unparseable_rows_are_reported_and_replaced(
    qm9: QM9, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = qm9._table().iloc[:10].copy()
    small.loc[3, "XYZ_Ang"] = "[[0.1, 0.2"  # truncated
    small.loc[7, "Elements"] = "['C','X']"
    monkeypatch.setattr(QM9, "_table", lambda self: small)
    dataset = QM9()
    with pytest.warns(UserWarning, match="skipped 2 unparseable rows"):
        records = dataset.load(8, seed=3)
    assert {rid for rid, _ in dataset.skipped} == {"qm9:gdb_4", "qm9:gdb_8"}
    assert len(records) == 8
    assert {"qm9:gdb_4", "qm9:gdb_8"}.isdisjoint(r.id for r in records)
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="only 8 of 10 parse"):
        dataset.load(9, seed=3)


def test_missing_package_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    dataset = QM9()
    with pytest.raises(DatasetUnavailable, match=r"pip install qm9pack==1\.0\.3"):
        dataset.size()
    available, why = dataset.available()
    assert not available and "qm9pack" in why


def test_rejects_options() -> None:
    with pytest.raises(ValueError, match="no options"):
        QM9(max_atoms=3)


def test_structures_round_trip(records: list[Record], tmp_path: Path) -> None:
    path = tmp_path / "structures.h5"
    write_structures(path, records, {"dataset": "qm9"})
    back = read_structures(path)
    assert [r.id for r in back] == [r.id for r in records]
    for old, new in zip(records, back, strict=True):
        assert old.atoms is not None and new.atoms is not None
        np.testing.assert_array_equal(new.atoms.numbers, old.atoms.numbers)
        np.testing.assert_array_equal(new.atoms.positions, old.atoms.positions)
        np.testing.assert_array_equal(new.atoms.cell.array, old.atoms.cell.array)
        np.testing.assert_array_equal(new.atoms.pbc, old.atoms.pbc)
        assert new.atoms.info == old.atoms.info
        assert new.smiles == old.smiles and new.text == old.text
        assert new.properties == old.properties
