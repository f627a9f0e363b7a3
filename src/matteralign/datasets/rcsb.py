"""RCSB PDB: a local directory of mmCIF files (``.cif`` / ``.cif.gz``, any depth, e.g. the
``divided/mmCIF`` layout of the wwPDB archive); one record per entry, its first protein chain,
in the same layout as ``pdb-packaged``. Point ``options: {path: ...}`` at the folder.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import ClassVar

from matteralign.datasets._pdb import PROTEIN_PROPERTIES, chain_record, load_seeded, read_structure
from matteralign.datasets.base import Dataset, DatasetUnavailable, register_dataset
from matteralign.records import Record

_SUFFIXES = (".cif", ".cif.gz")


def _entry_id(path: Path) -> str:
    name = path.name
    for suffix in _SUFFIXES[::-1]:  # .cif.gz before .cif
        if name.lower().endswith(suffix):
            return name[: -len(suffix)].upper()
    raise ValueError(f"{path} is not an mmCIF file")


@functools.lru_cache(maxsize=4)
def _entries(folder: str, mtime: float) -> dict[str, str]:
    """PDB id -> file, deduplicated by id (first file in sorted path order wins)."""
    entries: dict[str, str] = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name.lower().endswith(_SUFFIXES):
            entries.setdefault(_entry_id(path), str(path))
    return entries


@register_dataset
class RcsbPDB(Dataset):
    """Protein chains of a local copy of (part of) the PDB archive, as mmCIF files."""

    name: ClassVar[str] = "rcsb-pdb"
    description: ClassVar[str] = (
        "RCSB PDB entries from a local folder of mmCIF files; the first protein chain of each."
    )
    kind: ClassVar[str] = "proteins"
    source: ClassVar[str] = "RCSB PDB / wwPDB archive mmCIF files (CC0), local path"
    modalities: ClassVar[tuple[str, ...]] = ("atoms", "sequence", "text")
    properties: ClassVar[dict[str, str]] = PROTEIN_PROPERTIES
    download: ClassVar[str] = (
        "Download mmCIF files (.cif.gz) from the wwPDB archive, e.g. "
        "`rsync -rlpt -z rsync.rcsb.org::ftp_data/structures/divided/mmCIF/ ./mmCIF` (all "
        "entries, ~60 GB) or single entries from https://files.rcsb.org/download/<ID>.cif.gz."
    )

    def __init__(self, **options: object) -> None:
        unknown = sorted(set(options) - {"path"})
        if unknown:
            raise ValueError(f"rcsb-pdb takes only the option 'path', got {unknown}")
        super().__init__(**options)
        path = options.get("path")
        self.path = Path(str(path)).expanduser() if path else None
        self.skipped: list[tuple[str, str]] = []

    def _missing(self, what: str) -> DatasetUnavailable:
        return DatasetUnavailable(f"rcsb-pdb: {what}. {self.download} Then set "
                                  f"datasets.rcsb-pdb.options.path in the config to that folder.")

    def entries(self) -> dict[str, str]:
        if self.path is None:
            raise self._missing("no local path given (options: {path: ...})")
        if self.path.is_file():
            return {_entry_id(self.path): str(self.path)}
        if not self.path.is_dir():
            raise self._missing(f"{self.path} does not exist")
        entries = _entries(str(self.path), self.path.stat().st_mtime)
        if not entries:
            raise self._missing(f"no .cif or .cif.gz files under {self.path}")
        return entries

    def size(self) -> int:
        return len(self.entries())

    def record(self, pdb_id: str) -> Record:
        structure = read_structure(self.entries()[pdb_id])
        return chain_record(f"rcsb-pdb:{pdb_id}", pdb_id, structure)

    def load(self, n: int, seed: int) -> list[Record]:
        entries = self.entries()
        self.skipped = []
        return load_seeded(self.name, sorted(entries), n, seed, self.record, self.skipped)
