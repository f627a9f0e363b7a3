"""How well each model does: its energy error after a compositional correction, and how well a
ridge probe of its embedding predicts the dataset's reference energy.

Energy: models predict total energies on their own reference (their training DFT, their own
free-atom energies); a dataset stores total or atomization energies on another. The two differ
by a per-element constant to first order, so the residual pred − ref is corrected by
per-element offsets fitted by least squares on a seeded calibration split, and the MAE of the
corrected residual is reported on the held-out rest. For QM9 the reference is the atomization
energy (U0 minus the free-atom U0s) while models predict total energies: the free-atom
references are themselves a sum of per-element constants, so fitting pred − atomization_energy
per element absorbs them exactly, and the result is the same as against U0.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matteralign.analysis.ridge import (
    DEFAULT_ALPHAS,
    DEFAULT_FOLDS,
    ProbeResult,
    min_rows,
    ridge_probe,
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

__all__ = ["EnergyError", "Performance", "ProbeResult", "compositional_fit", "energy_mae",
           "performance", "read_performance", "ridge_probe", "write_performance"]

DEFAULT_CALIBRATION_FRACTION = 0.5


def compositional_fit(counts: np.ndarray, y: np.ndarray, train_mask: np.ndarray) -> np.ndarray:
    """Per-element offsets b minimising ‖y − counts b‖² over the rows of ``train_mask``.

    ``counts`` is [N, E] atoms of each element per structure. Elements absent from the training
    rows get offset 0 (the minimum-norm solution).
    """
    counts, y = np.asarray(counts, np.float64), np.asarray(y, np.float64)
    train = np.asarray(train_mask, bool)
    offsets, *_ = np.linalg.lstsq(counts[train], y[train], rcond=None)
    return offsets


@dataclass(frozen=True)
class EnergyError:
    """Held-out error of predicted energies after the compositional correction."""

    mae: float  # eV
    mae_per_atom: float  # eV/atom: mean of |corrected residual| / n_atoms
    n: int  # held-out structures evaluated
    n_calibration: int  # structures the offsets were fitted on
    n_excluded: int  # structures without a finite prediction and reference
    note: str = ""


def energy_mae(pred: np.ndarray, ref: np.ndarray, counts: np.ndarray, seed: int,
               calibration_fraction: float = DEFAULT_CALIBRATION_FRACTION) -> EnergyError:
    """MAE of ``pred − ref`` after per-element offsets fitted on a calibration split.

    The split is a seeded shuffle of all N rows (the first ``calibration_fraction`` of it
    calibrates), the same for every model of a dataset; rows where ``pred`` or ``ref`` is not
    finite (a structure the model masked) or with no atoms are then left out of both parts.
    """
    pred, ref = np.asarray(pred, np.float64), np.asarray(ref, np.float64)
    counts = np.asarray(counts, np.float64)
    if not 0 < calibration_fraction < 1:
        raise ValueError(f"calibration_fraction must be in (0, 1), got {calibration_fraction}")
    n_atoms = counts.sum(axis=1)
    usable = np.isfinite(pred) & np.isfinite(ref) & (n_atoms > 0)
    calibrating = shuffle_rank(len(pred), seed) < round(calibration_fraction * len(pred))
    fit, held = usable & calibrating, usable & ~calibrating
    excluded = int((~usable).sum())
    present = counts[fit].sum(axis=0) > 0
    if held.sum() == 0 or fit.sum() < max(int(present.sum()), 1):
        return EnergyError(math.nan, math.nan, int(held.sum()), int(fit.sum()), excluded,
                           f"too few structures to calibrate ({int(fit.sum())}) or evaluate "
                           f"({int(held.sum())})")
    residual = pred - ref
    corrected = residual - counts @ compositional_fit(counts, residual, fit)
    unseen = held & (counts[:, ~present].sum(axis=1) > 0)
    note = (f"{int(unseen.sum())} held-out structures hold elements absent from the "
            "calibration split (offset 0)") if unseen.any() else ""
    error = np.abs(corrected[held])
    return EnergyError(float(error.mean()), float((error / n_atoms[held]).mean()),
                       int(held.sum()), int(fit.sum()), excluded, note)


@dataclass
class Performance:
    """The content of ``performance.h5`` (see docs/formats.md)."""

    models: list[str]
    control: list[str]
    energy_mae: np.ndarray
    energy_mae_per_atom: np.ndarray
    energy_n: np.ndarray
    energy_n_excluded: np.ndarray
    probe_mae: np.ndarray
    probe_r2: np.ndarray
    probe_n: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)

    ARRAYS = ("energy_mae", "energy_mae_per_atom", "energy_n", "energy_n_excluded",
              "probe_mae", "probe_r2", "probe_n")


def performance(inputs: StudyInputs, seed: int, folds: int = DEFAULT_FOLDS,
                alphas: np.ndarray = DEFAULT_ALPHAS,
                calibration_fraction: float = DEFAULT_CALIBRATION_FRACTION) -> Performance:
    """Energy error and reference-energy probe of every model of one dataset."""
    m = len(inputs.files)
    nan = np.full(m, np.nan)
    result = Performance(models=inputs.models, control=inputs.controls,
                         energy_mae=nan.copy(), energy_mae_per_atom=nan.copy(),
                         energy_n=np.zeros(m, np.int64), energy_n_excluded=np.zeros(m, np.int64),
                         probe_mae=nan.copy(), probe_r2=nan.copy(),
                         probe_n=np.zeros(m, np.int64))
    target = inputs.reference_energy
    notes: list[str] = []
    if target is None:
        notes.append(f"dataset {inputs.dataset!r} has no reference energy: energy and probe "
                     "columns are NaN (probes.h5 covers its other properties)")
    rank = shuffle_rank(len(inputs.ids), seed)
    for i in progress(range(m), "performance"):
        usable = usable_rows_or_raise(inputs, i, folds)
        if target is None:
            continue
        model, f = inputs.models[i], inputs.files[i]
        reference = inputs.properties[target]
        if f.energy is None:
            notes.append(f"{model}: predicts no energy")
        else:
            error = energy_mae(np.where(usable, f.energy, np.nan), reference, inputs.counts,
                               seed, calibration_fraction)
            result.energy_mae[i], result.energy_mae_per_atom[i] = error.mae, error.mae_per_atom
            result.energy_n[i], result.energy_n_excluded[i] = error.n, error.n_excluded
            if error.note:
                notes.append(f"{model}: {error.note}")
        rows = usable & np.isfinite(reference)
        if rows.sum() < min_rows(folds):
            notes.append(f"{model}: only {int(rows.sum())} embedded structures have a "
                         f"{target}; the probe needs {min_rows(folds)}")
            continue
        probe = ridge_probe(inputs.files[i].embeddings[rows], reference[rows], seed,
                            folds=folds, alphas=alphas, rank=rank[rows])
        result.probe_mae[i], result.probe_r2[i], result.probe_n[i] = probe.mae, probe.r2, probe.n
    result.attrs = {
        "dataset": inputs.dataset, "dataset_sha256": inputs.dataset_sha256, "seed": seed,
        "target": target or "", "target_units": inputs.units.get(target, "") if target else "",
        "calibration_fraction": calibration_fraction, "folds": folds,
        "alphas": np.asarray(alphas, np.float64), "n_total": len(inputs.ids),
        "elements": np.asarray(inputs.elements, np.int64), "note": "; ".join(notes),
    }
    return result


def write_performance(structures_path: str | os.PathLike[str],
                      embedding_paths: Sequence[str | os.PathLike[str]],
                      out: str | os.PathLike[str], seed: int = 0, folds: int = DEFAULT_FOLDS,
                      alphas: np.ndarray = DEFAULT_ALPHAS,
                      calibration_fraction: float = DEFAULT_CALIBRATION_FRACTION
                      ) -> Performance:
    """Compute :func:`performance` from the files and write ``performance.h5``."""
    result = performance(load_inputs(structures_path, embedding_paths), seed, folds, alphas,
                         calibration_fraction)
    write_columns(out, {"models": result.models, "control": result.control},
                  {name: getattr(result, name) for name in Performance.ARRAYS},
                  {**result.attrs, **provenance(("scipy",))})
    return result


def read_performance(path: str | os.PathLike[str]) -> Performance:
    """performance.h5 after checking its content hash (a damaged file raises
    :class:`~matteralign.io.CorruptFileError`)."""
    columns, attrs = read_columns(path, ("models", "control"), Performance.ARRAYS)
    return Performance(**columns, attrs=attrs)
