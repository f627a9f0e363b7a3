"""Alignment of every model pair on one dataset: embedding files in, metric files out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matteralign.analysis.study import AlignmentError, common_valid, load_study
from matteralign.io import MetricFile, attr_flag, write_metric
from matteralign.provenance import provenance

__all__ = ["AlignmentError", "align_dataset", "common_valid"]


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
    from matteralign.analysis.calibration import calibration_entries
    from matteralign.metrics import SPECS, pairwise

    study = load_study(embedding_paths, preprocessing, min_rows=max(k + 2, 4))
    files, mask, n_used, names = study.files, study.mask, study.n_used, study.names
    results = pairwise(study.arrays, metrics=list(outputs), k=k, device=device,
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
        "random_init": [bool(attr_flag(f.attrs.get("random_init"))) for f in files],
        **provenance(("scipy",)),
    }
    written = {}
    for metric, path in outputs.items():
        value, order = results[metric]
        if list(order) != names:
            raise AlignmentError(f"pairwise returned models in another order for {metric}")
        extra = {key.split("/", 1)[1]: arr[0] for key, arr in results.items()
                 if key.startswith(f"{metric}/")}
        spec = SPECS[metric]
        per_model = spec.per_model
        calibration: dict[str, str] = {}
        if not per_model and bootstrap > 0 and permutations > 0:
            calibrated, calibration = calibration_entries(metric, value, extra, permutations)
            extra.update(calibrated)
        result = MetricFile(
            metric=metric, models=names,
            matrix=None if per_model else value,
            values=value if per_model else None,
            extra=extra,
            attrs={**common, "symmetric": spec.symmetric,
                   "higher_is_aligned": spec.higher_is_aligned, **calibration},
        )
        write_metric(path, result)
        written[metric] = result
    return written
