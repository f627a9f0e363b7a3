"""The shape every interatomic potential adapter shares.

An :class:`AtomsAdapter` implements three things: ``_load`` (build the model, hook its last
hidden layer), ``check_atoms`` (what this model cannot take: elements, periodicity) and
``atom_features`` (one forward pass: per-atom features and, where the model predicts it, the
total energy). Checking for a structure, pooling over atoms and dropping the meaningless
energy of a random-init network are written once, here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from matteralign.models.base import EmbedOutput, ModelAdapter, mean_pool
from matteralign.models.geometry import structure_problem
from matteralign.records import Record


class AtomsAdapter(ModelAdapter):
    """A model that reads a structure's atoms and gives per-atom features (not registered)."""

    modality = "atoms"
    pooling = "mean over atoms"
    per_atom = True
    #: the model takes cells periodic along some directions only (slabs, wires)
    partly_periodic_ok: ClassVar[bool] = False

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None) -> None:
        """``max_atoms``: mask structures with more atoms (memory and run-time bound)."""
        super().__init__(weights=weights, device=device)
        self.max_atoms = max_atoms
        self._model: Any = None

    # -- to implement -----------------------------------------------------------------------
    def check_atoms(self, atoms: Any) -> str | None:
        """Why this model cannot take ``atoms`` (elements, periodicity), or None."""
        return None

    def atom_features(self, records: Sequence[Record]
                      ) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Per-atom last-layer features of each record and the predicted total energies in
        eV (None where the model predicts none)."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------
    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason or record.atoms is None:
            return reason
        return self.check_atoms(record.atoms) or structure_problem(
            record.atoms, self.max_atoms, self.partly_periodic_ok)

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        feats, energy = self.atom_features(records)
        feats = [np.asarray(f, dtype=np.float64) for f in feats]
        # a randomly initialised network's "energy" means nothing: leave it out
        return EmbedOutput(mean_pool(feats), None if self.is_random_init else energy,
                           atom_embeddings=feats)


def outside(atoms: Any, known: set[int] | range) -> list[int]:
    """The atomic numbers of ``atoms`` not in ``known``, sorted."""
    return sorted({int(z) for z in atoms.numbers} - set(known))
