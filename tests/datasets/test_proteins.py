"""Real proteins from packaged PDB files, and the rcsb-pdb reader of mmCIF folders."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from matteralign.datasets import DatasetUnavailable, get_dataset, registered_datasets, subsample
from matteralign.datasets._pdb import MIN_RESIDUES, one_letter
from matteralign.datasets.proteins import ENTRIES, PackagedPDB, entry_path
from matteralign.datasets.rcsb import RcsbPDB
from matteralign.datasets.store import read_structures, write_structures
from matteralign.records import Record

N = 12


@pytest.fixture(scope="module")
def packaged() -> PackagedPDB:
    dataset = get_dataset("pdb-packaged")
    try:
        dataset.size()
    except DatasetUnavailable as err:
        pytest.skip(str(err))
    assert isinstance(dataset, PackagedPDB)
    return dataset


@pytest.fixture(scope="module")
def records(packaged: PackagedPDB) -> list[Record]:
    return packaged.load(N, seed=0)


def test_registered_and_cheap_to_import() -> None:
    for name in ("pdb-packaged", "rcsb-pdb"):
        cls = registered_datasets()[name]
        assert cls.kind == "proteins" and not cls.standin
        assert cls.modalities == ("atoms", "sequence", "text")
    code = ("import sys, matteralign.datasets.proteins, matteralign.datasets.rcsb; "
            "print(sorted(m for m in ('gemmi', 'ase', 'pandas') if m in sys.modules))")
    src = str(Path(__file__).resolve().parents[2] / "src")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": src})
    assert out.stdout.strip() == "[]"


def test_every_entry_reads(packaged: PackagedPDB) -> None:
    assert packaged.size() == len(ENTRIES) == 70
    records = packaged.load(packaged.size(), seed=0)
    assert not packaged.skipped
    assert len({r.id for r in records}) == 70
    for record in records:
        atoms = record.atoms
        assert atoms is not None and not atoms.pbc.any()
        assert set(atoms.get_chemical_symbols()) <= {"H", "C", "N", "O", "S", "Se"}
        assert record.sequence is not None and len(record.sequence) >= MIN_RESIDUES
        assert set(record.sequence) <= set("ACDEFGHIKLMNPQRSTVWYX")
        assert record.properties["n_residues"] == len(record.sequence)
        assert record.properties["n_atoms"] == len(atoms)
        # ~8 heavy atoms per residue; hydrogens roughly double it
        assert 5 < len(atoms) / len(record.sequence) < 20
        assert record.text.startswith("Protein chain")
        assert record.sequence in record.text and record.smiles is None


def test_sampling_is_deterministic(packaged: PackagedPDB, records: list[Record]) -> None:
    ids = [r.id for r in records]
    assert ids == [f"pdb-packaged:{packaged.ids()[i]}" for i in subsample(70, N, 0)[:N]]
    assert [r.id for r in packaged.load(5, seed=0)] == ids[:5]
    assert [r.id for r in packaged.load(N, seed=1)] != ids
    with pytest.raises(ValueError, match="only 70"):
        packaged.load(71, seed=0)


def test_known_entries(packaged: PackagedPDB) -> None:
    # adenylate kinase: 214 residues, CHARMM file without element column (CA is carbon)
    adk = packaged.record("4AKE")
    assert adk.sequence is not None and adk.sequence.startswith("MRIILLGAPGAGKGTQ")
    assert len(adk.sequence) == 214
    assert adk.atoms is not None and "Ca" not in adk.atoms.get_chemical_symbols()
    # BPTI, mmCIF with hydrogens (neutron/X-ray joint refinement), 58 residues
    bpti = packaged.record("5PTI")
    assert bpti.sequence == ("RPDFCLEPPYTGPCKARIIRYFYNAKAGLCQTFVYGGCRAKRNNFKSAEDCMRTCGGA")
    assert bpti.properties["resolution"] == pytest.approx(1.0)
    # MHC complex: the first protein chain is the heavy chain A, not the 9-mer peptide
    mhc = packaged.record("1BD2")
    assert mhc.text.startswith("Protein chain A of PDB 1BD2, 275 residues")


def test_per_atom_annotations(packaged: PackagedPDB) -> None:
    """Atom names and residue numbering for residue-level models (ProteinMPNN's backbone)."""
    adk = packaged.record("4AKE")  # CHARMM file: C-terminal oxygens named OT1/OT2
    atoms = adk.atoms
    assert atoms is not None and adk.sequence is not None
    names, index = atoms.arrays["atom_name"], atoms.arrays["residue_index"]
    number = atoms.arrays["residue_number"]
    assert len(names) == len(index) == len(number) == len(atoms)
    assert index.dtype == np.int32 and index.min() == 0 and index.max() == len(adk.sequence) - 1
    assert np.all(np.diff(index) >= 0)  # atoms in residue order
    assert {"N", "CA", "C", "O", "CB"} <= set(names[index == 0])
    assert {"OT1", "OT2"} <= set(names[index == len(adk.sequence) - 1])
    assert int(number[0]) == 1 and int(number[-1]) == 214
    assert atoms.get_chemical_symbols()[list(names).index("CA")] == "C"
    # 1OSM numbers residues 163, 163A, 163B, ...: an insertion code repeats the number
    osm = packaged.record("1OSM").atoms
    assert osm is not None
    per_residue = [int(osm.arrays["residue_number"][osm.arrays["residue_index"] == i][0])
                   for i in range(int(osm.arrays["residue_index"].max()) + 1)]
    assert per_residue.count(163) > 1 and np.all(np.diff(per_residue) >= 0)


def test_one_letter_codes() -> None:
    assert one_letter("ALA") == "A" and one_letter("HIE") == "H" and one_letter("CYX") == "C"
    assert one_letter("MSE") == "M"  # selenomethionine -> its parent
    assert one_letter("HOH") == "X" and one_letter("ZZZ") == "X"


def test_missing_package_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    with pytest.raises(DatasetUnavailable, match="pip install --no-deps mdanalysistests"):
        PackagedPDB().size()
    with pytest.raises(ValueError, match="no options"):
        PackagedPDB(path="x")


def test_structures_round_trip(records: list[Record], tmp_path: Path) -> None:
    path = tmp_path / "structures.h5"
    write_structures(path, records, {"dataset": "pdb-packaged"})
    back = read_structures(path)
    for old, new in zip(records, back, strict=True):
        assert new.id == old.id and new.sequence == old.sequence and new.text == old.text
        assert old.atoms is not None and new.atoms is not None
        np.testing.assert_array_equal(new.atoms.numbers, old.atoms.numbers)
        np.testing.assert_array_equal(new.atoms.positions, old.atoms.positions)
        for key in ("atom_name", "residue_index", "residue_number"):
            np.testing.assert_array_equal(new.atoms.arrays[key], old.atoms.arrays[key])


# --- rcsb-pdb: mmCIF files written by gemmi from the packaged entries -----------------------

@pytest.fixture(scope="module")
def cif_dir(packaged: PackagedPDB, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import gemmi

    folder = tmp_path_factory.mktemp("mmcif")
    for i, pdb_id in enumerate(["1AKE", "1HVR", "1BD2", "2JUY", "1OSM"]):
        structure = gemmi.read_structure(str(entry_path(pdb_id)))
        structure.name = pdb_id
        structure.setup_entities()
        text = structure.make_mmcif_document().as_string()
        sub = folder / pdb_id[1:3].lower()  # the archive's divided layout
        sub.mkdir(exist_ok=True)
        if i % 2:
            (sub / f"{pdb_id.lower()}.cif.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (sub / f"{pdb_id.lower()}.cif").write_text(text)
    (folder / "ak" / "broken.cif").write_text("data_broken\n_cell.length_a 1\n")
    return folder


def test_rcsb_reads_mmcif_folder(packaged: PackagedPDB, cif_dir: Path) -> None:
    dataset = RcsbPDB(path=str(cif_dir))
    assert dataset.size() == 6
    with pytest.warns(UserWarning, match="skipped 1 entries: BROKEN"):
        records = dataset.load(5, seed=0)
    assert sorted(r.id for r in records) == [
        f"rcsb-pdb:{i}" for i in ["1AKE", "1BD2", "1HVR", "1OSM", "2JUY"]
    ]
    for record in records:
        reference = packaged.record(record.id.split(":")[1])
        assert record.sequence == reference.sequence
        assert record.atoms is not None and reference.atoms is not None
        np.testing.assert_array_equal(record.atoms.numbers, reference.atoms.numbers)
        np.testing.assert_allclose(record.atoms.positions, reference.atoms.positions, atol=1e-3)
        assert record.text == reference.text
    single = RcsbPDB(path=str(cif_dir / "hv" / "1hvr.cif.gz"))
    assert [r.id for r in single.load(1, seed=0)] == ["rcsb-pdb:1HVR"]


def test_rcsb_missing_path_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match=r"no local path given.*options\.path"):
        RcsbPDB().size()
    with pytest.raises(DatasetUnavailable, match=f"{tmp_path / 'nope'} does not exist"):
        RcsbPDB(path=str(tmp_path / "nope")).size()
    with pytest.raises(DatasetUnavailable, match="no .cif or .cif.gz files"):
        RcsbPDB(path=str(tmp_path)).size()
    with pytest.raises(ValueError, match="only the option 'path'"):
        RcsbPDB(folder="x")
