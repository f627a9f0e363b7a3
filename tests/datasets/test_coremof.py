"""CoRE MOF 2019 from the core-mof wheel: size filter, CIF parsing, sampling, structures file."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from matteralign.datasets import DatasetUnavailable, get_dataset, registered_datasets, subsample
from matteralign.datasets.coremof import CoreMOF, p1_atoms, parse_cif
from matteralign.datasets.store import read_structures, write_structures
from matteralign.records import Record

N = 20

SMALL_CIF = """data_test\r
_cell_length_a    5.0(1)\r
_cell_length_b    6.0\r
_cell_length_c    7.0\r
_cell_angle_alpha 90\r
_cell_angle_beta  100.0\r
_cell_angle_gamma 90\r
_symmetry_space_group_name_H-M 'P1'\r
loop_\r
_symmetry_equiv_pos_as_xyz\r
  'x, y, z'\r
loop_\r
_atom_site_label\r
_atom_site_type_symbol\r
_atom_site_fract_x\r
_atom_site_fract_y\r
_atom_site_fract_z\r
_atom_site_occupancy\r
Cu1 Cu2+ 0.0 0.0 0.0 1.0\r
O1 O 0.5 0.25(2) 1.0 1.00\r
"""


@pytest.fixture(scope="session")
def coremof() -> CoreMOF:
    dataset = get_dataset("coremof")
    try:
        dataset.size()  # decompresses the archive once for the whole session (~2 s)
    except DatasetUnavailable as err:
        pytest.skip(str(err))
    assert isinstance(dataset, CoreMOF)
    return dataset


@pytest.fixture(scope="session")
def records(coremof: CoreMOF) -> list[Record]:
    return coremof.load(N, seed=0)


def cif_name(record: Record) -> str:
    return record.id.removeprefix("coremof:")


def test_registered_with_its_metadata() -> None:
    cls = registered_datasets()["coremof"]
    assert cls is CoreMOF
    assert cls.kind == "crystals"
    assert cls.modalities == ("atoms", "text")
    assert "stand-in for the paper's OMat24/sAlex" in cls.description
    assert "energy" not in cls.properties  # CoRE MOF has none


def test_import_is_cheap() -> None:
    code = (
        "import sys, matteralign.datasets.coremof; "
        "print(sorted(m for m in ('pandas', 'ase') if m in sys.modules))"
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


def test_size(coremof: CoreMOF) -> None:
    assert coremof.size() == 12_020


def test_sampling_is_deterministic(coremof: CoreMOF, records: list[Record]) -> None:
    ids = [r.id for r in records]
    assert len(set(ids)) == N
    assert ids == [r.id for r in coremof.load(N, seed=0)]
    assert [r.id for r in coremof.load(5, seed=0)] == ids[:5]  # a smaller n is a prefix
    assert [r.id for r in coremof.load(N, seed=1)] != ids


def test_sample_is_the_filtered_permutation(coremof: CoreMOF, records: list[Record]) -> None:
    cifs = coremof._cifs()
    names = list(cifs)
    expected = []
    for index in subsample(len(names), N, 0):
        if CoreMOF.read(cifs[names[index]], max_atoms=coremof.max_atoms) is not None:
            expected.append(f"coremof:{names[index]}")
        if len(expected) == N:
            break
    assert [r.id for r in records] == expected


def test_max_atoms_is_respected(coremof: CoreMOF, records: list[Record]) -> None:
    assert coremof.max_atoms == 100
    assert all(len(r.atoms) <= 100 for r in records if r.atoms is not None)
    small = CoreMOF(max_atoms=40).load(10, seed=0)
    assert all(r.atoms is not None and len(r.atoms) <= 40 for r in small)
    # the smaller filter keeps exactly the structures of the larger sample that pass it
    assert [r.id for r in records if r.properties["n_atoms"] <= 40] == [r.id for r in small][
        : sum(r.properties["n_atoms"] <= 40 for r in records)
    ]


def test_records_match_their_cif(coremof: CoreMOF, records: list[Record]) -> None:
    import pandas as pd

    from matteralign.datasets.coremof import data_dir

    cifs = coremof._cifs()
    table = pd.read_csv(data_dir() / "2019-ASR.csv").set_index("filename")
    for record in records:
        atoms = record.atoms
        assert atoms is not None
        cif = parse_cif(cifs[cif_name(record)].decode())
        assert cif.n_symmetry_ops == 1
        assert len(atoms) == len(cif.sites) == record.properties["n_atoms"]
        np.testing.assert_allclose(atoms.cell.cellpar(), cif.cellpar, atol=1e-6)
        assert atoms.pbc.all()
        scaled = atoms.get_scaled_positions(wrap=False)
        assert ((scaled > -1e-9) & (scaled < 1 + 1e-9)).all()
        # density from our parse agrees with Zeo++'s in the CoRE CSV (checks elements + cell)
        row = table.loc[cif_name(record)]
        assert record.properties["density"] == pytest.approx(row["cm3_g"], rel=1e-3)
        assert record.properties["lcd"] == pytest.approx(row["LCD"])
        assert record.properties["void_fraction"] == pytest.approx(row["AV_VF"])
        formula = atoms.get_chemical_formula(mode="hill")
        assert record.text.startswith(f"Metal-organic framework crystal, formula {formula}, ")
        assert record.text.endswith(f"{len(atoms)} atoms")
        assert record.smiles is None and record.input_for("text") == record.text


def test_parser_agrees_with_ase(coremof: CoreMOF, records: list[Record]) -> None:
    import ase.io
    from ase.geometry import find_mic

    cifs = coremof._cifs()
    for record in records[:5]:
        assert record.atoms is not None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = ase.io.read(io.StringIO(cifs[cif_name(record)].decode()), format="cif")
        np.testing.assert_array_equal(record.atoms.numbers, reference.numbers)
        np.testing.assert_allclose(record.atoms.cell.array, reference.cell.array, atol=1e-9)
        delta, _ = find_mic(record.atoms.positions - reference.positions, reference.cell)
        assert np.abs(delta).max() < 1e-6


def test_symmetry_operations_are_expanded(coremof: CoreMOF) -> None:
    data = coremof._cifs()["DONNAW01_SL"]  # Pnma: 13 sites, 8 operations
    cif = parse_cif(data.decode())
    assert (cif.n_symmetry_ops, len(cif.sites)) == (8, 13)
    atoms = CoreMOF.read(data)
    assert atoms is not None and len(atoms) == 76
    np.testing.assert_allclose(atoms.cell.cellpar(), cif.cellpar, atol=1e-6)
    assert CoreMOF.read(data, max_atoms=50) is None


def test_small_cif_parser() -> None:
    cif = parse_cif(SMALL_CIF)  # CRLF, an uncertainty, a quoted symmetry operation
    assert cif.cellpar == (5.0, 6.0, 7.0, 90.0, 100.0, 90.0)
    assert cif.n_symmetry_ops == 1
    atoms = p1_atoms(cif)
    assert atoms.get_chemical_symbols() == ["Cu", "O"]
    np.testing.assert_allclose(
        atoms.get_scaled_positions(), [[0, 0, 0], [0.5, 0.25, 0.0]], atol=1e-12
    )
    with pytest.raises(ValueError, match="partial occupancy"):
        p1_atoms(parse_cif(SMALL_CIF.replace("1.00\r", "0.50\r")))
    with pytest.raises(ValueError, match="unknown element"):
        p1_atoms(parse_cif(SMALL_CIF.replace(" O 0.5", " Qq 0.5")))
    with pytest.raises(ValueError, match="_cell_length_b"):
        parse_cif(SMALL_CIF.replace("_cell_length_b", "_cell_lengthb"))
    with pytest.raises(ValueError, match="ragged"):
        parse_cif(SMALL_CIF.replace(" 1.00\r", "\r"))


def test_unreadable_cifs_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    good = SMALL_CIF.encode()
    archive = {"A": good, "B": b"not a cif", "C": good, "D": good}
    monkeypatch.setattr(CoreMOF, "_cifs", lambda self: archive)
    dataset = CoreMOF()
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        loaded = dataset.load(3, seed=0)
    assert sorted(r.id for r in loaded) == ["coremof:A", "coremof:C", "coremof:D"]
    assert [rid for rid, _ in dataset.skipped] == ["coremof:B"]
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="only 0 of 4 have <= 1 "):
        CoreMOF(max_atoms=1).load(2, seed=0)


def test_more_than_size_raises(coremof: CoreMOF) -> None:
    with pytest.raises(ValueError, match="only 12020"):
        coremof.load(coremof.size() + 1, seed=0)


def test_options_are_checked() -> None:
    assert CoreMOF(subset="2014").record_id("X_clean") == "coremof:2014/X_clean"
    with pytest.raises(ValueError, match="max_atoms"):
        CoreMOF(max_atoms=0)
    with pytest.raises(ValueError, match="subset"):
        CoreMOF(subset="2020")
    with pytest.raises(ValueError, match="options"):
        CoreMOF(min_atoms=3)


def test_missing_package_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    with pytest.raises(DatasetUnavailable, match=r"pip install --no-deps core-mof==2019\.1"):
        CoreMOF().size()


def test_structures_round_trip(records: list[Record], tmp_path: Path) -> None:
    path = tmp_path / "structures.h5"
    write_structures(path, records, {"dataset": "coremof"})
    back = read_structures(path)
    assert [r.id for r in back] == [r.id for r in records]
    for old, new in zip(records, back, strict=True):
        assert old.atoms is not None and new.atoms is not None
        np.testing.assert_array_equal(new.atoms.numbers, old.atoms.numbers)
        np.testing.assert_array_equal(new.atoms.positions, old.atoms.positions)
        np.testing.assert_array_equal(new.atoms.cell.array, old.atoms.cell.array)
        np.testing.assert_array_equal(new.atoms.pbc, old.atoms.pbc)
        assert new.text == old.text and new.smiles is None
        assert new.properties == old.properties


def test_filtered_size_is_what_load_can_return(coremof: CoreMOF) -> None:
    """The cheap count (cached atom counts) equals what a full load finds under max_atoms."""
    small = CoreMOF(max_atoms=16)
    count = small.filtered_size()
    assert 0 < count < 100
    with pytest.raises(ValueError, match=f"only {count} of 12020 have <= 16 atoms"):
        small.load(count + 1, seed=0)
    assert CoreMOF(max_atoms=8).filtered_size() == 0
    assert coremof.filtered_size() == 2775  # the documented count of the default filter
