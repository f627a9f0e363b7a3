"""Tiny synthetic QM9-like studies on disk for the performance, probe and transfer tests:
a structures file and embedding files whose relations to the properties are planted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from matteralign.datasets.qm9 import QM9
from matteralign.datasets.store import write_structures
from matteralign.io import EmbeddingFile, write_embeddings
from matteralign.records import Record

ELEMENTS = (1, 6, 7, 8)
#: per-element offsets (eV) planted between the "model" energies and the reference
OFFSETS = np.array([-13.6, -1029.8, -1485.1, -2042.6])


@dataclass
class Study:
    structures: Path
    embeddings: list[Path]
    counts: np.ndarray
    latent: np.ndarray
    properties: dict[str, np.ndarray]
    models: list[str] = field(default_factory=list)


def element_counts(rng: np.random.Generator, n: int) -> np.ndarray:
    heavy = rng.integers(1, 9, size=n)
    c = rng.binomial(heavy, 0.7)
    o = rng.binomial(heavy - c, 0.6)
    nitrogen = heavy - c - o
    h = rng.integers(0, 2 * heavy + 3)
    return np.column_stack([h, c, nitrogen, o]).astype(float)


def write_study(root: Path, n: int = 200, seed: int = 0, masked: dict[str, list[int]] | None = None,
                dataset: str = "qm9") -> Study:
    """Structures with H/C/N/O counts and four models:

    ``chgnet-0.3.0``: embedding linear in a 5-d latent plus noise dims, energy = reference +
    per-element offsets; ``sevennet-0``: an orthogonally rotated, scaled, shifted copy of the
    first (no energy); ``composition`` (a baseline): pure noise; ``mace-mp-0-medium``
    (random-init): a tanh of the latent.
    """
    rng = np.random.default_rng(seed)
    counts = element_counts(rng, n)
    latent = rng.normal(size=(n, 5))
    atomization = latent @ np.array([3.0, -2.0, 1.0, 0.5, 0.0]) - counts @ [2.0, 3.0, 2.5, 2.0]
    properties = {
        "atomization_energy": atomization,
        "homo": latent[:, 1] - 6.0,
        "gap": rng.normal(size=n),  # unrelated to every embedding
        "n_atoms": counts.sum(axis=1),
        "dipole": np.where(np.arange(n) < 5, 1.0, np.nan),  # too few values to probe
    }
    records = []
    for i in range(n):
        from ase import Atoms

        numbers = np.repeat(ELEMENTS, counts[i].astype(int))
        atoms = Atoms(numbers=numbers, positions=rng.normal(size=(len(numbers), 3)))
        records.append(Record(id=f"qm9:gdb_{i + 1}", atoms=atoms, smiles="C", text="t",
                              properties={k: float(v[i]) for k, v in properties.items()
                                          if np.isfinite(v[i])}))
    root.mkdir(parents=True, exist_ok=True)
    structures = root / "structures.h5"
    digest = write_structures(structures, records, {
        "dataset": dataset, "properties_description": json.dumps(QM9.properties),
        "kind": "molecules"})
    base = np.column_stack([latent @ rng.normal(size=(5, 12)), 0.05 * rng.normal(size=(n, 4))])
    rotation, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    embeddings = {
        "chgnet-0.3.0": (base, atomization + counts @ OFFSETS, False),
        "sevennet-0": (3.0 * base @ rotation + 1.5, None, False),
        "composition": (rng.normal(size=(n, 8)), None, False),
        "mace-mp-0-medium": (np.tanh(latent @ rng.normal(size=(5, 10))), None, True),
    }
    paths = []
    for model, (emb, energy, random_init) in embeddings.items():
        valid = np.ones(n, bool)
        valid[(masked or {}).get(model, [])] = False
        emb = emb.astype(np.float32)
        emb[~valid] = np.nan
        if energy is not None:
            energy = np.where(valid, energy, np.nan)
        path = root / "embeddings" / f"{model}.h5"
        write_embeddings(path, EmbeddingFile(
            ids=[r.id for r in records], embeddings=emb, valid=valid,
            errors=["" if v else "masked" for v in valid], energy=energy,
            attrs={"model": model, "random_init": random_init, "dataset": dataset,
                   "dataset_sha256": digest}))
        paths.append(path)
    return Study(structures, paths, counts, latent, properties, list(embeddings))
