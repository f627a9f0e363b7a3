"""The unit of data every model sees: one structure with all its renderings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # ase is imported lazily: it is heavy and not every caller needs Atoms
    from ase import Atoms

#: Input modalities. A model consumes exactly one; a dataset provides several.
MODALITIES = ("atoms", "smiles", "sequence", "text")


@dataclass
class Record:
    """One structure of a dataset.

    ``atoms`` carries cell/pbc for crystals and ``info["charge"]``/``info["spin"]`` where known.
    ``smiles`` is RDKit-canonical where defined, ``sequence`` the one-letter protein sequence
    where defined, ``text`` a plain-language rendering every text model can read.
    ``properties`` holds reference values (e.g. ``energy`` in eV with its level of theory named
    in the dataset's ``properties`` description).
    """

    id: str
    atoms: Atoms | None = None
    smiles: str | None = None
    sequence: str | None = None
    text: str = ""
    properties: dict[str, float] = field(default_factory=dict)

    def input_for(self, modality: str) -> object | None:
        """The input a model of ``modality`` consumes, or None if this record has none."""
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
        value = getattr(self, modality)
        return value if value not in ("", None) else None
