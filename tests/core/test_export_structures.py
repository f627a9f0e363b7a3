"""export-structures: each format gives back exactly the structures (ids, order, atoms, cell,
SMILES, properties) of structures.h5, and the command names a missing study file."""

from __future__ import annotations

import csv
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms

from matteralign.cli import main
from matteralign.datasets.export import export_structures
from matteralign.datasets.store import read_structures, write_structures
from matteralign.records import Record


def _records() -> list[Record]:
    water = Atoms("OH2", positions=[[0, 0, 0.1], [0, 0.763241, -0.47123456789], [0, -0.76, -0.47]])
    water.info["charge"] = 0.0
    water.info["spin"] = 1.0
    silicon = Atoms("Si2", scaled_positions=[[0, 0, 0], [0.25, 0.25, 0.25]],
                    cell=[[0, 2.7, 2.7], [2.7, 0, 2.7], [2.7, 2.7, 0]], pbc=True)
    cation = Atoms("NH4", positions=[[0, 0, 0], [0.6, 0.6, 0.6], [-0.6, -0.6, 0.6],
                                     [-0.6, 0.6, -0.6], [0.6, -0.6, -0.6]])
    cation.info["charge"] = 1.0
    return [Record(id="t:water", atoms=water, smiles="O", text="water",
                   properties={"energy": -14.2, "gap": 7.123456789012345, "n_atoms": 3.0}),
            Record(id="t:si", atoms=silicon, text="silicon", properties={"gap": 1.1}),
            Record(id="t:seq", sequence="MKV", text="peptide"),
            Record(id="t:nh4", atoms=cation, smiles="[NH4+]", text="ammonium")]


@pytest.fixture
def structures(tmp_path: Path) -> Path:
    path = tmp_path / "results" / "toy" / "structures.h5"
    path.parent.mkdir(parents=True)
    write_structures(path, _records(), {"dataset": "toy"})
    return path


def test_extxyz_round_trips_ids_atoms_cell_and_info(structures: Path, tmp_path: Path) -> None:
    summary = export_structures(structures, "extxyz", tmp_path / "s.xyz")
    assert (summary.written, summary.skipped) == (3, 1)
    stored = [r for r in read_structures(structures) if r.atoms is not None]
    frames = ase.io.read(tmp_path / "s.xyz", index=":", format="extxyz")
    assert [f.info["id"] for f in frames] == [r.id for r in stored]
    for frame, record in zip(frames, stored, strict=True):
        np.testing.assert_array_equal(frame.numbers, record.atoms.numbers)
        np.testing.assert_allclose(frame.positions, record.atoms.positions, rtol=0, atol=1e-8)
        np.testing.assert_array_equal(frame.pbc, record.atoms.pbc)
        np.testing.assert_allclose(frame.cell.array, record.atoms.cell.array, atol=1e-8)
        assert frame.info["charge"] == record.atoms.info["charge"]
        assert frame.info.get("spin") == record.atoms.info.get("spin")
        # ase's reader files keys that name calculator results (energy) under atoms.calc
        results = frame.calc.results if frame.calc is not None else {}
        for name, value in record.properties.items():
            assert frame.info.get(name, results.get(name)) == value
    assert frames[1].pbc.all() and frames[1].cell.volume > 0
    assert frames[2].info["charge"] == 1.0 and "spin" not in frames[2].info


def test_smiles_lines_are_smiles_tab_id(structures: Path, tmp_path: Path) -> None:
    summary = export_structures(structures, "smiles", tmp_path / "s.smi")
    assert (summary.written, summary.skipped) == (2, 2)
    lines = (tmp_path / "s.smi").read_text().splitlines()
    expected = [f"{r.smiles}\t{r.id}" for r in read_structures(structures) if r.smiles]
    assert lines == expected == ["O\tt:water", "[NH4+]\tt:nh4"]


def test_csv_has_every_record_and_property(structures: Path, tmp_path: Path) -> None:
    summary = export_structures(structures, "csv", tmp_path / "s.csv")
    assert (summary.written, summary.skipped) == (4, 0)
    with open(tmp_path / "s.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "smiles", "formula", "n_atoms", "energy", "gap", "properties/n_atoms"]
    assert rows[1] == ["t:water", "O", "H2O", "3", "-14.2", "7.123456789012345", "3.0"]
    assert rows[2] == ["t:si", "", "Si2", "2", "", "1.1", ""]
    assert rows[3] == ["t:seq", "", "", "", "", "", ""]
    assert rows[4][:4] == ["t:nh4", "[NH4+]", "H4N", "5"]
    assert float(rows[1][5]) == 7.123456789012345


def test_cli_writes_the_default_path(structures: Path, capsys: pytest.CaptureFixture[str]
                                     ) -> None:
    results = structures.parents[1]
    assert main(["export-structures", "--dataset", "toy", "--results", str(results),
                 "--format", "extxyz"]) == 0
    out = results / "toy" / "export" / "structures.xyz"
    assert len(ase.io.read(out, index=":")) == 3
    printed = capsys.readouterr().out
    assert str(out) in printed and "3 structures" in printed
    assert "1 skipped (no 3D structure)" in printed
    assert [p.name for p in out.parent.iterdir()] == ["structures.xyz"]  # no temp file left


def test_cli_names_a_missing_structures_file(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-structures", "--dataset", "qm9", "--results", str(tmp_path),
                 "--format", "smiles"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "qm9" / "structures.h5") in err
    assert "snakemake" in err and "--results" in err and "Traceback" not in err
    assert not (tmp_path / "qm9").exists()


def test_cli_refuses_an_unknown_format(structures: Path) -> None:
    with pytest.raises(SystemExit):
        main(["export-structures", "--dataset", "toy", "--format", "pdb"])


def test_cli_never_overwrites_the_study_input(structures: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The reported loss: --out naming structures.h5 replaced it with CSV text."""
    before = structures.read_bytes()
    for force in ([], ["--force"]):
        assert main(["export-structures", "--dataset", "toy", "--results",
                     str(structures.parents[1]), "--format", "csv", "--out", str(structures),
                     *force]) == 2
        err = capsys.readouterr().err
        assert str(structures) in err and "--out" in err and "Traceback" not in err
    assert structures.read_bytes() == before
    assert read_structures(structures)[0].id == "t:water"


def test_an_existing_file_is_replaced_only_with_force(structures: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    mine = tmp_path / "mine.smi"
    mine.write_text("my own notes\n")
    args = ["export-structures", "--dataset", "toy", "--results", str(structures.parents[1]),
            "--format", "smiles", "--out", str(mine)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{mine} (--out) already exists: nothing was written" in err
    assert "--force" in err and err.count("\n") == 1
    assert mine.read_text() == "my own notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.smi", "results"]  # no temp
    assert main([*args, "--force"]) == 0
    assert mine.read_text().splitlines() == ["O\tt:water", "[NH4+]\tt:nh4"]


def test_the_default_path_is_not_overwritten_either(structures: Path) -> None:
    args = ["export-structures", "--dataset", "toy", "--results", str(structures.parents[1]),
            "--format", "extxyz"]
    assert main(args) == 0
    out = structures.parent / "export" / "structures.xyz"
    out.write_text("edited by hand\n")
    assert main(args) == 2
    assert out.read_text() == "edited by hand\n"
    from matteralign.outputs import OutputExistsError

    with pytest.raises(OutputExistsError, match="--force"):
        export_structures(structures, "extxyz", out)
    assert export_structures(structures, "extxyz", out, force=True).written == 3
