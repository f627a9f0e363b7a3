"""One provenance row per embedding file: where every number of the study came from."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

import numpy as np

from matteralign.io import atomic_path, read_embeddings

COLUMNS = (
    "dataset", "model", "family", "modality", "weights", "weights_sha256", "random_init",
    "layer", "pooling", "n", "n_valid", "dim", "masked_example", "dataset_sha256", "python",
    "packages", "git_commit", "created",
)


def summary_rows(embedding_paths: Sequence[str | os.PathLike[str]]) -> list[dict[str, str]]:
    rows = []
    for path in embedding_paths:
        embedding = read_embeddings(path)
        attrs, valid, errors = dict(embedding.attrs), embedding.valid, embedding.errors
        invalid = np.flatnonzero(~valid)
        attrs["masked_example"] = errors[invalid[0]] if len(invalid) else ""
        attrs["n_valid"] = int(valid.sum())
        rows.append({key: str(attrs.get(key, "")) for key in COLUMNS})
    return rows


def write_summary(embedding_paths: Sequence[str | os.PathLike[str]],
                  output: str | os.PathLike[str]) -> list[dict[str, str]]:
    rows = summary_rows(embedding_paths)
    with atomic_path(output) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return rows
