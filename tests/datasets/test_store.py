"""structures.h5: the optional per-atom annotations of protein chains (PDB atom names, residue
index and number) are written and read back, and datasets without them keep their columns
and their dataset hash."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from ase import Atoms

from matteralign.datasets.store import ATOM_ARRAYS, read_structures, write_structures
from matteralign.records import Record

#: the hash of :func:`_plain_records` as written before the optional columns existed
PLAIN_SHA256 = "e963eacff94693ec8f51d38bba77024467c81a0d497c8a350658570e4844576c"


def _plain_records() -> list[Record]:
    water = Atoms("OH2", positions=[[0, 0, 0.1], [0, 0.76, -0.47], [0, -0.76, -0.47]])
    silicon = Atoms("Si2", scaled_positions=[[0, 0, 0], [0.25, 0.25, 0.25]],
                    cell=[[0, 2.7, 2.7], [2.7, 0, 2.7], [2.7, 2.7, 0]], pbc=True)
    return [Record(id="water", atoms=water, smiles="O", text="water",
                   properties={"energy": -14.2}),
            Record(id="si", atoms=silicon, text="silicon"),
            Record(id="seq", sequence="MKV", text="peptide")]


def _dipeptide() -> Record:
    names = ["N", "CA", "C", "O", "N", "CA", "C", "O", "OXT"]
    atoms = Atoms("NCCONCCOO", positions=np.arange(27, dtype=float).reshape(9, 3))
    atoms.new_array("atom_name", np.array(names))
    atoms.new_array("residue_index", np.array([0] * 4 + [1] * 5, np.int32))
    atoms.new_array("residue_number", np.array([-1] * 4 + [1] * 5, np.int32))
    return Record(id="GA", atoms=atoms, sequence="GA", text="dipeptide")


def test_hash_and_columns_unchanged_without_annotations(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    assert write_structures(path, _plain_records(), {"dataset": "x"}) == PLAIN_SHA256
    with h5py.File(path) as handle:
        assert "atom_arrays" not in handle
    for record in read_structures(path):
        if record.atoms is not None:
            assert set(record.atoms.arrays) == {"numbers", "positions"}


def test_annotations_round_trip_next_to_plain_records(tmp_path: Path) -> None:
    records = [_dipeptide(), *_plain_records()]
    digest = write_structures(tmp_path / "mixed.h5", records, {"dataset": "x"})
    assert digest != PLAIN_SHA256
    with h5py.File(tmp_path / "mixed.h5") as handle:
        assert sorted(handle["atom_arrays"]) == sorted(ATOM_ARRAYS)
        assert handle["atom_arrays/atom_name"].dtype.kind == "S"  # fixed width, not objects
    back = read_structures(tmp_path / "mixed.h5")
    peptide = back[0].atoms
    assert peptide is not None
    assert list(peptide.arrays["atom_name"]) == list(records[0].atoms.arrays["atom_name"])
    np.testing.assert_array_equal(peptide.arrays["residue_index"], [0] * 4 + [1] * 5)
    np.testing.assert_array_equal(peptide.arrays["residue_number"], [-1] * 4 + [1] * 5)
    # records without the arrays get none back (the fill values do not leak into them)
    for record in back[1:]:
        if record.atoms is not None:
            assert set(record.atoms.arrays) == {"numbers", "positions"}
    # the annotations are part of the content hash
    renamed = _dipeptide()
    renamed.atoms.arrays["atom_name"][-1] = "OT2"
    other = write_structures(tmp_path / "renamed.h5", [renamed, *_plain_records()], {})
    assert other != digest


def test_old_files_without_annotations_still_read(tmp_path: Path) -> None:
    path = tmp_path / "old.h5"
    write_structures(path, [_dipeptide()], {"dataset": "x"})
    with h5py.File(path, "a") as handle:  # a file written before the columns existed
        del handle["atom_arrays"]
        del handle.attrs["content_sha256"]  # (and before files recorded a content hash)
    (record,) = read_structures(path)
    assert record.atoms is not None and record.sequence == "GA"
    assert "atom_name" not in record.atoms.arrays
