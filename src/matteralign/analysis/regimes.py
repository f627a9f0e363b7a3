"""In and out of distribution: each model's regime on a dataset, its intrinsic dimension and
the alignment and information imbalance within each regime group.

The paper's claim is that in distribution (ID) representations are shaped by the training
data, while out of distribution (OOD) they collapse onto low-information manifolds: lower
intrinsic dimension and a changed information-imbalance pattern. Controls (random-init runs,
non-neural baselines) form their own group.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matteralign.errors import InputError
from matteralign.io import (
    MetricFile,
    atomic_h5,
    attr_flags,
    load_verified,
    read_metric,
    read_strings,
    set_attrs,
    strings,
)
from matteralign.models.domains import REGIMES, regime
from matteralign.provenance import provenance

#: unordered pair types of the information-imbalance plane
PAIR_TYPES = ("ID-ID", "ID-OOD", "OOD-OOD", "control")


@dataclass
class Regimes:
    models: list[str]
    regime: list[str]
    intrinsic_dim: np.ndarray
    intrinsic_dim_ci_low: np.ndarray
    intrinsic_dim_ci_high: np.ndarray
    #: regime -> {n_models, mean_calibrated_alignment, mean_intrinsic_dim,
    #: mean_information_imbalance}; None where a group has nothing to average
    summary: dict[str, dict[str, float | int | None]]
    #: pair type -> {n_pairs, mean_information_imbalance, mean_calibrated_alignment}
    pairs: dict[str, dict[str, float | int | None]]
    alignment: str  # "calibrated" or "raw": which CKNNA values the summary averages


def pair_type(a: str, b: str) -> str:
    """"ID-ID", "ID-OOD", "OOD-OOD", or "control" when either model is a control."""
    if "control" in (a, b):
        return "control"
    return "-".join(sorted((a, b)))


def _mean(values: np.ndarray) -> float | None:
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def _within(matrix: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Off-diagonal entries [i, j] with both i and j in ``members`` (both orientations)."""
    mask = np.outer(members, members) & ~np.eye(len(members), dtype=bool)
    return matrix[mask]


def _between(matrix: np.ndarray, types: np.ndarray, wanted: str) -> np.ndarray:
    mask = (types == wanted) & ~np.eye(len(types), dtype=bool)
    return matrix[mask]


def _aligned(values: np.ndarray, source: Sequence[str], target: Sequence[str],
             fill: float = np.nan) -> np.ndarray:
    """Re-index a per-model vector or [M, M] matrix from ``source`` order to ``target``."""
    where = {name: i for i, name in enumerate(source)}
    idx = np.array([where.get(name, -1) for name in target])
    present = idx >= 0
    if values.ndim == 1:
        out = np.full(len(target), fill)
        out[present] = values[idx[present]]
        return out
    out = np.full((len(target), len(target)), fill)
    out[np.ix_(present, present)] = values[np.ix_(idx[present], idx[present])]
    return out


def regimes(dataset_kind: str, alignment: MetricFile, intrinsic_dim: MetricFile,
            information_imbalance: MetricFile,
            domains_overrides: Mapping[str, Sequence[str]] | None = None) -> Regimes:
    """Regime of every model of ``alignment`` (CKNNA) and the per-regime summary."""
    models = alignment.models
    random_init = attr_flags(alignment.attrs.get("random_init"), len(models))
    labels = [regime(m, dataset_kind, r, domains_overrides)
              for m, r in zip(models, random_init, strict=True)]
    if intrinsic_dim.values is None or information_imbalance.matrix is None:
        raise InputError("regimes: --intrinsic-dim needs the per-model intrinsic_dim.h5 and "
                         "--ii the pairwise information_imbalance.h5")
    ids = _aligned(intrinsic_dim.values, intrinsic_dim.models, models)
    ci = {key: _aligned(intrinsic_dim.extra[key], intrinsic_dim.models, models)
          if key in intrinsic_dim.extra else np.full(len(models), np.nan)
          for key in ("ci_low", "ci_high")}
    ii = _aligned(information_imbalance.matrix, information_imbalance.models, models)
    kind = "calibrated" if "calibrated" in alignment.extra else "raw"
    align = np.asarray(alignment.extra["calibrated"] if kind == "calibrated"
                       else alignment.matrix, dtype=np.float64)
    regime_of = np.array(labels)
    summary: dict[str, dict[str, float | int | None]] = {}
    for group in REGIMES:
        members = regime_of == group
        summary[group] = {
            "n_models": int(members.sum()),
            "mean_calibrated_alignment": _mean(_within(align, members)),
            "mean_intrinsic_dim": _mean(ids[members]),
            "mean_information_imbalance": _mean(_within(ii, members)),
        }
    types = np.array([[pair_type(a, b) for b in labels] for a in labels])
    pairs = {t: {"n_pairs": int(np.triu(types == t, 1).sum()),
                 "mean_information_imbalance": _mean(_between(ii, types, t)),
                 "mean_calibrated_alignment": _mean(_between(align, types, t))}
             for t in PAIR_TYPES}
    return Regimes(models, labels, ids, ci["ci_low"], ci["ci_high"], summary, pairs, kind)


def read_domains(value: str | None) -> dict[str, list[str]] | None:
    """``--domains``: a JSON object model -> [dataset kinds], inline or as a file path."""
    if not value:
        return None
    text = Path(value).read_text() if Path(value).is_file() else value
    try:
        domains = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"analysis.domains: not valid JSON ({err.msg}); give an object such "
                         'as {"minimol": ["molecules"]}') from None
    if not isinstance(domains, dict) or not all(isinstance(v, list) for v in domains.values()):
        raise InputError('analysis.domains: expected an object model -> list of dataset kinds, '
                         'e.g. {"minimol": ["molecules"]}')
    return {str(k): [str(x) for x in v] for k, v in domains.items()}


def write_regimes(dataset_kind: str, intrinsic_dim_path: str | os.PathLike[str],
                  ii_path: str | os.PathLike[str], metric_path: str | os.PathLike[str],
                  out: str | os.PathLike[str],
                  domains_overrides: Mapping[str, Sequence[str]] | None = None) -> Regimes:
    """regimes.h5 (layout in STUDY_SPEC / docs/formats.md); its figures are
    :func:`~matteralign.plots.study.plot_intrinsic_dim` and ``plot_ii_plane``."""
    alignment = read_metric(metric_path)
    if alignment.matrix is None:
        raise InputError(f"{metric_path}: --metric-file needs a pairwise metric (cknna.h5)")
    result = regimes(dataset_kind, alignment, read_metric(intrinsic_dim_path),
                     read_metric(ii_path), domains_overrides)
    attrs = {
        "dataset": alignment.attrs.get("dataset", ""),
        "seed": alignment.attrs.get("seed", 0),
        "dataset_kind": dataset_kind,
        "metric": alignment.metric,
        "alignment": result.alignment,
        "summary": json.dumps(result.summary),
        "pairs": json.dumps(result.pairs),
        "domains_overrides": json.dumps(dict(domains_overrides or {})),
        "note": "" if result.alignment == "calibrated" else
                "no permutation null in the metric file: mean_calibrated_alignment holds the "
                "raw alignment",
        **provenance(),
    }
    with atomic_h5(out) as handle:
        handle.create_dataset("models", data=strings(result.models))
        handle.create_dataset("regime", data=strings(result.regime))
        handle.create_dataset("intrinsic_dim", data=result.intrinsic_dim)
        handle.create_dataset("intrinsic_dim_ci_low", data=result.intrinsic_dim_ci_low)
        handle.create_dataset("intrinsic_dim_ci_high", data=result.intrinsic_dim_ci_high)
        set_attrs(handle, attrs)
    return result


def modalities(metric: MetricFile) -> dict[str, str]:
    return dict(zip(metric.models, metric.attrs.get("modalities", [""] * len(metric.models)),
                    strict=False))


def read_regimes(path: str | os.PathLike[str]) -> dict[str, object]:
    """regimes.h5 as a dict of its datasets, ``attrs``, and the decoded ``summary``, after
    checking its content hash."""
    data, attrs = load_verified(path)
    out: dict[str, object] = {key: read_strings(value) if key in ("models", "regime")
                              else value for key, value in data.items()}
    out["attrs"] = attrs
    out["summary"] = json.loads(attrs["summary"])
    out["pairs"] = json.loads(attrs.get("pairs", "{}"))
    return out
