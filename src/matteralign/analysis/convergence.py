"""Do interatomic potentials converge as their error falls?

For every model: its alignment to a reference model (by default the most accurate one) and
its mean alignment to all other models, set against its error (MAE). Convergence predicts
that the more accurate a model, the more aligned it is, i.e. a **negative** Spearman ρ
between MAE and alignment for a similarity metric such as CKNNA (positive for the
information imbalance, where lower = more aligned). Controls (random-init runs, non-neural
baselines) are shown in the figure but left out of ρ and of the local-optimum thirds: they
are not points on the accuracy axis of trained models.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from matteralign.errors import InputError
from matteralign.io import (
    atomic_h5,
    attr_flag,
    attr_flags,
    load_verified,
    read_metric,
    read_strings,
    require,
    set_attrs,
    strings,
)
from matteralign.models.domains import control_of
from matteralign.provenance import provenance


@dataclass
class Convergence:
    """The per-model columns of convergence.h5 and its Spearman statistics."""

    models: list[str]
    mae: np.ndarray
    alignment_to_reference: np.ndarray
    mean_alignment: np.ndarray
    local_optimum: np.ndarray
    controls: np.ndarray
    reference: str
    #: "reference"/"mean" -> (ρ, ci_low, ci_high); NaN where fewer than 3 models enter ρ
    spearman: dict[str, tuple[float, float, float]]
    n_models: int
    notes: list[str] = field(default_factory=list)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's ρ: the Pearson correlation of the ranks (ties get their average rank).

    NaN with fewer than 3 points or when either variable is constant.
    """
    from scipy.stats import rankdata

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size < 3:
        return float("nan")
    rx, ry = rankdata(x) - (x.size + 1) / 2, rankdata(y) - (y.size + 1) / 2
    denominator = np.sqrt((rx @ rx) * (ry @ ry))
    return float(rx @ ry / denominator) if denominator > 0 else float("nan")


def spearman_ci(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, n_boot: int = 1000,
                level: float = 0.95) -> tuple[float, float, float]:
    """ρ with a percentile bootstrap interval over points (models) drawn with replacement.

    Resamples in which a variable is constant have no ρ and are skipped.
    """
    rho = spearman(x, y)
    if not np.isfinite(rho) or n_boot <= 0:
        return rho, float("nan"), float("nan")
    draws = rng.integers(0, len(x), size=(n_boot, len(x)))
    boot = np.array([spearman(x[d], y[d]) for d in draws])
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return rho, float("nan"), float("nan")
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(boot, [tail, 100.0 - tail])
    return rho, float(low), float(high)


def symmetrised(matrix: np.ndarray) -> np.ndarray:
    """(A + Aᵀ)/2: CKNNA(i, j) and CKNNA(j, i) differ in the last digits (asymmetric masks)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return (matrix + matrix.T) / 2


def mean_to_others(matrix: np.ndarray) -> np.ndarray:
    """Each row's mean over the other models, self and NaN entries excluded."""
    sym = symmetrised(matrix).copy()
    np.fill_diagonal(sym, np.nan)
    with np.errstate(invalid="ignore"):
        counts = np.isfinite(sym).sum(1)
        sums = np.nansum(sym, axis=1)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def local_optima(mae: np.ndarray, alignment: np.ndarray, eligible: np.ndarray,
                 higher_is_aligned: bool = True) -> np.ndarray:
    """Accurate but weakly aligned: MAE among the best third and alignment to the reference
    among the worst third of the eligible models (a third = n // 3, at least one model; ties
    broken by model order). Needs at least 3 eligible models with finite values."""
    flag = np.zeros(len(mae), dtype=bool)
    idx = np.flatnonzero(eligible & np.isfinite(mae) & np.isfinite(alignment))
    if idx.size < 3:
        return flag
    third = max(1, idx.size // 3)
    best_mae = idx[np.argsort(mae[idx], kind="stable")[:third]]
    weakness = -alignment[idx] if higher_is_aligned else alignment[idx]
    worst_aligned = idx[np.argsort(-weakness, kind="stable")[:third]]
    flag[np.intersect1d(best_mae, worst_aligned)] = True
    return flag


def convergence(models: Sequence[str], mae: np.ndarray, matrix: np.ndarray,
                reference: str | None = None, seed: int = 0, n_boot: int = 1000, *,
                controls: Sequence[bool] | None = None,
                higher_is_aligned: bool = True) -> Convergence:
    """Alignment against error for the models of one metric matrix (rows = ``models``).

    ``reference`` defaults to the non-control model with the lowest finite MAE. ρ(MAE,
    alignment to reference) is over the non-control models with finite MAE except the
    reference itself (its self-alignment is trivially perfect); ρ(MAE, mean alignment)
    includes the reference. A negative ρ (positive for a lower-is-aligned metric) means
    alignment rises as error falls: convergence.
    """
    models = list(models)
    mae = np.asarray(mae, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    m = len(models)
    if mae.shape != (m,) or matrix.shape != (m, m):
        raise ValueError(f"convergence: {m} models but mae {mae.shape} and matrix "
                         f"{matrix.shape}")
    is_control = np.zeros(m, bool) if controls is None else np.asarray(controls, dtype=bool)
    notes: list[str] = []
    trained = ~is_control & np.isfinite(mae)
    if reference is None:
        candidates = np.flatnonzero(trained)
        reference = models[candidates[np.argmin(mae[candidates])]] if candidates.size else ""
        if not reference:
            notes.append("no non-control model has a finite MAE, so there is no reference")
    elif reference not in models:
        raise InputError(f"analysis.reference: model {reference!r} is not in this metric "
                         f"file; set it to one of {models} (or leave it empty for the most "
                         "accurate model)")
    sym = symmetrised(matrix)
    to_reference = sym[models.index(reference)].copy() if reference else np.full(m, np.nan)
    mean_alignment = mean_to_others(matrix)
    rng = np.random.default_rng(seed)
    not_reference = np.array([name != reference for name in models])
    use_reference = trained & not_reference & np.isfinite(to_reference)
    use_mean = trained & np.isfinite(mean_alignment)
    stats = {
        "reference": spearman_ci(mae[use_reference], to_reference[use_reference], rng, n_boot),
        "mean": spearman_ci(mae[use_mean], mean_alignment[use_mean], rng, n_boot),
    }
    n_models = int(trained.sum())
    if n_models < 3:
        notes.append(f"only {n_models} non-control model(s) have a finite MAE; Spearman ρ "
                     "needs at least 3, so convergence cannot be tested on this dataset")
    elif use_reference.sum() < 3:
        notes.append(f"ρ to the reference: only {int(use_reference.sum())} model(s) with a "
                     "finite MAE besides the reference; it needs at least 3")
    # the ladder's rungs (one architecture and data source, many seeds and sizes) are read by
    # the ladder's own tests: as candidates they would fill the tertiles with one family
    from matteralign.training.ladder import parse_rung_name

    pretrained = np.array([parse_rung_name(name) is None for name in models])
    flags = local_optima(mae, to_reference, trained & not_reference & pretrained,
                         higher_is_aligned)
    return Convergence(models, mae, to_reference, mean_alignment, flags, is_control, reference,
                       stats, n_models, notes)


def _performance(path: str | os.PathLike[str]) -> tuple[dict[str, dict[str, object]], str]:
    """performance.h5 as model -> {control, energy_mae, probe_mae}, and the probe's units,
    after checking the file's content hash."""
    data, attrs = load_verified(path)
    names = read_strings(require(data, "models", path))
    columns = {key: data[key] for key in ("energy_mae", "probe_mae") if key in data}
    control = read_strings(data["control"]) if "control" in data else [""] * len(names)
    units = str(attrs.get("target_units", ""))
    return {name: {"control": control[i],
                   **{key: float(col[i]) for key, col in columns.items()}}
            for i, name in enumerate(names)}, units


def write_convergence(performance_path: str | os.PathLike[str],
                      metric_path: str | os.PathLike[str], out: str | os.PathLike[str],
                      reference: str | None = None, seed: int = 0,
                      n_boot: int = 1000) -> Convergence:
    """convergence.h5 (layout in STUDY_SPEC / docs/formats.md); its figure is
    :func:`~matteralign.plots.study.plot_convergence`.

    The performance measure is ``energy_mae`` when any model of the grid has it finite, else
    ``probe_mae``. With fewer than 3 such models the file is still written, with NaN ρ and a
    note: a dataset without reference energies cannot test convergence.
    """
    metric = read_metric(metric_path)
    if metric.matrix is None:
        raise InputError(f"{metric_path}: convergence needs a pairwise metric file (cknna.h5), "
                         f"not the per-model {metric.metric!r}")
    performance, probe_units = _performance(performance_path)
    models = metric.models
    random_init = attr_flags(metric.attrs.get("random_init"), len(models))
    control = [str(performance[m]["control"]) if m in performance else control_of(m, r)
               for m, r in zip(models, random_init, strict=True)]
    energy = np.array([performance.get(m, {}).get("energy_mae", np.nan) for m in models], float)
    measure = "energy_mae" if np.isfinite(energy).any() else "probe_mae"
    mae = energy if measure == "energy_mae" else np.array(
        [performance.get(m, {}).get("probe_mae", np.nan) for m in models], float)
    higher = attr_flag(metric.attrs.get("higher_is_aligned")) is not False
    result = convergence(models, mae, metric.matrix, reference or None, seed, n_boot,
                         controls=[c != "" for c in control], higher_is_aligned=higher)
    missing = sorted(set(models) - set(performance))
    if missing:
        result.notes.append(f"not in {Path(performance_path).name}: {missing} (MAE NaN)")
    sign = "negative" if higher else "positive"
    attrs: dict[str, object] = {
        "dataset": metric.attrs.get("dataset", ""),
        "seed": seed,
        "metric": metric.metric,
        "metric_file": str(metric_path),
        "reference": result.reference,
        "performance_measure": measure,
        "mae_units": "eV" if measure == "energy_mae" else probe_units,
        "n_models": result.n_models,
        "n_boot": n_boot,
        "convergence_sign": f"{sign} ρ = alignment rises as {measure} falls (convergence)",
        "controls_excluded": "controls (random-init, baselines) are excluded from ρ and from "
                             "the local-optimum thirds",
        "note": "; ".join(result.notes),
        **provenance(("scipy",)),
    }
    for key, (rho, low, high) in result.spearman.items():
        attrs[f"spearman_{key}"] = rho
        attrs[f"spearman_{key}_ci_low"] = low
        attrs[f"spearman_{key}_ci_high"] = high
    with atomic_h5(out) as handle:
        handle.create_dataset("models", data=strings(models))
        handle.create_dataset("control", data=strings(control))
        handle.create_dataset("mae", data=result.mae)
        handle.create_dataset("alignment_to_reference", data=result.alignment_to_reference)
        handle.create_dataset("mean_alignment", data=result.mean_alignment)
        handle.create_dataset("local_optimum", data=result.local_optimum)
        set_attrs(handle, attrs)
    return result


def read_convergence(path: str | os.PathLike[str]) -> dict[str, object]:
    """convergence.h5 as a dict of its datasets (numpy arrays, model names) and ``attrs``,
    after checking its content hash."""
    data, attrs = load_verified(path)
    out: dict[str, object] = {key: read_strings(value) if key in ("models", "control")
                              else value for key, value in data.items()}
    out["attrs"] = attrs
    return out

