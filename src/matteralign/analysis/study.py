"""One path from a dataset's embedding files to the arrays every metric of the study sees.

The study's matrices are not computed on the raw embedding files: rows that any model could not
embed are dropped (the metrics compare the same structures in every space), and each model's
rows are preprocessed (``l2`` by default). :func:`load_study` does both, and is what
:func:`matteralign.analysis.align.align_dataset` calls, so a notebook that starts from it gets
the study's numbers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matteralign.analysis.preprocess import preprocess
from matteralign.errors import MatterAlignError
from matteralign.io import EmbeddingFile, read_embeddings


class AlignmentError(MatterAlignError, ValueError):
    """Embedding files that cannot be compared (other structures, too few common rows)."""


@dataclass
class StudyEmbeddings:
    """A dataset's embeddings as the metrics see them.

    ``arrays[model]`` is [n_used, D_model] float64: the rows of ``mask`` (valid in every model),
    after ``preprocessing``. ``ids`` are the structure ids of those rows.
    """

    names: list[str]
    arrays: dict[str, np.ndarray]
    mask: np.ndarray
    ids: list[str]
    preprocessing: str
    n_total: int
    n_used: int
    files: list[EmbeddingFile] = field(repr=False, default_factory=list)

    @property
    def attrs(self) -> dict[str, Any]:
        """The first file's attributes (dataset, dataset_sha256, ...)."""
        return dict(self.files[0].attrs) if self.files else {}


def common_valid(files: Sequence[EmbeddingFile]) -> np.ndarray:
    """Mask of the structures every model embedded (ids must agree row by row)."""
    ids = files[0].ids
    for f in files[1:]:
        if f.ids != ids:
            raise AlignmentError(
                f"embedding files of {files[0].model!r} and {f.model!r} list different "
                "structures; rebuild them from the same structures.h5"
            )
    hashes = {f.attrs.get("dataset_sha256", "") for f in files}
    if len(hashes) > 1:
        raise AlignmentError(f"embedding files come from different dataset versions: {hashes}")
    mask = np.ones(len(ids), dtype=bool)
    for f in files:
        mask &= f.valid
    return mask


def load_study(
    embedding_paths: Sequence[str | os.PathLike[str]],
    preprocessing: str = "l2",
    min_rows: int = 4,
) -> StudyEmbeddings:
    """Read a dataset's embedding files, keep the rows valid in every model, preprocess them.

    ``min_rows``: fewer common rows than this raise :class:`AlignmentError` naming the model
    that embedded the fewest structures (the study asks for k + 2 for k neighbours).
    """
    if not embedding_paths:
        raise AlignmentError("no embedding files given")
    files = [read_embeddings(p) for p in embedding_paths]
    mask = common_valid(files)
    n_used = int(mask.sum())
    if n_used < min_rows:
        worst = min(files, key=lambda f: int(f.valid.sum()))
        raise AlignmentError(
            f"only {n_used} structures are valid in every model (fewest: {worst.model!r} with "
            f"{int(worst.valid.sum())}); metrics need at least {min_rows}. Check the "
            "`errors` dataset of that embedding file, or drop the model from this dataset"
        )
    names = [f.model for f in files]
    if len(set(names)) != len(names):
        raise AlignmentError(f"the same model appears twice among the embedding files: {names}")
    arrays = {f.model: preprocess(f.embeddings[mask], preprocessing) for f in files}
    ids = [i for i, keep in zip(files[0].ids, mask, strict=True) if keep]
    return StudyEmbeddings(names=names, arrays=arrays, mask=mask, ids=ids,
                           preprocessing=preprocessing, n_total=len(mask), n_used=n_used,
                           files=files)
