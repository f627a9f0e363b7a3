"""Linear probes: how well a ridge regression on each model's embedding predicts each
reference property of the dataset, held out by nested K-fold cross-validation."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matteralign.analysis.ridge import (
    DEFAULT_ALPHAS,
    DEFAULT_FOLDS,
    min_rows,
    ridge_probes,
    shuffle_rank,
)
from matteralign.analysis.study_inputs import (
    StudyInputs,
    load_inputs,
    progress,
    usable_rows_or_raise,
)
from matteralign.io import read_columns, write_columns
from matteralign.provenance import provenance


@dataclass
class Probes:
    """The content of ``probes.h5`` (see docs/formats.md)."""

    models: list[str]
    control: list[str]
    properties: list[str]
    r2: np.ndarray  # [M, P]
    mae: np.ndarray  # [M, P]
    n: np.ndarray  # [M, P]
    alpha: np.ndarray  # [M, P, folds] the alpha each outer fold chose
    attrs: dict[str, Any] = field(default_factory=dict)

    TEXT = ("models", "control", "properties")
    ARRAYS = ("r2", "mae", "n", "alpha")


def probe_properties(inputs: StudyInputs, folds: int) -> tuple[list[str], list[str]]:
    """Properties with enough finite, non-constant values to probe, and why others are not."""
    chosen, skipped = [], []
    for name, values in inputs.properties.items():
        finite = values[np.isfinite(values)]
        if len(finite) < min_rows(folds):
            skipped.append(f"{name}: only {len(finite)} values (a {folds}-fold probe needs "
                           f"{min_rows(folds)})")
        elif np.ptp(finite) == 0:
            skipped.append(f"{name}: constant")
        else:
            chosen.append(name)
    return chosen, skipped


def probes(inputs: StudyInputs, seed: int, folds: int = DEFAULT_FOLDS,
           alphas: np.ndarray = DEFAULT_ALPHAS) -> Probes:
    """The nested-CV ridge probe of every model for every probe-able property.

    A model's properties with the same missing values share one set of decompositions; every
    model sees the same folds of the full dataset (restricted to the rows it embedded).
    """
    names, skipped = probe_properties(inputs, folds)
    m, p = len(inputs.files), len(names)
    r2, mae = np.full((m, p), np.nan), np.full((m, p), np.nan)
    n = np.zeros((m, p), np.int64)
    alpha = np.full((m, p, folds), np.nan)
    rank = shuffle_rank(len(inputs.ids), seed)
    values = np.column_stack([inputs.properties[k] for k in names]) if p else \
        np.zeros((len(inputs.ids), 0))
    notes: list[str] = []
    for i in progress(range(m), "probes"):
        usable = usable_rows_or_raise(inputs, i, folds)
        x = inputs.files[i].embeddings
        patterns: dict[bytes, list[int]] = {}
        for j in range(p):
            patterns.setdefault((usable & np.isfinite(values[:, j])).tobytes(), []).append(j)
        for key, columns in patterns.items():
            rows = np.frombuffer(key, dtype=bool)
            if rows.sum() < min_rows(folds):
                notes.append(f"{inputs.models[i]}: only {int(rows.sum())} embedded structures "
                             f"have {[names[j] for j in columns]}")
                continue
            results = ridge_probes(x[rows], values[rows][:, columns], seed, folds=folds,
                                   alphas=alphas, rank=rank[rows])
            for j, result in zip(columns, results, strict=True):
                r2[i, j], mae[i, j], n[i, j] = result.r2, result.mae, result.n
                alpha[i, j] = result.alpha_per_fold
    attrs = {
        "dataset": inputs.dataset, "dataset_sha256": inputs.dataset_sha256, "seed": seed,
        "folds": folds, "alphas": np.asarray(alphas, np.float64),
        "units": json.dumps({k: inputs.units.get(k, "") for k in names}),
        "skipped": "; ".join(skipped), "note": "; ".join(notes), "n_total": len(inputs.ids),
    }
    return Probes(models=inputs.models, control=inputs.controls, properties=names, r2=r2,
                  mae=mae, n=n, alpha=alpha, attrs=attrs)


def write_probes(structures_path: str | os.PathLike[str],
                 embedding_paths: Sequence[str | os.PathLike[str]],
                 out: str | os.PathLike[str], figure: str | os.PathLike[str] | None,
                 seed: int = 0, folds: int = DEFAULT_FOLDS,
                 alphas: np.ndarray = DEFAULT_ALPHAS) -> Probes:
    """Compute :func:`probes` from the files; write ``probes.h5`` and the R² heatmap."""
    from matteralign.plots.probes import plot_probes

    result = probes(load_inputs(structures_path, embedding_paths), seed, folds, alphas)
    write_columns(out, {name: getattr(result, name) for name in Probes.TEXT},
                  {name: getattr(result, name) for name in Probes.ARRAYS},
                  {**result.attrs, **provenance(("scipy",))})
    if figure is not None:
        plot_probes(result, figure)
    return result


def read_probes(path: str | os.PathLike[str]) -> Probes:
    """probes.h5 after checking its content hash (a damaged file raises
    :class:`~matteralign.io.CorruptFileError`)."""
    columns, attrs = read_columns(path, Probes.TEXT, Probes.ARRAYS)
    return Probes(**columns, attrs=attrs)
