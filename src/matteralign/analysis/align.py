"""Alignment of every model pair on one dataset: embedding files in, metric files out."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from matteralign.analysis.study import AlignmentError, common_valid, load_study
from matteralign.io import MetricFile, attr_flag, write_metric
from matteralign.provenance import provenance

__all__ = ["AlignmentError", "align_dataset", "common_valid", "metric_files", "run_attrs"]


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
    from matteralign.metrics import pairwise

    study = load_study(embedding_paths, preprocessing, min_rows=max(k + 2, 4))
    files, mask = study.files, study.mask
    results = pairwise(study.arrays, metrics=list(outputs), k=k, device=device,
                       bootstrap=bootstrap, permutations=permutations, seed=seed)
    dataset = files[0].attrs.get("dataset", Path(embedding_paths[0]).parent.parent.name)
    common: dict[str, Any] = {
        "dataset": dataset,
        "dataset_sha256": files[0].attrs.get("dataset_sha256", ""),
        "n_total": len(mask),
        "n_used": study.n_used,
        "dims": [int(study.arrays[m].shape[1]) for m in study.names],
        **run_attrs([f.attrs for f in files], k, preprocessing, bootstrap, permutations, seed),
    }
    written = metric_files(results, list(outputs), study.names, common, bootstrap,
                           permutations)
    for metric, path in outputs.items():
        write_metric(path, written[metric])
    return written


def run_attrs(file_attrs: Sequence[Mapping[str, Any]], k: int, preprocessing: str,
              bootstrap: int, permutations: int, seed: int) -> dict[str, Any]:
    """The settings and the models' provenance every metric file records."""
    return {
        "k": k,
        "preprocessing": preprocessing,
        "bootstrap": bootstrap,
        "permutations": permutations,
        "seed": seed,
        "modalities": [str(a.get("modality", "")) for a in file_attrs],
        "families": [str(a.get("family", "")) for a in file_attrs],
        "weights": [str(a.get("weights", "")) for a in file_attrs],
        "random_init": [bool(attr_flag(a.get("random_init"))) for a in file_attrs],
        **provenance(("scipy",)),
    }


def metric_files(results: Mapping[str, tuple[Any, list[str]]], metrics: Sequence[str],
                 names: Sequence[str], common: Mapping[str, Any], bootstrap: int,
                 permutations: int) -> dict[str, MetricFile]:
    """``pairwise``'s output as one :class:`MetricFile` per metric, calibrated against the
    permutation null where there is one."""
    from matteralign.analysis.calibration import calibration_entries
    from matteralign.metrics import SPECS

    written = {}
    for metric in metrics:
        value, order = results[metric]
        if list(order) != list(names):
            raise AlignmentError(f"pairwise returned models in another order for {metric}")
        extra = {key.split("/", 1)[1]: arr[0] for key, arr in results.items()
                 if key.startswith(f"{metric}/")}
        spec = SPECS[metric]
        per_model = spec.per_model
        calibration: dict[str, str] = {}
        if not per_model and bootstrap > 0 and permutations > 0:
            calibrated, calibration = calibration_entries(metric, value, extra, permutations)
            extra.update(calibrated)
        written[metric] = MetricFile(
            metric=metric, models=list(names),
            matrix=None if per_model else value,
            values=value if per_model else None,
            extra=extra,
            attrs={**common, "symmetric": spec.symmetric,
                   "higher_is_aligned": spec.higher_is_aligned, **calibration},
        )
    add_q_values(written)
    return written


def add_q_values(files: Mapping[str, MetricFile]) -> None:
    """Benjamini–Hochberg q-values (dataset ``q_value``) over every tested entry of these
    metric files together: one family of pairs × metrics per dataset. Each unordered pair counts
    once for a similarity (its two orientations share one test), each ordered pair for a
    directional metric (the information imbalance)."""
    from matteralign.analysis.calibration import benjamini_hochberg

    cells: list[tuple[str, np.ndarray, np.ndarray]] = []  # metric, rows, cols
    values: list[np.ndarray] = []
    for name, f in files.items():
        p = f.extra.get("p_value")
        if f.matrix is None or p is None:
            continue
        p = np.asarray(p, dtype=np.float64)
        directional = attr_flag(f.attrs.get("higher_is_aligned")) is False
        rows, cols = (np.nonzero(~np.eye(len(p), dtype=bool)) if directional
                      else np.triu_indices(len(p), k=1))
        # a similarity's test: both orientations beyond the null (the larger p)
        cell_p = p[rows, cols] if directional else np.fmax(p[rows, cols], p[cols, rows])
        cells.append((name, rows, cols))
        values.append(cell_p)
    if not values:
        return
    q_all = benjamini_hochberg(np.concatenate(values))
    start = 0
    for (name, rows, cols), cell_p in zip(cells, values, strict=True):
        q = np.full(files[name].matrix.shape, np.nan)
        part = q_all[start:start + len(cell_p)]
        start += len(cell_p)
        q[rows, cols] = part
        if attr_flag(files[name].attrs.get("higher_is_aligned")) is not False:
            q[cols, rows] = part
        files[name].extra["q_value"] = q
        files[name].attrs["q_family"] = (f"Benjamini-Hochberg over {len(q_all)} tests: the "
                                         f"pairs x metrics ({', '.join(c[0] for c in cells)}) "
                                         "of this dataset")
