"""OMat24 / sAlex / OMol25 readers on small .aselmdb files written by the same backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from matteralign.datasets import DatasetUnavailable, get_dataset, registered_datasets

pytest.importorskip("ase_db_backends")


def _write(path: Path, rows: list[tuple[object, dict[str, object]]]) -> None:
    import ase.db

    # fairchem's format: ase.db rows in the aselmdb backend; the writer must be closed
    # before a reader opens the same LMDB file in this process
    with ase.db.connect(str(path)) as db:
        for atoms, data in rows:
            db.write(atoms, data=data)


def _crystal(i: int) -> object:
    from ase.build import bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = bulk("MgO", "rocksalt", a=4.21 + 0.01 * i).repeat((1, 1, 2))
    atoms.rattle(0.05, seed=i)
    forces = np.full((len(atoms), 3), 0.1 * i)
    stress = np.array([0.01, 0.02, 0.03, 0.0, 0.0, 0.0]) * i
    atoms.calc = SinglePointCalculator(atoms, energy=-10.0 - i, forces=forces, stress=stress)
    return atoms


def _molecule(i: int) -> object:
    from ase.build import molecule
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = molecule(["H2O", "NH3", "CH4"][i % 3])
    atoms.calc = SinglePointCalculator(atoms, energy=-100.0 * (i + 1),
                                       forces=np.zeros((len(atoms), 3)))
    return atoms


@pytest.fixture(scope="module")
def crystal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("omat")
    _write(folder / "a.aselmdb", [(_crystal(i), {}) for i in range(4)])
    _write(folder / "b.aselmdb", [(_crystal(i), {}) for i in range(4, 7)])
    return folder


def test_registered() -> None:
    datasets = registered_datasets()
    assert datasets["omat24"].kind == datasets["salex"].kind == "crystals"
    assert datasets["omol25"].kind == "molecules"
    assert all(not datasets[n].standin for n in ("omat24", "salex", "omol25"))


@pytest.mark.parametrize("name", ["omat24", "salex"])
def test_crystals_read_back(name: str, crystal_dir: Path) -> None:
    dataset = get_dataset(name, path=str(crystal_dir))
    assert dataset.size() == 7
    records = dataset.load(7, seed=0)
    assert sorted(r.id for r in records) == sorted(
        [f"{name}:a/{i}" for i in range(1, 5)] + [f"{name}:b/{i}" for i in range(1, 4)]
    )
    for record in records:
        stem, row = record.id.split(":")[1].split("/")
        i = int(row) - 1 + (4 if stem == "b" else 0)
        expected = _crystal(i)
        atoms = record.atoms
        assert atoms is not None and atoms.pbc.all() and atoms.calc is None
        np.testing.assert_allclose(atoms.positions, expected.positions)
        np.testing.assert_allclose(atoms.cell.array, expected.cell.array)
        assert atoms.get_chemical_formula() == expected.get_chemical_formula()
        assert record.properties["energy"] == pytest.approx(-10.0 - i)
        assert record.properties["energy_per_atom"] == pytest.approx((-10.0 - i) / 4)
        assert record.properties["fmax"] == pytest.approx(0.1 * i * np.sqrt(3))
        assert record.properties["pressure"] == pytest.approx(-0.02 * i)
        assert record.text.startswith("Inorganic crystal, formula Mg2O2, 4 atoms per cell")
    assert [r.id for r in dataset.load(3, seed=0)] == [r.id for r in records[:3]]
    single = get_dataset(name, path=str(crystal_dir / "b.aselmdb"))
    assert single.size() == 3


def test_omol25_charge_and_spin(tmp_path: Path) -> None:
    rows = [(_molecule(i), {"charge": i - 1, "spin": 1 + i % 2}) for i in range(3)]
    _write(tmp_path / "val.aselmdb", rows)
    records = get_dataset("omol25", path=str(tmp_path)).load(3, seed=0)
    by_row = {int(r.id.rsplit("/", 1)[1]) - 1: r for r in records}
    for i, record in by_row.items():
        atoms = record.atoms
        assert atoms is not None and not atoms.pbc.any()
        assert atoms.info["charge"] == i - 1 and atoms.info["spin"] == 1 + i % 2
        assert atoms.get_chemical_formula() == _molecule(i).get_chemical_formula()
        assert record.properties["energy"] == pytest.approx(-100.0 * (i + 1))
        assert f"charge {i - 1:+d}, spin multiplicity {1 + i % 2}" in record.text


def test_molecule_rows_are_not_crystals(tmp_path: Path) -> None:
    _write(tmp_path / "m.aselmdb", [(_molecule(0), {})] * 2)
    dataset = get_dataset("omat24", path=str(tmp_path))
    with pytest.warns(UserWarning, match="expected a periodic crystal"), \
            pytest.raises(ValueError, match="only 0 of 2"):
        dataset.load(1, seed=0)


@pytest.mark.parametrize("name", ["omat24", "salex", "omol25"])
def test_missing_path_names_the_fix(name: str, tmp_path: Path) -> None:
    fix = r"no local path given.*huggingface.*options\.path"
    with pytest.raises(DatasetUnavailable, match=fix):
        get_dataset(name).size()
    with pytest.raises(DatasetUnavailable, match="no \\*.aselmdb files"):
        get_dataset(name, path=str(tmp_path)).size()
    ok, why = get_dataset(name, path=str(tmp_path / "x")).available()
    assert not ok and "does not exist" in why and f"datasets.{name}.options.path" in why
    with pytest.raises(ValueError, match="only the option 'path'"):
        get_dataset(name, src="x")
