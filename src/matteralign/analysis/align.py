"""Alignment of every model pair on one dataset: embedding files in, metric files out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from matteralign.analysis.preprocess import preprocess
from matteralign.io import EmbeddingFile, MetricFile, read_embeddings, write_metric
from matteralign.provenance import provenance


class AlignmentError(ValueError):
    pass


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


def align_dataset(
    embedding_paths: Sequence[str | os.PathLike[str]],
    outputs: dict[str, str | os.PathLike[str]],
    k: int = 25,
    preprocessing: str = "l2",
    bootstrap: int = 0,
    permutations: int = 0,
    seed: int = 0,
    device: str | None = None,
) -> dict[str, MetricFile]:
    """Compute every metric in ``outputs`` (metric -> path) over all models at once."""
    from matteralign.metrics import METRIC_INFO, PER_MODEL_METRICS, pairwise

    files = [read_embeddings(p) for p in embedding_paths]
    mask = common_valid(files)
    n_used = int(mask.sum())
    worst = min(files, key=lambda f: int(f.valid.sum()))
    if n_used < max(k + 2, 4):
        raise AlignmentError(
            f"only {n_used} structures are valid in every model (fewest: {worst.model!r} with "
            f"{int(worst.valid.sum())}); metrics need at least {max(k + 2, 4)}. Check the "
            "`errors` dataset of that embedding file, or drop the model from this dataset"
        )
    names = [f.model for f in files]
    embeddings = {f.model: preprocess(f.embeddings[mask], preprocessing) for f in files}
    results = pairwise(embeddings, metrics=list(outputs), k=k, device=device,
                       bootstrap=bootstrap, permutations=permutations, seed=seed)
    dataset = files[0].attrs.get("dataset", Path(embedding_paths[0]).parent.parent.name)
    common: dict[str, Any] = {
        "dataset": dataset,
        "dataset_sha256": files[0].attrs.get("dataset_sha256", ""),
        "n_total": len(mask),
        "n_used": n_used,
        "k": k,
        "preprocessing": preprocessing,
        "bootstrap": bootstrap,
        "permutations": permutations,
        "seed": seed,
        "modalities": [str(f.attrs.get("modality", "")) for f in files],
        "families": [str(f.attrs.get("family", "")) for f in files],
        "weights": [str(f.attrs.get("weights", "")) for f in files],
        "random_init": [str(bool(f.attrs.get("random_init", False))) for f in files],
        **provenance(("scipy",)),
    }
    written = {}
    for metric, path in outputs.items():
        value, order = results[metric]
        if list(order) != names:
            raise AlignmentError(f"pairwise returned models in another order for {metric}")
        extra = {key.split("/", 1)[1]: arr[0] for key, arr in results.items()
                 if key.startswith(f"{metric}/")}
        per_model = metric in PER_MODEL_METRICS
        result = MetricFile(
            metric=metric, models=names,
            matrix=None if per_model else value,
            values=value if per_model else None,
            extra=extra,
            attrs={**common, "symmetric": str(bool(METRIC_INFO[metric]["symmetric"])),
                   "higher_is_aligned": str(METRIC_INFO[metric]["higher_is_aligned"])},
        )
        write_metric(path, result)
        written[metric] = result
    return written
