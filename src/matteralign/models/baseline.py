"""Non-neural baselines: the floor every learned representation is compared against.

- ``morgan-fp``: RDKit Morgan (ECFP4-like) fingerprint of the SMILES, radius 2, 2048 bits, as
  a float 0/1 vector (no chirality, no feature invariants: RDKit's defaults).
- ``composition``: what the 3D structure is made of and how its atoms are spaced, with no
  learning at all: element fractions over Z = 1..100, concatenated with the normalised
  histogram of interatomic distances up to 6 Å (24 bins of 0.25 Å; periodic images counted
  for crystals). It reads molecules and crystals alike.

They have no weights and no "last layer"; ``layer`` says what the vector is instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.base import EmbedOutput, ModelAdapter, register_model
from matteralign.records import Record

NO_WEIGHTS = "none (non-neural baseline)"


class _Baseline(ModelAdapter):
    """Shared parts: nothing to load, always available, no energies."""

    weights_name = NO_WEIGHTS
    weights_in_package = None
    license = "BSD-3-Clause (RDKit) / LGPL-2.1+ (ASE); no model weights"
    produces_energy = False
    batch_size = 256

    @classmethod
    def weights_available(cls, site_packages: Sequence[Path] = ()) -> bool:
        return True

    def weights_path(self) -> Path | None:
        return None

    def _load(self) -> None:
        if self.weights:
            label = self.weights_label() if self.is_random_init else repr(self.weights)
            raise ValueError(f"{self.name} is a non-neural baseline: no weights ({label})")


@register_model
class MorganFingerprint(_Baseline):
    name = "morgan-fp"
    family = "baseline"
    modality = "smiles"
    architecture = "RDKit Morgan fingerprint (radius 2, 2048 bits), non-neural"
    layer = "fingerprint bits (no hidden layer)"
    pooling = "none (one bit vector per molecule)"
    key_packages = ("rdkit",)
    requires_module = "rdkit"
    radius: ClassVar[int] = 2
    n_bits: ClassVar[int] = 2048

    def __init__(self, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__(weights=weights, device=device)
        self._generator: Any = None

    def _load(self) -> None:
        super()._load()
        from rdkit import RDLogger
        from rdkit.Chem import rdFingerprintGenerator

        RDLogger.DisableLog("rdApp.*")  # parse failures are reported by check(), not stderr
        self._generator = rdFingerprintGenerator.GetMorganGenerator(
            radius=self.radius, fpSize=self.n_bits)

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        from rdkit import Chem

        if Chem.MolFromSmiles(str(record.smiles)) is None:
            return f"RDKit cannot parse SMILES {record.smiles!r}"
        return None

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        from rdkit import Chem

        rows = []
        for record in records:
            mol = Chem.MolFromSmiles(str(record.smiles))
            if mol is None:
                raise ValueError(f"RDKit cannot parse SMILES {record.smiles!r}")
            rows.append(self._generator.GetFingerprintAsNumPy(mol).astype(np.float32))
        return EmbedOutput(np.stack(rows))


@register_model
class Composition(_Baseline):
    name = "composition"
    family = "baseline"
    modality = "atoms"
    architecture = ("element fractions (Z 1-100) + normalised interatomic-distance histogram "
                    "(0-6 A, 24 bins), non-neural")
    layer = "descriptor (no hidden layer)"
    pooling = "fractions over atoms; histogram over atom pairs within 6 A"
    key_packages = ("ase",)
    requires_module = "ase"
    max_z: ClassVar[int] = 100
    cutoff: ClassVar[float] = 6.0
    n_bins: ClassVar[int] = 24

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        assert record.atoms is not None
        bad = sorted({int(z) for z in record.atoms.numbers if not 1 <= z <= self.max_z})
        if bad:
            return f"element(s) Z={bad} outside Z 1-{self.max_z}"
        return None

    def vector(self, atoms: Any) -> np.ndarray:
        from ase.neighborlist import neighbor_list

        fractions = np.bincount(atoms.numbers - 1, minlength=self.max_z)[: self.max_z]
        fractions = fractions / len(atoms)
        if atoms.pbc.any():
            distances = neighbor_list("d", atoms, self.cutoff)
        else:
            # a k-d tree is ~100x faster than ase's neighbour list on 4,000-atom proteins;
            # each pair once instead of twice leaves the normalised histogram unchanged
            from scipy.spatial import cKDTree

            pairs = cKDTree(atoms.positions).query_pairs(self.cutoff, output_type="ndarray")
            distances = np.linalg.norm(
                atoms.positions[pairs[:, 0]] - atoms.positions[pairs[:, 1]], axis=1)
        histogram, _ = np.histogram(distances, bins=self.n_bins, range=(0.0, self.cutoff))
        # a distribution over distances, so it weighs like the fractions (both sum to 1);
        # a structure without any pair within the cutoff gets an all-zero histogram
        if histogram.sum() > 0:
            histogram = histogram / histogram.sum()
        return np.concatenate([fractions, histogram]).astype(np.float32)

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        return EmbedOutput(np.stack([self.vector(r.atoms) for r in records]))
