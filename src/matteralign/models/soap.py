"""SOAP (Bartok, Kondor & Csanyi 2013, Phys. Rev. B 87, 184115): the smooth overlap of atomic
positions, the standard non-learned local-environment descriptor, as a non-neural baseline
in the "baseline" family: ``soap``.

Per atom, dscribe (Himanen et al. 2020, Comput. Phys. Commun. 247, 106949; Laakso et al.
2023, J. Chem. Phys. 158, 234802) expands the neighbour density of each element within
``r_cut`` (Gaussians of width ``sigma``) in ``n_max`` GTO radial functions and spherical
harmonics up to ``l_max`` and forms the rotation-invariant power spectrum; the structure's
vector is the mean of its atoms' power spectra (dscribe ``average="outer"``), i.e. mean over
atoms like the learned models' pooled embeddings.

Defaults (all options of the model's config entry): ``r_cut`` 5 A, ``n_max`` 4, ``l_max`` 4,
``sigma`` 0.5 A: a common small-molecule/crystal setting, local like the 5-6 A cutoffs of the
interatomic potentials compared here. ``species``: the elements the descriptor distinguishes;
default the 89 elements of MPtrj (H-Bi, Ac-Pu), which covers QM9, the PDB proteins and the
CoRE MOF crystals; structures with any other element are masked with the reason. With that
many elements the full power spectrum (quadratic in the number of elements) would be ~260k
wide, so by default it is compressed with Darby et al.'s mu=1, nu=1 scheme (2022, npj Comput.
Mater. 8, 166: each element's density correlated with the total density; linear in the number
of elements): 89 x 4 x 4 x 5 = 7,120 features. ``compression="off"`` with a short ``species``
list gives the classic uncompressed SOAP.

Crystals use dscribe's ``periodic=True`` (periodic images inside ``r_cut`` are neighbours, so
a supercell gives the same averaged vector); molecules (no periodic direction) ``periodic=
False``. No weights, no hidden layer: ``layer`` says what the vector is.
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
