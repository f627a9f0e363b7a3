"""What the performance, probe and transfer analyses read: one dataset's structures (element
counts, reference properties) and its models' embedding files, checked to match row by row."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matteralign.analysis.ridge import min_rows
from matteralign.errors import InputError, MissingInputError
from matteralign.io import EmbeddingFile, read_embeddings


@dataclass
class StudyInputs:
    dataset: str
    dataset_sha256: str
    ids: list[str]
    counts: np.ndarray  # [N, E] atoms of each element per structure
    elements: list[int]  # atomic numbers of the columns of ``counts``
    properties: dict[str, np.ndarray]  # name -> [N] float64, NaN where missing (dataset order)
    units: dict[str, str]  # name -> units ("" where not described)
    reference_energy: str | None  # the dataset's reference-energy property, if it has values
    files: list[EmbeddingFile]
    #: the controls' labels when the models are not registered (a card's new model)
    control_labels: list[str] | None = None

    @property
    def n_atoms(self) -> np.ndarray:
        return self.counts.sum(axis=1)

    @property
    def models(self) -> list[str]:
        return [f.model for f in self.files]

    @property
    def controls(self) -> list[str]:
        from matteralign.models.domains import control_label

        if self.control_labels is not None:
            return list(self.control_labels)
        return [control_label(f.model, is_random_init(f)) for f in self.files]

    def usable(self, index: int) -> np.ndarray:
        """Rows model ``index`` embedded: valid and with finite features."""
        f = self.files[index]
        return f.valid & np.isfinite(f.embeddings).all(axis=1)

    def values(self, name: str) -> np.ndarray:
        """A property's values, or ValueError naming ``--property`` and the choices."""
        if name not in self.properties:
            raise InputError(f"property {name!r} is not in dataset {self.dataset!r}; set "
                             f"--property to one of {list(self.properties)}")
        return self.properties[name]


def is_random_init(f: EmbeddingFile) -> bool:
    return str(f.attrs.get("random_init", False)).lower() in ("true", "1")


def units_of(description: str) -> str:
    """The units of a property description written as ``"units; what it is"``."""
    return description.split(";", 1)[0].strip()


def _dataset_class(name: str) -> type | None:
    from matteralign.datasets import registered_datasets

    return registered_datasets().get(name)


def load_inputs(structures_path: str | os.PathLike[str],
                embedding_paths: Sequence[str | os.PathLike[str]]) -> StudyInputs:
    """Read and cross-check the structures file and every embedding file of one dataset."""
    missing = [str(p) for p in [structures_path, *embedding_paths] if not Path(p).exists()]
    if missing:
        raise MissingInputError(f"missing inputs: {missing}; build them first (snakemake "
                                "schedules the prepare and embed rules)")
    if not embedding_paths:
        raise InputError("no embedding files given: pass at least one to --embeddings")
    files = [read_embeddings(p) for p in embedding_paths]
    return inputs_from_files(structures_path, files, [str(p) for p in embedding_paths])


def inputs_from_files(structures_path: str | os.PathLike[str], files: Sequence[EmbeddingFile],
                      sources: Sequence[str]) -> StudyInputs:
    """:func:`load_inputs` for embeddings already in memory (``sources`` name them in
    errors)."""
    from matteralign.datasets.store import read_structure_attrs, read_structures

    attrs = read_structure_attrs(structures_path)
    records = read_structures(structures_path)
    ids = [r.id for r in records]
    files = list(files)
    digest = str(attrs.get("dataset_sha256", ""))
    for path, f in zip(sources, files, strict=True):
        if f.ids != ids:
            raise InputError(f"{path} ({f.model!r}) lists other structures than "
                             f"{structures_path}; re-embed it from that structures file")
        theirs = str(f.attrs.get("dataset_sha256", ""))
        if digest and theirs and theirs != digest:
            raise InputError(f"{path} ({f.model!r}) was embedded from another version of "
                             f"{structures_path} (dataset_sha256 differs); re-embed it")
    names = [f.model for f in files]
    if len(set(names)) != len(names):
        raise InputError(f"two embedding files name the same model: {names}")

    numbers = [r.atoms.numbers if r.atoms is not None else np.zeros(0, int) for r in records]
    elements = sorted({int(z) for row in numbers for z in row})
    column = {z: j for j, z in enumerate(elements)}
    counts = np.zeros((len(records), len(elements)))
    for i, row in enumerate(numbers):
        for z in row:
            counts[i, column[int(z)]] += 1

    dataset = str(attrs.get("dataset", Path(structures_path).parent.name))
    cls = _dataset_class(dataset)
    described = json.loads(attrs.get("properties_description") or "{}")
    declared = list(getattr(cls, "properties", {}) or described)
    present = {key for r in records for key in r.properties}
    order = [p for p in declared if p in present] + sorted(present - set(declared))
    properties = {p: np.array([r.properties.get(p, np.nan) for r in records]) for p in order}
    units = {p: units_of(described.get(p, getattr(cls, "properties", {}).get(p, "")))
             for p in order}
    reference = getattr(cls, "reference_energy", None)
    if reference not in properties:
        reference = None
    return StudyInputs(dataset=dataset, dataset_sha256=digest, ids=ids, counts=counts,
                       elements=elements, properties=properties, units=units,
                       reference_energy=reference, files=files)


def progress(items: Sequence[Any], what: str) -> Any:
    """A tqdm progress bar on stderr over ``items`` (hidden for a single item)."""
    from tqdm import tqdm

    return tqdm(items, desc=what, unit="model", file=sys.stderr, leave=False,
                disable=len(items) < 2)


def usable_rows_or_raise(inputs: StudyInputs, index: int, folds: int) -> np.ndarray:
    """Rows model ``index`` embedded; ValueError when too few for a ``folds``-fold probe."""
    usable = inputs.usable(index)
    if usable.sum() < min_rows(folds):
        raise InputError(
            f"model {inputs.models[index]!r} embedded only {int(usable.sum())} of "
            f"{len(usable)} structures of {inputs.dataset!r}; a {folds}-fold probe needs at "
            f"least {min_rows(folds)}. Check the `errors` dataset of its embedding file, or "
            "drop the model from this dataset")
    return usable
