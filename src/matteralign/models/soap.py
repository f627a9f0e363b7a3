"""SOAP power spectrum (dscribe), a non-neural baseline: per-atom smooth overlap of atomic
positions averaged over atoms, like the learned models' pooled embeddings. Defaults are a
common local setting (5 A, n_max 4, l_max 4) over MPtrj's 89 elements, compressed (mu1nu1)
so that the vector stays 7,120 wide; crystals are periodic. Details: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from matteralign.models.base import EmbedOutput, register_model
from matteralign.models.baseline import _Baseline
from matteralign.records import Record

#: MPtrj's 89 elements: H..Bi (1-83) and Ac..Pu (89-94)
DEFAULT_SPECIES: tuple[int, ...] = tuple(range(1, 84)) + tuple(range(89, 95))
COMPRESSIONS = ("off", "mu1nu1", "crossover", "mu2")


@register_model
class SOAP(_Baseline):
    name = "soap"
    family = "baseline"
    modality = "atoms"
    architecture = ("SOAP power spectrum (dscribe, GTO radial basis), averaged over atoms; "
                    "default r_cut 5 A, n_max 4, l_max 4, sigma 0.5 A, 89 elements, mu1nu1 "
                    "compression (7,120 features), non-neural")
    layer = "descriptor (no hidden layer): mean over atoms of the per-atom SOAP power spectrum"
    pooling = "mean over atoms of the power spectrum (dscribe average='outer')"
    license = "Apache-2.0 (dscribe) / LGPL-2.1+ (ASE); no model weights"
    key_packages = ("dscribe", "ase")
    requires_module = "dscribe"
    batch_size = 64

    def __init__(self, weights: str | None = None, device: str = "cpu", *,
                 species: Sequence[str | int] | None = None, r_cut: float = 5.0,
                 n_max: int = 4, l_max: int = 4, sigma: float = 0.5,
                 compression: str = "mu1nu1") -> None:
        """``species``: element symbols or atomic numbers the descriptor distinguishes (default
        :data:`DEFAULT_SPECIES`); ``compression``: dscribe's compression mode, one of
        :data:`COMPRESSIONS`."""
        super().__init__(weights=weights, device=device)
        from ase.data import atomic_numbers

        numbers = [int(s) if isinstance(s, int) or str(s).isdigit() else atomic_numbers[str(s)]
                   for s in (species if species is not None else DEFAULT_SPECIES)]
        if not numbers or len(set(numbers)) != len(numbers):
            raise ValueError(f"species must be a non-empty list without repeats: {species}")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression {compression!r} not in {COMPRESSIONS}")
        self.species = sorted(numbers)
        self.r_cut, self.n_max, self.l_max, self.sigma = float(r_cut), int(n_max), int(l_max), \
            float(sigma)
        self.compression = compression
        self._soap: dict[bool, Any] = {}

    def _load(self) -> None:
        super()._load()
        from dscribe.descriptors import SOAP as DScribeSOAP

        self._soap = {periodic: DScribeSOAP(
            species=self.species, r_cut=self.r_cut, n_max=self.n_max, l_max=self.l_max,
            sigma=self.sigma, rbf="gto", average="outer", periodic=periodic,
            compression={"mode": self.compression}, sparse=False, dtype="float64")
            for periodic in (False, True)}

    @property
    def dim(self) -> int:
        return int(self._soap[False].get_number_of_features())

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        assert record.atoms is not None
        unknown = sorted({int(z) for z in record.atoms.numbers} - set(self.species))
        if unknown:
            return f"element(s) Z={unknown} not among the SOAP species ({len(self.species)})"
        return None

    def vector(self, atoms: Any) -> np.ndarray:
        soap = self._soap[bool(atoms.pbc.any())]
        return np.asarray(soap.create(atoms), dtype=np.float64).reshape(-1)

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        return EmbedOutput(np.stack([self.vector(r.atoms) for r in records]).astype(np.float32))
