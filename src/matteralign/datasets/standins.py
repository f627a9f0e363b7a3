"""Offline stand-ins for the paper's OMat24, sAlex and OMol25, named ``*-like`` everywhere.

None of these is the paper's data; they reproduce its *kind* so the in-distribution vs
out-of-distribution contrast (materials models on crystals vs molecules) can be run offline:

* ``omat24-like``: rattled, strained and thermally displaced supercells of ~60 bulk
  prototypes built with ``ase`` (OMat24 is non-equilibrium bulk structures).
* ``salex-like``: the same prototypes near equilibrium (primitive cells, ±2 % volume, 0.01 Å
  noise), as sAlex holds relaxed Alexandria crystals.
* ``omol25-like``: drug-like molecules of the MOSES *test* split with an RDKit ETKDG + MMFF94
  conformer; every third is ionised where it has an acid or a basic amine (charged species).

Every record is generated from its index alone (seeded), so a sample is reproducible and a
smaller n is a prefix of a larger one. No reference energies exist: the properties are the
generator's parameters (and an MMFF94 force-field energy for molecules), described as such.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from matteralign.datasets.base import Dataset, DatasetUnavailable, register_dataset, subsample
from matteralign.datasets.lmdb import crystal_text, molecule_text
from matteralign.errors import InputError
from matteralign.records import Record

if TYPE_CHECKING:
    import pandas as pd
    from ase import Atoms

_SEED = 20241018  # fixed stream per dataset; the study seed only permutes the pool

#: (formula, ase.build.bulk crystalstructure, a [Å], c [Å] or None); literature lattice
#: constants rounded to 0.01 Å (they only need to be near equilibrium).
_BULK: tuple[tuple[str, str, float, float | None], ...] = (
    ("Al", "fcc", 4.05, None), ("Cu", "fcc", 3.61, None), ("Ag", "fcc", 4.09, None),
    ("Au", "fcc", 4.08, None), ("Ni", "fcc", 3.52, None), ("Pd", "fcc", 3.89, None),
    ("Pt", "fcc", 3.92, None), ("Pb", "fcc", 4.95, None), ("Ca", "fcc", 5.59, None),
    ("Fe", "bcc", 2.87, None), ("Cr", "bcc", 2.88, None), ("Mo", "bcc", 3.15, None),
    ("W", "bcc", 3.16, None), ("V", "bcc", 3.03, None), ("Nb", "bcc", 3.30, None),
    ("Ta", "bcc", 3.31, None), ("Li", "bcc", 3.51, None), ("Na", "bcc", 4.29, None),
    ("K", "bcc", 5.33, None), ("Ba", "bcc", 5.02, None),
    ("Mg", "hcp", 3.21, 5.21), ("Ti", "hcp", 2.95, 4.68), ("Zn", "hcp", 2.66, 4.95),
    ("Co", "hcp", 2.51, 4.07), ("Zr", "hcp", 3.23, 5.15), ("Be", "hcp", 2.29, 3.58),
    ("Si", "diamond", 5.43, None), ("Ge", "diamond", 5.66, None), ("C", "diamond", 3.57, None),
    ("NaCl", "rocksalt", 5.64, None), ("MgO", "rocksalt", 4.21, None),
    ("LiF", "rocksalt", 4.03, None), ("KCl", "rocksalt", 6.29, None),
    ("CaO", "rocksalt", 4.81, None), ("NiO", "rocksalt", 4.17, None),
    ("TiC", "rocksalt", 4.33, None), ("TiN", "rocksalt", 4.24, None),
    ("GaAs", "zincblende", 5.65, None), ("ZnS", "zincblende", 5.41, None),
    ("SiC", "zincblende", 4.36, None), ("InP", "zincblende", 5.87, None),
    ("CdTe", "zincblende", 6.48, None), ("BN", "zincblende", 3.62, None),
    ("CsCl", "cesiumchloride", 4.12, None), ("CuZn", "cesiumchloride", 2.95, None),
    ("NiAl", "cesiumchloride", 2.88, None), ("FeAl", "cesiumchloride", 2.91, None),
    ("CaF2", "fluorite", 5.46, None), ("CeO2", "fluorite", 5.41, None),
    ("UO2", "fluorite", 5.47, None), ("ZrO2", "fluorite", 5.07, None),
    ("ZnO", "wurtzite", 3.25, 5.21), ("GaN", "wurtzite", 3.19, 5.19),
    ("AlN", "wurtzite", 3.11, 4.98),
)  # fmt: skip
#: ABO3 cubic perovskites (Pm-3m) and AO2 rutiles (P4_2/mnm, O at (x, x, 0)).
_PEROVSKITES = (("SrTiO3", 3.905), ("BaTiO3", 4.00), ("CaTiO3", 3.84), ("KNbO3", 4.02),
                ("LaAlO3", 3.79))
_RUTILES = (("TiO2", 4.594, 2.959, 0.305), ("SnO2", 4.737, 3.186, 0.307),
            ("MnO2", 4.40, 2.87, 0.303), ("RuO2", 4.49, 3.11, 0.306))


def _split(formula: str) -> list[str]:
    from ase.formula import Formula

    return list(Formula(formula).count())


@functools.lru_cache(maxsize=1)
def prototypes() -> tuple[tuple[str, Atoms], ...]:
    """(name, primitive equilibrium cell) of every prototype, in a fixed order."""
    from ase.build import bulk
    from ase.spacegroup import crystal

    out = []
    for formula, structure, a, c in _BULK:
        kwargs = {"c": c} if c is not None else {}
        out.append((f"{formula}-{structure}", bulk(formula, structure, a=a, **kwargs)))
    for formula, a in _PEROVSKITES:
        A, B, _ = _split(formula)
        atoms = crystal([A, B, "O"], basis=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)],
                        spacegroup=221, cellpar=[a, a, a, 90, 90, 90])
        out.append((f"{formula}-perovskite", atoms))
    for formula, a, c, x in _RUTILES:
        metal = _split(formula)[0]
        atoms = crystal([metal, "O"], basis=[(0, 0, 0), (x, x, 0)], spacegroup=136,
                        cellpar=[a, a, c, 90, 90, 90])
        out.append((f"{formula}-rutile", atoms))
    return tuple(out)


def _supercell(atoms: Atoms, target: int) -> Atoms:
    """Repeat the cell along each axis about evenly until it holds >= ``target`` atoms."""
    reps = [1, 1, 1]
    lengths = atoms.cell.lengths()
    while len(atoms) * np.prod(reps) < target:
        axis = int(np.argmin(lengths * np.array(reps)))
        reps[axis] += 1
    return atoms.repeat(reps)


class _Generated(Dataset):
    """A fixed pool of ``pool`` structures, record ``i`` generated from ``(_SEED, i)``."""

    pool: ClassVar[int]
    standin: ClassVar[bool] = True

    def __init__(self, **options: object) -> None:
        if options:
            raise ValueError(f"{self.name} takes no options, got {sorted(options)}")
        super().__init__(**options)
        self.skipped: list[tuple[str, str]] = []

    def size(self) -> int:
        return self.pool

    def generate(self, index: int) -> Record:
        raise NotImplementedError

    def load(self, n: int, seed: int) -> list[Record]:
        return _walk(self, n, seed, self.generate)


def _walk(dataset: _Generated, n: int, seed: int, make: Callable[[int], Record]) -> list[Record]:
    order = subsample(dataset.size(), n, seed)
    records: list[Record] = []
    dataset.skipped = []
    for index in order:
        if len(records) == n:
            break
        try:
            records.append(make(int(index)))
        except ValueError as err:
            dataset.skipped.append((f"{dataset.name}:{int(index)}", str(err)))
    if dataset.skipped:
        listing = "; ".join(f"{rid} ({why})" for rid, why in dataset.skipped[:20])
        warnings.warn(f"{dataset.name}: skipped {len(dataset.skipped)}: {listing}", stacklevel=3)
    if len(records) < n:
        raise InputError(f"asked for n={n} {dataset.name} structures but only {len(records)} "
                         f"of {dataset.size()} could be generated")
    return records


@register_dataset
class OMat24Like(_Generated):
    name: ClassVar[str] = "omat24-like"
    description: ClassVar[str] = (
        "STAND-IN for OMat24: non-equilibrium bulk crystals (rattled, strained, thermally "
        "displaced supercells of 63 ase-built prototypes: elements, binaries, perovskites, "
        "rutiles), 8-64 atoms. No DFT data."
    )
    kind: ClassVar[str] = "crystals"
    source: ClassVar[str] = "generated with ase (LGPL-2.1) from literature lattice constants"
    modalities: ClassVar[tuple[str, ...]] = ("atoms", "text")
    properties: ClassVar[dict[str, str]] = {
        "rattle": "Å; std of the Gaussian displacements applied (generator parameter)",
        "strain": "unitless; largest |component| of the applied strain (generator parameter)",
        "temperature": "K; nominal temperature of thermal displacements (generator, 'thermal')",
        "n_atoms": "count; atoms in the cell",
    }
    pool: ClassVar[int] = 30_000
    MODES: ClassVar[tuple[str, ...]] = ("rattled", "strained", "thermal")

    def generate(self, index: int) -> Record:
        protos = prototypes()
        name, primitive = protos[index % len(protos)]
        mode = self.MODES[(index // len(protos)) % len(self.MODES)]
        rng = np.random.default_rng([_SEED, 1, index])
        atoms = _supercell(primitive, int(rng.integers(8, 33)))
        strain = np.zeros((3, 3))
        temperature = 0.0
        if mode == "rattled":
            rattle = float(rng.uniform(0.05, 0.3))
        elif mode == "strained":
            upper = np.triu(rng.uniform(-0.08, 0.08, (3, 3)))
            strain = (upper + upper.T) / 2
            rattle = 0.02
        else:  # harmonic estimate: ~0.1 Å rms at 1000 K, growing as sqrt(T)
            temperature = float(rng.uniform(300, 3000))
            rattle = 0.1 * float(np.sqrt(temperature / 1000))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
        atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
        atoms.wrap()
        properties = {"rattle": rattle, "strain": float(np.abs(strain).max()),
                      "n_atoms": float(len(atoms))}
        if temperature:
            properties["temperature"] = temperature
        text = f"{crystal_text(atoms)}; {mode} {name.split('-')[1]} structure"
        return Record(id=f"{self.name}:{index}/{name}/{mode}", atoms=atoms, text=text,
                      properties=properties)


@register_dataset
class SAlexLike(_Generated):
    name: ClassVar[str] = "salex-like"
    description: ClassVar[str] = (
        "STAND-IN for sAlex: near-equilibrium symmetric crystals (primitive cells of 63 "
        "ase-built prototypes, volume ±2 %, 0.01 Å noise). No DFT data."
    )
    kind: ClassVar[str] = "crystals"
    source: ClassVar[str] = "generated with ase (LGPL-2.1) from literature lattice constants"
    modalities: ClassVar[tuple[str, ...]] = ("atoms", "text")
    properties: ClassVar[dict[str, str]] = {
        "volume_scale": "unitless; cell volume / prototype volume (generator parameter)",
        "n_atoms": "count; atoms in the cell",
    }
    pool: ClassVar[int] = 6_300

    def generate(self, index: int) -> Record:
        protos = prototypes()
        name, primitive = protos[index % len(protos)]
        rng = np.random.default_rng([_SEED, 2, index])
        atoms = primitive.copy()
        scale = float(rng.uniform(0.98, 1.02))
        atoms.set_cell(atoms.cell.array * scale ** (1 / 3), scale_atoms=True)
        atoms.positions += rng.normal(0.0, 0.01, atoms.positions.shape)
        atoms.wrap()
        text = f"{crystal_text(atoms)}; {name.split('-')[1]} structure near equilibrium"
        return Record(id=f"{self.name}:{index}/{name}", atoms=atoms, text=text,
                      properties={"volume_scale": scale, "n_atoms": float(len(atoms))})


_MOSES_FIX = ("install it with `pip install --no-deps molsets==0.3.1` (the wheel ships the MOSES "
              "SMILES; --no-deps because its pinned dependencies are not needed)")


def moses_path(split: str = "test") -> Path:
    spec = importlib.util.find_spec("moses")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetUnavailable(f"omol25-like needs the molsets package: {_MOSES_FIX}")
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset" / "data"
    path = path / f"{split}.csv.gz"
    if not path.is_file():
        raise DatasetUnavailable(f"molsets lacks {path}: {_MOSES_FIX}")
    return path


@functools.lru_cache(maxsize=1)
def _moses(path: str) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(path)


# Acid O-H to deprotonate, basic amine N to protonate (not amide, aniline, sulfonamide, ...).
_ACID = "[CX3](=O)[OX2H1]"
_AMINE = "[NX3;!$(N-[C,S,P]=[O,S,N]);!$(N-a);!$(N-[#7,#8]);!$(N-C=C)]"
_AZINE = "[nX2;r6]"  # pyridine-type ring N, protonated as a pyridinium


def ionise(mol: object) -> object:
    """Deprotonate the first carboxylic acid, else protonate the first basic amine, else the
    first pyridine-type N; a molecule with none of them stays neutral."""
    from rdkit import Chem

    rw = Chem.RWMol(mol)
    acid = rw.GetSubstructMatch(Chem.MolFromSmarts(_ACID))
    if acid:
        atom = rw.GetAtomWithIdx(acid[2])
        atom.SetFormalCharge(-1)
    else:
        base = rw.GetSubstructMatch(Chem.MolFromSmarts(_AMINE))
        base = base or rw.GetSubstructMatch(Chem.MolFromSmarts(_AZINE))
        if not base:
            return mol
        atom = rw.GetAtomWithIdx(base[0])
        atom.SetFormalCharge(1)
    atom.SetNoImplicit(False)
    atom.SetNumExplicitHs(0)
    Chem.SanitizeMol(rw)
    return rw.GetMol()


@register_dataset
class OMol25Like(_Generated):
    name: ClassVar[str] = "omol25-like"
    description: ClassVar[str] = (
        "STAND-IN for OMol25: drug-like molecules of the MOSES test split with an RDKit "
        "ETKDG + MMFF94 3D conformer; every third ionised (acid -> anion, amine -> cation) "
        "where it can be. No DFT data."
    )
    kind: ClassVar[str] = "molecules"
    source: ClassVar[str] = (
        "MOSES test split (molsets==0.3.1 wheel, MIT; ZINC Clean Leads), 3D by RDKit"
    )
    modalities: ClassVar[tuple[str, ...]] = ("atoms", "smiles", "text")
    properties: ClassVar[dict[str, str]] = {
        "mmff_energy": "eV; MMFF94 energy of the optimised conformer (force field, not DFT)",
        "charge": "e; net formal charge",
        "n_atoms": "count; atoms including hydrogens",
    }

    def size(self) -> int:
        return len(_moses(str(moses_path())))

    def generate(self, index: int) -> Record:
        from ase import Atoms
        from rdkit import Chem, RDLogger
        from rdkit.Chem import AllChem

        smiles = str(_moses(str(moses_path())).at[index, "SMILES"])
        RDLogger.DisableLog("rdApp.*")  # failures are reported per record by the caller
        try:
            mol = Chem.MolFromSmiles(smiles)
            if mol is None:
                raise ValueError(f"RDKit rejects SMILES {smiles!r}")
            if index % 3 == 0:
                mol = ionise(mol)
            mol = Chem.AddHs(mol)
            params = AllChem.ETKDGv3()
            params.randomSeed = int(np.random.default_rng([_SEED, 3, index]).integers(2**31))
            if AllChem.EmbedMolecule(mol, params) != 0:
                raise ValueError(f"ETKDG could not embed {smiles!r}")
            props = AllChem.MMFFGetMoleculeProperties(mol)
            if props is None:
                raise ValueError(f"no MMFF94 parameters for {smiles!r}")
            field = AllChem.MMFFGetMoleculeForceField(mol, props)
            field.Minimize(maxIts=500)
            energy_kcal = field.CalcEnergy()
        finally:
            RDLogger.EnableLog("rdApp.*")
        conformer = mol.GetConformer()
        atoms = Atoms(symbols=[a.GetSymbol() for a in mol.GetAtoms()],
                      positions=conformer.GetPositions(), pbc=False)
        charge = Chem.GetFormalCharge(mol)
        atoms.info["charge"] = charge
        atoms.info["spin"] = 1  # closed shell (multiplicity, as in OMol25)
        canonical = Chem.MolToSmiles(Chem.RemoveHs(mol))
        return Record(
            id=f"{self.name}:moses-test/{index}",
            atoms=atoms,
            smiles=canonical,
            text=f"{molecule_text(atoms)}; SMILES: {canonical}",
            properties={"mmff_energy": energy_kcal * 0.0433641043,  # kcal/mol -> eV
                        "charge": float(charge), "n_atoms": float(len(atoms))},
        )
