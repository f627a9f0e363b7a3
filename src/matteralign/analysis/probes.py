"""Linear probes: how well a ridge regression on each model's embedding predicts each
reference property of the dataset (and the reference energy per atom, an intensive target
beside the extensive total), held out by nested K-fold cross-validation repeated over several
seeded splits, with an interval and the best control's R² beside every model's."""

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
    DEFAULT_REPEATS,
    fold_scores,
    min_rows,
    repeat_ranks,
    repeated_cv_interval,
    ridge_probes,
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
    r2: np.ndarray  # [M, P] pooled held-out R², mean over the repeats
    mae: np.ndarray  # [M, P] mean over the repeats
    n: np.ndarray  # [M, P]
    alpha: np.ndarray  # [M, P, folds] the alpha each outer fold of the first repeat chose
    r2_lo: np.ndarray  # [M, P] 95% corrected resampled-t interval of r2
    r2_hi: np.ndarray
    r2_repeats: np.ndarray  # [M, P, R] each repeat's pooled R² (the first: the study's seed)
    r2_folds: np.ndarray  # [M, P, R, folds] each fold's 1 − MSE / Var(y)
    r2_control: np.ndarray  # [P] the best control's r2 (NaN without controls)
    r2_control_hi: np.ndarray  # [P] the upper end of that control's interval
    attrs: dict[str, Any] = field(default_factory=dict)

    TEXT = ("models", "control", "properties")
    ARRAYS = ("r2", "mae", "n", "alpha", "r2_lo", "r2_hi", "r2_repeats", "r2_folds",
              "r2_control", "r2_control_hi")

#: intensive properties the transfer probes beside the primary one, when the dataset has them
INTENSIVE = ("gap", "band_gap")
PER_ATOM = "_per_atom"


def named_values(inputs: StudyInputs) -> dict[str, tuple[np.ndarray, str]]:
    """Every property with its units, plus the reference energy per atom (``<name>_per_atom``:
    the total energy grows with size, so a mean-pooled embedding can probe it from size alone).
    """
    out = {name: (values, inputs.units.get(name, "")) for name, values in
           inputs.properties.items()}
    reference = inputs.reference_energy
    if reference is not None and reference + PER_ATOM not in out:
        atoms = inputs.n_atoms.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            per_atom = np.where(atoms > 0, inputs.properties[reference] / atoms, np.nan)
        units = inputs.units.get(reference, "")
        out[reference + PER_ATOM] = (per_atom, f"{units}/atom" if units else "")
    return out


def transfer_properties(inputs: StudyInputs, primary: str) -> list[str]:
    """``primary``, then the reference energy per atom, the reference energy and a gap: the
    intensive and extensive targets the transfer reports (those with values)."""
    available = named_values(inputs)
    reference = inputs.reference_energy
    companions = [reference + PER_ATOM, reference] if reference is not None else []
    companions += list(INTENSIVE)
    out = [primary]
    for name in companions:
        if name in available and name not in out:
            values = available[name][0]
            finite = values[np.isfinite(values)]
            if len(finite) and np.ptp(finite) > 0:
                out.append(name)
    return out


def probe_properties(inputs: StudyInputs, folds: int) -> tuple[list[str], list[str]]:
    """Properties with enough finite, non-constant values to probe, and why others are not."""
    chosen, skipped = [], []
    for name, (values, _) in named_values(inputs).items():
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
           alphas: np.ndarray = DEFAULT_ALPHAS, repeats: int = DEFAULT_REPEATS) -> Probes:
    """The repeated nested-CV ridge probe of every model for every probe-able property.

    Repeat j splits by the seed ``seed + j`` (the first is the study's split). A model's
    properties with the same missing values share one set of decompositions; every model sees
    the same folds of the full dataset (restricted to the rows it embedded).
    """
    names, skipped = probe_properties(inputs, folds)
    available = named_values(inputs)
    m, p = len(inputs.files), len(names)
    r2, mae = np.full((m, p, repeats), np.nan), np.full((m, p, repeats), np.nan)
    scores = np.full((m, p, repeats, folds), np.nan)
    n = np.zeros((m, p), np.int64)
    alpha = np.full((m, p, folds), np.nan)
    ranks = repeat_ranks(len(inputs.ids), seed, repeats)
    values = np.column_stack([available[k][0] for k in names]) if p else \
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
            target = values[rows][:, columns]
            for r, rank in enumerate(ranks):
                results = ridge_probes(x[rows], target, seed + r, folds=folds, alphas=alphas,
                                       rank=rank[rows])
                for c, (j, result) in enumerate(zip(columns, results, strict=True)):
                    r2[i, j, r], mae[i, j, r], n[i, j] = result.r2, result.mae, result.n
                    scores[i, j, r] = fold_scores(target[:, c], result.predictions,
                                                  rank[rows] % folds, folds)
                    if r == 0:
                        alpha[i, j] = result.alpha_per_fold
    mean = r2.mean(axis=-1)
    lo, hi = np.full((m, p), np.nan), np.full((m, p), np.nan)
    for i, j in np.ndindex(m, p):
        lo[i, j], hi[i, j] = repeated_cv_interval(scores[i, j], folds, centre=mean[i, j])
    control_r2, control_hi = best_control(mean, hi, inputs.controls)
    attrs = {
        "dataset": inputs.dataset, "dataset_sha256": inputs.dataset_sha256, "seed": seed,
        "folds": folds, "repeats": repeats, "alphas": np.asarray(alphas, np.float64),
        "interval": "95% corrected resampled t over repeats x folds (Nadeau-Bengio)",
        "units": json.dumps({k: available[k][1] for k in names}),
        "skipped": "; ".join(skipped), "note": "; ".join(notes), "n_total": len(inputs.ids),
    }
    return Probes(models=inputs.models, control=inputs.controls, properties=names, r2=mean,
                  mae=mae.mean(axis=-1), n=n, alpha=alpha, r2_lo=lo, r2_hi=hi, r2_repeats=r2,
                  r2_folds=scores, r2_control=control_r2, r2_control_hi=control_hi,
                  attrs=attrs)


def best_control(r2: np.ndarray, hi: np.ndarray,
                 control: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """[P] the highest R² among the controls (models with a control label) and the upper end
    of that control's interval; NaN without controls."""
    best, upper = np.full(r2.shape[1], np.nan), np.full(r2.shape[1], np.nan)
    rows = [i for i, label in enumerate(control) if label]
    for j in range(r2.shape[1]):
        finite = [i for i in rows if np.isfinite(r2[i, j])]
        if finite:
            top = max(finite, key=lambda i: r2[i, j])
            best[j], upper[j] = r2[top, j], hi[top, j]
    return best, upper


def write_probes(structures_path: str | os.PathLike[str],
                 embedding_paths: Sequence[str | os.PathLike[str]],
                 out: str | os.PathLike[str],
                 seed: int = 0, folds: int = DEFAULT_FOLDS,
                 alphas: np.ndarray = DEFAULT_ALPHAS,
                 repeats: int = DEFAULT_REPEATS) -> Probes:
    """Compute :func:`probes` from the files and write ``probes.h5`` (its R² heatmap is
    :func:`~matteralign.plots.probes.plot_probes`)."""
    result = probes(load_inputs(structures_path, embedding_paths), seed, folds, alphas,
                    repeats)
    write_columns(out, {name: getattr(result, name) for name in Probes.TEXT},
                  {name: getattr(result, name) for name in Probes.ARRAYS},
                  {**result.attrs, **provenance(("scipy",))})
    return result


def read_probes(path: str | os.PathLike[str]) -> Probes:
    """probes.h5 after checking its content hash (a damaged file raises
    :class:`~matteralign.io.CorruptFileError`)."""
    columns, attrs = read_columns(path, Probes.TEXT, Probes.ARRAYS)
    return Probes(**columns, attrs=attrs)
