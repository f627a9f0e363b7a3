"""The study's structures as plain files a model developer embeds with their own code.

``matteralign card`` places a new model against the stored zoo only on exactly the structures
the zoo embedded, in their order; these exports hand those structures out in the formats other
codes read (extended XYZ for atomistic models, ``.smi`` for SMILES models, CSV for a look),
each keyed by the structure ids of ``structures.h5``. The layouts are in ``docs/formats.md``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matteralign.datasets.store import read_structures
from matteralign.io import atomic_path
from matteralign.outputs import OutputExistsError, refuse_existing
from matteralign.records import Record

#: export format -> file suffix of its default name
FORMATS = {"extxyz": "xyz", "smiles": "smi", "csv": "csv"}
#: the CSV's leading columns; a property of the same name gets a ``properties/`` prefix
CSV_COLUMNS = ("id", "smiles", "formula", "n_atoms")


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: ``written`` records to ``path``, ``skipped`` ones that have no
    rendering in the format (no 3D structure for extxyz, no SMILES for smiles)."""

    path: Path
    fmt: str
    written: int
    skipped: int


def default_name(fmt: str) -> str:
    """The file name of an export under ``{results}/{dataset}/export/``."""
    return f"structures.{FORMATS[fmt]}"


def export_structures(structures_path: str | os.PathLike[str], fmt: str,
                      out: str | os.PathLike[str], force: bool = False) -> ExportSummary:
    """Write the records of ``structures_path`` to ``out`` in ``fmt`` (atomically, parent
    folders made), in the order of the structures file.

    An existing ``out`` is replaced only with ``force`` (:class:`OutputExistsError` names it
    otherwise), and never when it is ``structures_path`` itself."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; expected one of {sorted(FORMATS)}")
    if os.path.exists(out) and os.path.samefile(out, structures_path):
        default = Path(structures_path).parent / "export" / default_name(fmt)
        raise OutputExistsError(f"--out {out} is the structures file being exported: nothing "
                                f"was written. Choose another path with --out (default: "
                                f"{default})")
    refuse_existing([("--out", out)], force)
    records = read_structures(structures_path)
    writer = {"extxyz": _write_extxyz, "smiles": _write_smiles, "csv": _write_csv}[fmt]
    with atomic_path(out) as tmp:
        written = writer(records, tmp)
    return ExportSummary(Path(out), fmt, written, len(records) - written)


def _write_extxyz(records: Sequence[Record], path: Path) -> int:
    """One frame per record with atoms; ``info`` holds ``id``, the reference properties and
    charge/spin (as the record has them)."""
    import ase.io

    frames = []
    for record in records:
        if record.atoms is None:
            continue
        atoms = record.atoms.copy()
        atoms.info = {"id": record.id, **record.properties, **record.atoms.info}
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")
    return len(frames)


def _write_smiles(records: Sequence[Record], path: Path) -> int:
    """``SMILES<TAB>id`` lines, the usual ``.smi`` layout, for records with a SMILES."""
    lines = [f"{r.smiles}\t{r.id}\n" for r in records if r.smiles]
    path.write_text("".join(lines), encoding="utf-8")
    return len(lines)


def _write_csv(records: Sequence[Record], path: Path) -> int:
    """Every record, one row: the fixed columns, then one column per property any record has
    (sorted); empty cells where a record lacks a value."""
    names = sorted({key for r in records for key in r.properties})
    header = [*CSV_COLUMNS, *(f"properties/{k}" if k in CSV_COLUMNS else k for k in names)]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for r in records:
            atoms = r.atoms
            writer.writerow([r.id, r.smiles or "",
                             atoms.get_chemical_formula() if atoms is not None else "",
                             len(atoms) if atoms is not None else "",
                             *(r.properties.get(k, "") for k in names)])
    return len(records)
