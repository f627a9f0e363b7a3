"""Shared by the protein datasets: one protein chain of a PDB/mmCIF file -> a :class:`Record`.

Parsing uses gemmi (imported inside the functions: the registry imports every dataset module).
The unit is the *first protein chain* of an entry (the first chain, in file order, whose polymer
is a peptide of at least :data:`MIN_RESIDUES` residues): one record per PDB entry, so the same
protein is never counted twice through the copies of a homo-oligomer.

Besides symbols and positions, a record's ``atoms`` carries per-atom PDB annotations in
``atoms.arrays`` (written to and read from structures.h5 by :mod:`matteralign.datasets.store`),
for models that read residues rather than atoms (ProteinMPNN's N, CA, C, O backbone):

- ``atom_name``: the PDB atom name (``"N"``, ``"CA"``, ``"OXT"``, ``"HB2"``, ...);
- ``residue_index``: the atom's residue as a 0-based position in ``Record.sequence``;
- ``residue_number``: the author residue number of the file (gaps in it are chain breaks or
  unmodelled residues; an insertion code repeats the number).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from matteralign.datasets.base import subsample
from matteralign.errors import InputError
from matteralign.records import Record

if TYPE_CHECKING:
    import gemmi

#: Shorter peptide chains (e.g. MHC-bound 9-mers, amyloid 7-mers) are not taken as "the protein".
MIN_RESIDUES = 20

PROTEIN_PROPERTIES: dict[str, str] = {
    "n_residues": "count; residues with coordinates in the chain (not SEQRES)",
    "n_atoms": "count; atoms of the chain (heavy atoms, plus H where the file has them)",
    "n_unknown": "count; residues written X in the sequence (no standard parent amino acid)",
    "resolution": "Å; resolution of the experiment as the file states it (absent if not given)",
}

_STANDARD = {
    "ALA": "A", "ARG": "R", "ASN": "N", "ASP": "D", "CYS": "C", "GLN": "Q", "GLU": "E",
    "GLY": "G", "HIS": "H", "ILE": "I", "LEU": "L", "LYS": "K", "MET": "M", "PHE": "F",
    "PRO": "P", "SER": "S", "THR": "T", "TRP": "W", "TYR": "Y", "VAL": "V",
}  # fmt: skip
# Force-field protonation-state names (Amber/CHARMM) that files prepared for MD use.
_FORCE_FIELD = {
    "HID": "H", "HIE": "H", "HIP": "H", "HSD": "H", "HSE": "H", "HSP": "H", "CYX": "C",
    "CYM": "C", "ASH": "D", "GLH": "E", "LYN": "K",
}  # fmt: skip


def one_letter(name: str) -> str:
    """One-letter code: standard and force-field names, else the parent of a modified amino
    acid in the PDB Chemical Component Dictionary (MSE -> M), else X."""
    import gemmi

    if name in _STANDARD:
        return _STANDARD[name]
    if name in _FORCE_FIELD:
        return _FORCE_FIELD[name]
    info = gemmi.find_tabulated_residue(name)
    if info is not None and info.is_amino_acid():
        letter = info.one_letter_code.upper()
        if letter.isalpha() and letter != "X":
            return letter
    return "X"


_AMINO_ACID_ELEMENTS = {"H", "C", "N", "O", "S"}


def _element_from_name(atom_name: str) -> str:
    """Element of an amino-acid atom from its name, for files without an element column
    (CHARMM-written PDB files, e.g. HT1): amino acids hold only H, C, N, O, S."""
    letter = atom_name.lstrip("0123456789")[:1].upper()
    return letter if letter in _AMINO_ACID_ELEMENTS else "X"


def read_structure(path: str | os.PathLike[str]) -> gemmi.Structure:
    """First model only, first alternative conformation, no waters or ligands."""
    import gemmi

    structure = gemmi.read_structure(str(path))
    if len(structure) == 0:
        raise ValueError("file holds no model")
    while len(structure) > 1:  # NMR ensembles: keep model 1
        del structure[len(structure) - 1]
    structure.setup_entities()
    structure.remove_alternative_conformations()
    structure.remove_ligands_and_waters()
    return structure


def first_protein_chain(structure: gemmi.Structure) -> tuple[str, gemmi.ResidueSpan]:
    """Name and polymer residues of the first protein chain with >= MIN_RESIDUES residues."""
    import gemmi

    peptides = (gemmi.PolymerType.PeptideL, gemmi.PolymerType.PeptideD)
    for chain in structure[0]:
        polymer = chain.get_polymer()
        if len(polymer) >= MIN_RESIDUES and polymer.check_polymer_type() in peptides:
            return chain.name, polymer
    raise ValueError(f"no protein chain of >= {MIN_RESIDUES} residues")


def chain_record(record_id: str, pdb_id: str, structure: gemmi.Structure) -> Record:
    """The record of an entry's first protein chain: atoms, sequence, text, properties."""
    from ase import Atoms

    chain_name, residues = first_protein_chain(structure)
    symbols: list[str] = []
    positions: list[tuple[float, float, float]] = []
    atom_names: list[str] = []
    residue_index: list[int] = []
    residue_number: list[int] = []
    for index, residue in enumerate(residues):
        for atom in residue:
            symbol = atom.element.name
            if symbol == "D":  # deuterium (neutron structures) is hydrogen to every model
                symbol = "H"
            standard = residue.name in _STANDARD or residue.name in _FORCE_FIELD
            if symbol == "X" or (standard and symbol not in _AMINO_ACID_ELEMENTS):
                # no element column: gemmi guesses from the name (CHARMM "CA " -> Ca)
                symbol = _element_from_name(atom.name)
            if symbol == "X":
                raise ValueError(f"unknown element of atom {atom.name} in {residue.name} "
                                 f"{residue.seqid}")
            symbols.append(symbol)
            positions.append((atom.pos.x, atom.pos.y, atom.pos.z))
            atom_names.append(atom.name)
            residue_index.append(index)
            residue_number.append(residue.seqid.num)
    coordinates = np.asarray(positions, dtype=np.float64)
    if not np.isfinite(coordinates).all():
        raise ValueError("coordinates are not all finite")
    atoms = Atoms(symbols=symbols, positions=coordinates, pbc=False)
    atoms.new_array("atom_name", np.asarray(atom_names, dtype=str))
    atoms.new_array("residue_index", np.asarray(residue_index, dtype=np.int32))
    atoms.new_array("residue_number", np.asarray(residue_number, dtype=np.int32))
    sequence = "".join(one_letter(residue.name) for residue in residues)
    properties = {
        "n_residues": float(len(sequence)),
        "n_atoms": float(len(atoms)),
        "n_unknown": float(sequence.count("X")),
    }
    if structure.resolution > 0:
        properties["resolution"] = float(structure.resolution)
    chain_text = f"chain {chain_name}" if chain_name.strip() else "chain"
    text = (f"Protein {chain_text} of PDB {pdb_id}, {len(sequence)} residues, "
            f"formula {atoms.get_chemical_formula(mode='hill')}, sequence {sequence}")
    return Record(id=record_id, atoms=atoms, sequence=sequence, text=text,
                  properties=properties)


def load_seeded(
    name: str, keys: Sequence[str], n: int, seed: int, read: Callable[[str], Record],
    skipped: list[tuple[str, str]],
) -> list[Record]:
    """Walk the seeded permutation of ``keys`` until ``n`` records read; report the rest."""
    order = subsample(len(keys), n, seed)
    records: list[Record] = []
    for index in order:
        if len(records) == n:
            break
        key = keys[int(index)]
        try:
            records.append(read(key))
        except (ValueError, RuntimeError, OSError) as err:  # gemmi raises all three
            skipped.append((key, f"{type(err).__name__}: {err}"))
    if skipped:
        listing = "; ".join(f"{key} ({why})" for key, why in skipped[:20])
        more = f" and {len(skipped) - 20} more" if len(skipped) > 20 else ""
        warnings.warn(f"{name}: skipped {len(skipped)} entries: {listing}{more}", stacklevel=3)
    if len(records) < n:
        raise InputError(f"asked for n={n} {name} proteins but only {len(records)} of "
                         f"{len(keys)} entries have a readable protein chain")
    return records
