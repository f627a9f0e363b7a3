"""Readers of the paper's ASE-LMDB data: OMat24, sAlex (crystals) and OMol25 (molecules).

fairchem publishes these sets as ``.aselmdb`` files: ASE databases in the LMDB backend of the
``ase-db-backends`` package (``ase.db.connect(path)`` picks it by the extension). A row holds
the structure, its calculator results (energy, forces, stress) and a ``data`` dict that
fairchem's ``AseDBDataset`` merges into ``atoms.info``; OMol25 keeps ``charge`` and ``spin``
(multiplicity 2S+1) there. The data cannot be downloaded on this machine: point
``options: {path: ...}`` at a downloaded ``.aselmdb`` file or a folder of them.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from matteralign.datasets.base import Dataset, DatasetUnavailable, register_dataset, subsample
from matteralign.errors import InputError
from matteralign.records import Record

if TYPE_CHECKING:
    from ase import Atoms

_INSTALL = "pip install ase-db-backends==0.11.0"


@functools.lru_cache(maxsize=16)
def _row_ids(path: str, mtime: float) -> tuple[int, ...]:
    """Row ids of one file (cached per modification time: listing opens the LMDB)."""
    with _connect(path) as db:
        return tuple(db.ids)


def _connect(path: str) -> Any:
    try:
        from ase_db_backends.aselmdb import LMDBDatabase
    except ImportError as err:
        raise DatasetUnavailable(f"reading .aselmdb needs ase-db-backends: {_INSTALL}") from err
    # read-only, no lock file: the files are shared and never written by matteralign
    return LMDBDatabase(path, readonly=True, use_lock_file=False)


def crystal_text(atoms: Atoms) -> str:
    a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
    return (f"Inorganic crystal, formula {atoms.get_chemical_formula(mode='hill')}, "
            f"{len(atoms)} atoms per cell, a={a:.3f} b={b:.3f} c={c:.3f} Å, "
            f"α={alpha:.1f} β={beta:.1f} γ={gamma:.1f}°")


def molecule_text(atoms: Atoms) -> str:
    charge = int(round(float(atoms.info.get("charge", 0))))
    spin = atoms.info.get("spin")
    text = (f"Molecule with formula {atoms.get_chemical_formula(mode='hill')}, "
            f"{len(atoms)} atoms, charge {charge:+d}")
    return text + (f", spin multiplicity {int(spin)}" if spin is not None else "")


class AseLmdbDataset(Dataset):
    """Rows of one ``.aselmdb`` file or of every ``*.aselmdb`` in a folder (sorted by name)."""

    modalities: ClassVar[tuple[str, ...]] = ("atoms", "text")
    download: ClassVar[str]  # what to download from where (matteralign data fetch)
    periodic: ClassVar[bool]
    #: every subclass's rows store the DFT total energy (NaN where a row has none)
    reference_energy: ClassVar[str | None] = "energy"

    def __init__(self, **options: object) -> None:
        unknown = sorted(set(options) - {"path"})
        if unknown:
            raise ValueError(f"{self.name} takes only the option 'path', got {unknown}")
        super().__init__(**options)
        path = options.get("path")
        self.path = Path(str(path)).expanduser() if path else None
        self.skipped: list[tuple[str, str]] = []

    def _missing(self, what: str) -> DatasetUnavailable:
        return DatasetUnavailable(
            f"{self.name}: {what}. {self.download} Then set datasets.{self.name}.options.path "
            f"in the config to the .aselmdb file or its folder."
        )

    def files(self) -> list[Path]:
        if self.path is None:
            raise self._missing("no local path given (options: {path: ...})")
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            raise self._missing(f"{self.path} does not exist")
        files = sorted(self.path.glob("*.aselmdb"))
        if not files:
            raise self._missing(f"no *.aselmdb files in {self.path}")
        return files

    def _index(self) -> list[tuple[Path, int]]:
        """(file, row id) of every row, files in name order, rows in id order."""
        index = []
        for file in self.files():
            index += [(file, i) for i in _row_ids(str(file), file.stat().st_mtime)]
        return index

    def size(self) -> int:
        return len(self._index())

    def load(self, n: int, seed: int) -> list[Record]:
        import warnings

        index = self._index()
        order = subsample(len(index), n, seed)
        chosen = [index[int(i)] for i in order]
        records: list[Record] = []
        self.skipped = []
        handles: dict[Path, Any] = {}
        try:
            for file, row_id in chosen:
                if len(records) == n:
                    break
                record_id = f"{self.name}:{file.stem}/{row_id}"
                if file not in handles:
                    handles[file] = _connect(str(file))
                try:
                    records.append(self._record(record_id, handles[file]._get_row(row_id)))
                except (ValueError, KeyError, TypeError) as err:
                    self.skipped.append((record_id, f"{type(err).__name__}: {err}"))
        finally:
            for handle in handles.values():
                handle.close()
        if self.skipped:
            listing = "; ".join(f"{rid} ({why})" for rid, why in self.skipped[:20])
            warnings.warn(f"{self.name}: skipped {len(self.skipped)} rows: {listing}",
                          stacklevel=2)
        if len(records) < n:
            raise InputError(f"asked for n={n} {self.name} structures but only {len(records)} "
                             f"of {len(index)} rows are usable")
        return records

    def _record(self, record_id: str, row: Any) -> Record:
        atoms = row.toatoms()
        if len(atoms) == 0:
            raise ValueError("row holds no atoms")
        if not np.isfinite(atoms.positions).all():
            raise ValueError("coordinates are not all finite")
        info = dict(row.get("key_value_pairs", {}))
        if isinstance(row.get("data"), dict):
            info.update(row.data)  # what fairchem's AseDBDataset.get_atoms does
        for key in ("charge", "spin"):
            if key in info:
                atoms.info[key] = info[key]
        if self.periodic and not atoms.pbc.all():
            raise ValueError(f"expected a periodic crystal, got pbc {atoms.pbc.tolist()}")
        properties = {"n_atoms": float(len(atoms))}
        energy = row.get("energy")
        if energy is not None:
            properties["energy"] = float(energy)
            properties["energy_per_atom"] = float(energy) / len(atoms)
        forces = row.get("forces")
        if forces is not None:
            properties["fmax"] = float(np.linalg.norm(np.asarray(forces), axis=1).max())
        stress = row.get("stress")
        if stress is not None:
            # ASE Voigt order xx yy zz yz xz xy, eV/Å³; pressure = -trace/3
            properties["pressure"] = -float(np.mean(np.asarray(stress).ravel()[:3]))
        atoms.calc = None  # records carry structures; reference values live in properties
        text = crystal_text(atoms) if self.periodic else molecule_text(atoms)
        return Record(id=record_id, atoms=atoms, text=text, properties=properties)


_CRYSTAL_PROPERTIES = {
    "energy": "eV; total energy, DFT PBE/PBE+U (VASP), as stored in the .aselmdb row",
    "energy_per_atom": "eV/atom; energy / n_atoms",
    "fmax": "eV/Å; largest atomic force norm of the row",
    "pressure": "eV/Å³; -trace(stress)/3 of the row",
    "n_atoms": "count; atoms in the cell",
}


@register_dataset
class OMat24(AseLmdbDataset):
    name: ClassVar[str] = "omat24"
    description: ClassVar[str] = (
        "OMat24 (Barroso-Luque et al. 2024): ~110M non-equilibrium inorganic bulk structures "
        "(rattled, AIMD, relaxations) with PBE(+U) energies, forces and stress."
    )
    kind: ClassVar[str] = "crystals"
    source: ClassVar[str] = "OMat24 .aselmdb files (fairchem; CC BY 4.0), local path"
    properties: ClassVar[dict[str, str]] = _CRYSTAL_PROPERTIES
    periodic: ClassVar[bool] = True
    download: ClassVar[str] = (
        "Download the OMat24 validation (held-out) split tarballs from "
        "https://huggingface.co/datasets/facebook/OMAT24 (CC BY 4.0) and untar them."
    )


@register_dataset
class SAlex(AseLmdbDataset):
    name: ClassVar[str] = "salex"
    description: ClassVar[str] = (
        "sAlex (OMat24 paper): Alexandria PBE relaxations subsampled and deduplicated against "
        "the WBM test set; near-equilibrium inorganic crystals with energies, forces, stress."
    )
    kind: ClassVar[str] = "crystals"
    source: ClassVar[str] = "sAlex .aselmdb files (fairchem; CC BY 4.0), local path"
    properties: ClassVar[dict[str, str]] = _CRYSTAL_PROPERTIES
    periodic: ClassVar[bool] = True
    download: ClassVar[str] = (
        "Download the sAlex validation split tarball from "
        "https://huggingface.co/datasets/facebook/OMAT24 (CC BY 4.0) and untar it."
    )


@register_dataset
class OMol25(AseLmdbDataset):
    name: ClassVar[str] = "omol25"
    description: ClassVar[str] = (
        "OMol25 (Levine et al. 2025): ~100M molecular DFT calculations (ωB97M-V/def2-TZVPD) "
        "over organics, biomolecules, electrolytes and metal complexes, with charge and spin."
    )
    kind: ClassVar[str] = "molecules"
    source: ClassVar[str] = "OMol25 .aselmdb files (fairchem; CC BY 4.0), local path"
    properties: ClassVar[dict[str, str]] = {
        "energy": "eV; total energy, ωB97M-V/def2-TZVPD (ORCA), as stored in the row",
        "energy_per_atom": "eV/atom; energy / n_atoms",
        "fmax": "eV/Å; largest atomic force norm of the row",
        "n_atoms": "count; atoms of the molecule",
    }
    periodic: ClassVar[bool] = False
    download: ClassVar[str] = (
        "Download the OMol25 validation split (e.g. the 4M or neutral val .aselmdb) from "
        "https://huggingface.co/facebook/OMol25 (gated: accept the licence and log in)."
    )
