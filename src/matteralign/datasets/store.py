"""The prepared-structures file, results/{dataset}/structures.h5.

It is written once by the data rule in the driver environment and read by every embedding job,
so model environments never need the dataset's own packages (qm9pack, core-mof, ...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from matteralign.io import (
    atomic_h5,
    load_verified,
    open_h5,
    read_attrs,
    read_strings,
    require,
    set_attrs,
    sha256_arrays,
    strings,
)
from matteralign.records import Record

#: Optional per-atom annotations (``Atoms.arrays`` key -> (dtype kind, fill value for atoms
#: of records without it)): PDB atom names and residue numbering of protein chains (see
#: :mod:`matteralign.datasets._pdb`). A file holds one of these columns only when some record
#: has the array, so molecule and crystal datasets keep their columns and dataset hash.
_ABSENT = int(np.iinfo(np.int32).min)
ATOM_ARRAYS: dict[str, tuple[str, object]] = {
    "atom_name": ("S", b""),
    "residue_index": ("i", _ABSENT),
    "residue_number": ("i", _ABSENT),
}


def _columns(records: Sequence[Record]) -> dict[str, np.ndarray]:
    n_atoms = np.array([len(r.atoms) if r.atoms is not None else 0 for r in records], np.int64)
    numbers, positions = [], []
    cells = np.zeros((len(records), 3, 3))
    pbc = np.zeros((len(records), 3), bool)
    charge = np.zeros(len(records))
    spin = np.full(len(records), np.nan)
    for i, record in enumerate(records):
        if record.atoms is None:
            continue
        numbers.append(record.atoms.numbers)
        positions.append(record.atoms.positions)
        cells[i] = record.atoms.cell.array
        pbc[i] = record.atoms.pbc
        charge[i] = record.atoms.info.get("charge", 0.0)
        spin[i] = record.atoms.info.get("spin", np.nan)
    return {
        "ids": np.array([r.id for r in records], dtype=object),
        "n_atoms": n_atoms,
        "numbers": np.concatenate(numbers).astype(np.int64) if numbers else np.zeros(0, np.int64),
        "positions": np.concatenate(positions) if positions else np.zeros((0, 3)),
        "cells": cells,
        "pbc": pbc,
        "charge": charge,
        "spin": spin,
        "smiles": np.array([r.smiles or "" for r in records], dtype=object),
        "sequence": np.array([r.sequence or "" for r in records], dtype=object),
        "text": np.array([r.text for r in records], dtype=object),
    }


def _atom_arrays(records: Sequence[Record]) -> dict[str, np.ndarray]:
    """The optional per-atom columns some record has, concatenated like ``positions``
    (atoms of records without the array get the fill value)."""
    present = [r.atoms for r in records if r.atoms is not None]
    columns = {}
    for key, (kind, fill) in ATOM_ARRAYS.items():
        if not any(key in atoms.arrays for atoms in present):
            continue
        parts = []
        for atoms in present:
            if key in atoms.arrays:
                values = np.asarray(atoms.arrays[key])
                parts.append(np.char.encode(values.astype(str), "ascii") if kind == "S"
                             else values.astype(np.int32))
            else:
                parts.append(np.full(len(atoms), fill, dtype="S1" if kind == "S" else np.int32))
        columns[key] = np.concatenate(parts)
    return columns


def write_structures(
    path: str | os.PathLike[str], records: Sequence[Record], attrs: Mapping[str, Any]
) -> str:
    """Write records; return the dataset hash (content of every column and property)."""
    columns = _columns(records)
    names = sorted({key for r in records for key in r.properties})
    props = {
        key: np.array([r.properties.get(key, np.nan) for r in records], np.float64)
        for key in names
    }
    extra = _atom_arrays(records)
    # the optional columns join the hash only where present: older datasets keep theirs
    digest = sha256_arrays(*columns.values(), *(props[k] for k in names), np.array(names, object),
                           *(np.array([k], object) for k in extra), *extra.values())
    with atomic_h5(path) as handle:
        for key, column in columns.items():
            data = strings(list(column)) if column.dtype == object else column
            handle.create_dataset(key, data=data)
        if extra:
            group = handle.create_group("atom_arrays")
            for key, column in extra.items():
                group.create_dataset(key, data=column)
        group = handle.create_group("properties")
        for key, values in props.items():
            group.create_dataset(key, data=values)
        set_attrs(handle, {**attrs, "n": len(records), "dataset_sha256": digest})
    return digest


def read_structure_attrs(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The file's attributes (an unreadable file raises :class:`CorruptFileError`)."""
    with open_h5(path) as handle:
        return read_attrs(handle)


def read_structures(path: str | os.PathLike[str]) -> list[Record]:
    """The records of a structures file, after checking its content hash."""
    from ase import Atoms

    data, _ = load_verified(path)

    def column(name: str) -> np.ndarray:
        return require(data, name, path)

    ids = read_strings(column("ids"))
    n_atoms = column("n_atoms")
    numbers, positions = column("numbers"), column("positions")
    cells, pbc = column("cells"), column("pbc")
    charge, spin = column("charge"), column("spin")
    smiles = read_strings(column("smiles"))
    sequence = read_strings(column("sequence"))
    text = read_strings(column("text"))
    props = {name.split("/", 1)[1]: values for name, values in data.items()
             if name.startswith("properties/")}
    extra = {key: data[f"atom_arrays/{key}"] for key in ATOM_ARRAYS
             if f"atom_arrays/{key}" in data}
    offsets = np.concatenate([[0], np.cumsum(n_atoms)])
    records = []
    for i, record_id in enumerate(ids):
        atoms = None
        if n_atoms[i] > 0:
            lo, hi = offsets[i], offsets[i + 1]
            atoms = Atoms(numbers=numbers[lo:hi], positions=positions[lo:hi], cell=cells[i],
                          pbc=pbc[i])
            atoms.info["charge"] = float(charge[i])
            if not np.isnan(spin[i]):
                atoms.info["spin"] = float(spin[i])
            for key, column in extra.items():
                values = column[lo:hi]
                if (values == ATOM_ARRAYS[key][1]).all():
                    continue  # the fill value throughout: this record had no such array
                atoms.new_array(key, np.char.decode(values, "ascii") if values.dtype.kind == "S"
                                else values.astype(np.int32))
        records.append(
            Record(
                id=record_id,
                atoms=atoms,
                smiles=smiles[i] or None,
                sequence=sequence[i] or None,
                text=text[i],
                properties={k: float(v[i]) for k, v in props.items() if not np.isnan(v[i])},
            )
        )
    return records


def properties_json(description: Mapping[str, str]) -> str:
    return json.dumps(dict(description), sort_keys=True)
