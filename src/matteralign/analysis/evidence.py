"""Evidence on a claim, read from a study's files: verdicts, tests, and each metric pair's
value with its bootstrap interval, chance level (permutation null) and calibrated score.

The verdicts are

* ``agrees`` / ``disagrees``: the rule's condition holds / its opposite holds, beyond the
  uncertainty the rule names;
* ``inconclusive``: testable here, but the numbers do not separate the two outcomes;
* ``cannot be tested here``: the study lacks what the test needs (said why);
* ``mixed`` (a claim's overall verdict only): datasets or sub-tests disagree.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from matteralign.io import (
    MetricFile,
    attr_flag,
    attr_flags,
    load_verified,
    read_metric,
    read_strings,
)
from matteralign.models.domains import control_of

AGREES, DISAGREES, INCONCLUSIVE, MIXED = "agrees", "disagrees", "inconclusive", "mixed"
UNTESTABLE = "cannot be tested here"
VERDICTS = (AGREES, DISAGREES, INCONCLUSIVE, MIXED, UNTESTABLE)

NAMES = {"cknna": "CKNNA", "mutual_knn": "mutual k-NN", "cka": "CKA", "dcor": "dCor",
         "information_imbalance": "Δ", "intrinsic_dim": "TwoNN ID", "gfre": "GFRE",
         "lfre": "LFRE"}


@dataclass
class Test:
    """One dataset's (or sub-test's) evidence on a claim."""

    label: str
    verdict: str
    reason: str
    measured: list[str] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)


@dataclass
class Claim:
    key: str
    title: str
    paper: str
    rule: str
    tests: list[Test] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return combine(t.verdict for t in self.tests)


def combine(verdicts: Iterable[str]) -> str:
    """A claim's verdict from its tests: untestable ones are ignored; agreeing and disagreeing
    tests together give ``mixed``; otherwise the decisive verdict if any, else inconclusive."""
    tested = [v for v in verdicts if v != UNTESTABLE]
    if not tested:
        return UNTESTABLE
    decisive = {v for v in tested if v in (AGREES, DISAGREES)}
    if len(decisive) == 2 or MIXED in tested:
        return MIXED
    return decisive.pop() if decisive else INCONCLUSIVE


# ---------------------------------------------------------------------------------------------
# reading the study's files
# ---------------------------------------------------------------------------------------------


def read_table(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Every top-level dataset of a study file (strings decoded) and its ``attrs``, after
    checking its content hash; None if absent."""
    if not Path(path).is_file():
        return None
    data, attrs = load_verified(path)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if "/" in key:
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
            value = read_strings(value.ravel())
        out[key] = value
    out["attrs"] = attrs
    return out


@dataclass
class DatasetResults:
    """What one dataset's folder holds, and which of the expected files are missing."""

    name: str
    kind: str
    metrics: dict[str, MetricFile]
    tables: dict[str, dict[str, Any]]
    missing: list[str]
    #: the property maps configured for this dataset (analysis.map_properties)
    map_figures: list[str] = field(default_factory=list)

    @property
    def first_metric(self) -> MetricFile | None:
        return next(iter(self.metrics.values()), None)

    def models(self) -> list[str]:
        metric = self.first_metric
        return list(metric.models) if metric else []

    def modality(self) -> dict[str, str]:
        metric = self.first_metric
        if metric is None:
            return {}
        return dict(zip(metric.models, metric.attrs.get("modalities", []), strict=False))

    def control(self) -> dict[str, str]:
        """model -> "" | "random-init" | "baseline"."""
        metric = self.first_metric
        if metric is None:
            return {}
        random_init = attr_flags(metric.attrs.get("random_init"), len(metric.models))
        return {m: control_of(m, r) for m, r in zip(metric.models, random_init, strict=True)}

    def trained(self) -> list[str]:
        control = self.control()
        return [m for m in self.models() if not control.get(m)]


ANALYSIS_FILES = ("performance", "probes", "transfer", "convergence", "regimes")


def load_dataset(results: str | os.PathLike[str], dataset: str, kind: str,
                 metric_names: Sequence[str]) -> DatasetResults:
    folder = Path(results) / dataset
    metrics, missing = {}, []
    for name in metric_names:
        path = folder / f"{name}.h5"
        if path.is_file():
            metrics[name] = read_metric(path)
        else:
            missing.append(f"{dataset}/{name}.h5")
    tables = {}
    for name in ANALYSIS_FILES:
        table = read_table(folder / f"{name}.h5")
        if table is None:
            missing.append(f"{dataset}/{name}.h5")
        else:
            tables[name] = table
    return DatasetResults(dataset, kind, metrics, tables, missing)


# ---------------------------------------------------------------------------------------------
# one pair of one metric, with its interval and chance level
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairValue:
    raw: float
    ci_low: float
    ci_high: float
    null_mean: float
    null_p95: float
    calibrated: float
    calibrated_low: float
    calibrated_high: float
    above_chance: float  # 1.0, 0.0 or NaN (no null)


def _entry(metric: MetricFile, name: str, i: int, j: int) -> float:
    array = metric.matrix if name == "matrix" else metric.extra.get(name)
    return float(array[i, j]) if array is not None else math.nan


def directional(metric: MetricFile) -> bool:
    """Whether entry (a, b) means "a → b" (the lower-is-aligned metrics of the table: the
    information imbalance, GFRE, LFRE) rather than an orientation of one similarity."""
    return not higher_is_aligned(metric)


def higher_is_aligned(metric: MetricFile) -> bool:
    return attr_flag(metric.attrs.get("higher_is_aligned")) is not False


def upper_bound(metric: MetricFile) -> float:
    from matteralign.metrics import METRIC_INFO

    return float(METRIC_INFO.get(metric.metric, {"range": (0.0, 1.0)})["range"][1])


def calibrate(value: float, null_mean: float, higher: bool, upper: float) -> float:
    """(obs − null)/(upper − null) for similarities, (null − obs)/null for the information
    imbalance: 0 = chance, 1 = perfect (the formula of each metric file's ``calibration``)."""
    gain, scale = (value - null_mean, upper - null_mean) if higher else (null_mean - value,
                                                                          null_mean)
    return gain / scale if np.isfinite(scale) and scale != 0 else math.nan


def pair_value(metric: MetricFile, a: str, b: str) -> PairValue:
    """The (a, b) entry with its bootstrap interval and permutation null. Symmetric metrics
    (and CKNNA, asymmetric only in rounding) average both orientations; the information
    imbalance and the reconstruction errors keep the direction a → b. Above chance needs
    both orientations beyond the null's 95th percentile (5th where lower is aligned)."""
    i, j = metric.models.index(a), metric.models.index(b)
    cells = [(i, j)] if directional(metric) else [(i, j), (j, i)]

    def mean(name: str) -> float:
        return float(np.mean([_entry(metric, name, r, c) for r, c in cells]))

    higher, upper = higher_is_aligned(metric), upper_bound(metric)
    raw, low, high, null = mean("matrix"), mean("ci_low"), mean("ci_high"), mean("null_mean")
    if "calibrated" in metric.extra:
        calibrated = mean("calibrated")
    else:
        calibrated = calibrate(raw, null, higher, upper)
    bounds = sorted(calibrate(v, null, higher, upper) for v in (low, high))
    above = [_entry(metric, "above_chance", r, c) for r, c in cells]
    if "above_chance" not in metric.extra:
        p95 = [_entry(metric, "null_p95", r, c) for r, c in cells]
        values = [_entry(metric, "matrix", r, c) for r, c in cells]
        above = [(float(v > t) if higher else float(v < t)) if np.isfinite(t) else math.nan
                 for v, t in zip(values, p95, strict=True)]
    return PairValue(raw, low, high, null, mean("null_p95"), calibrated, bounds[0], bounds[1],
                     float(min(above)) if all(np.isfinite(above)) else math.nan)


def or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def num(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if np.isfinite(value) else "n/a"


def describe_pair(metric: MetricFile, a: str, b: str, dataset: str) -> str:
    """"CKNNA(a, b) on qm9 = 0.28 [0.25, 0.31], chance 0.02 (95% null 0.03), calibrated 0.27
    [0.24, 0.30], above chance" — with what is missing said where it is missing."""
    v = pair_value(metric, a, b)
    arrow = " → " if directional(metric) else ", "
    text = f"{NAMES.get(metric.metric, metric.metric)}({a}{arrow}{b}) on {dataset} = {num(v.raw)}"
    text += f" [{num(v.ci_low)}, {num(v.ci_high)}]" if np.isfinite(v.ci_low) else \
        " (no interval: metrics.bootstrap = 0)"
    if not np.isfinite(v.null_mean):
        return text + ", no chance level (metrics.permutations = 0)"
    text += f", chance {num(v.null_mean)} (null 95% threshold {num(v.null_p95)})"
    text += f", calibrated {num(v.calibrated)}"
    if np.isfinite(v.calibrated_low):
        text += f" [{num(v.calibrated_low)}, {num(v.calibrated_high)}]"
    return text + (", above chance" if v.above_chance == 1.0 else ", not above chance")


def has_null(metric: MetricFile | None) -> bool:
    return metric is not None and "null_mean" in metric.extra


def pair_stats(metric: MetricFile, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Means over model pairs of the raw, null and calibrated values; share above chance."""
    values = [pair_value(metric, a, b) for a, b in pairs]

    def mean(attr: str) -> float:
        column = np.array([getattr(v, attr) for v in values], dtype=np.float64)
        column = column[np.isfinite(column)]
        return float(column.mean()) if column.size else math.nan

    calibrated = np.array([v.calibrated for v in values], dtype=np.float64)
    finite = calibrated[np.isfinite(calibrated)]
    return {
        "metric": metric.metric,
        "n_pairs": len(values),
        "mean_raw": mean("raw"),
        "mean_null": mean("null_mean"),
        "mean_calibrated": mean("calibrated"),
        "min_calibrated": float(finite.min()) if finite.size else math.nan,
        "max_calibrated": float(finite.max()) if finite.size else math.nan,
        "share_above_chance": mean("above_chance"),
    }


def describe_stats(stats: Mapping[str, Any], what: str) -> str:
    name = NAMES.get(stats["metric"], stats["metric"])
    if not stats["n_pairs"]:
        return f"{name}, {what}: no pairs"
    return (f"{name}, {what} ({stats['n_pairs']} pairs): mean {num(stats['mean_raw'])}, "
            f"chance {num(stats['mean_null'])}, calibrated {num(stats['mean_calibrated'])} "
            f"(range {num(stats['min_calibrated'])} to {num(stats['max_calibrated'])}), "
            f"{percent(stats['share_above_chance'])} above chance")


def percent(value: float) -> str:
    return f"{100 * value:.0f}%" if np.isfinite(value) else "n/a"


def pairs_between(left: Sequence[str], right: Sequence[str]) -> list[tuple[str, str]]:
    """Unordered pairs with one model from each list (each pair once)."""
    seen: set[frozenset[str]] = set()
    out = []
    for a in left:
        for b in right:
            key = frozenset((a, b))
            if a != b and key not in seen:
                seen.add(key)
                out.append((a, b))
    return out


def figure_path(dataset: str, name: str) -> str:
    return f"{dataset}/figures/{name}.png"
