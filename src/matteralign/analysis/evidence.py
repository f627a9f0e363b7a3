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

from matteralign.analysis.calibration import above_chance
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
#: the level of every decision on the page
ALPHA = 0.05

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
    #: False: a secondary quantity, shown with its test but left out of the claim's verdict
    scored: bool = True


#: where a question comes from: the paper, or the popular-press account of this line of work
PAPER_SOURCE = "arXiv 2512.03750"
PRESS_SOURCE = ("a popular-press account of this line of work (not arXiv 2512.03750: the "
                "paper itself neither probes transfer nor draws property maps)")


@dataclass
class Claim:
    key: str
    title: str
    paper: str
    rule: str
    tests: list[Test] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: where the question is asked (PAPER_SOURCE, PRESS_SOURCE, or another paper)
    source: str = PAPER_SOURCE

    @property
    def verdict(self) -> str:
        return combine(t.verdict for t in self.tests if t.scored)


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
    #: the trained ladder (analysis.ladder.Ladder) on the dataset it trains on, else None
    ladder: Any = None
    #: the ladder's held-out design (analysis.held_out.HeldOut), else None
    held_out: Any = None

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

    def family(self) -> dict[str, str]:
        """model -> its model family (checkpoints of one family are one independent unit);
        a model of no recorded family is a family of its own."""
        metric = self.first_metric
        if metric is None:
            return {}
        families = list(metric.attrs.get("families", [])) or [""] * len(metric.models)
        return {m: str(f) or m for m, f in zip(metric.models, families, strict=False)}


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
    p_value: float = math.nan  # permutation p, the larger of the two orientations
    q_value: float = math.nan  # Benjamini-Hochberg over the dataset's pairs x metrics


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
    from matteralign.metrics import SPECS

    spec = SPECS.get(metric.metric)
    if spec is None:
        raise KeyError(f"{metric.metric!r} is not a metric of the table (metrics.spec)")
    return float(spec.range[1])


def calibrate(value: float, null_mean: float, higher: bool, upper: float) -> float:
    """(obs − null)/(upper − null) for similarities, (null − obs)/null for the information
    imbalance: 0 = chance, 1 = perfect (the formula of each metric file's ``calibration``)."""
    gain, scale = (value - null_mean, upper - null_mean) if higher else (null_mean - value,
                                                                          null_mean)
    return gain / scale if np.isfinite(scale) and scale != 0 else math.nan


def _cells(metric: MetricFile, a: str, b: str) -> list[tuple[int, int]]:
    i, j = metric.models.index(a), metric.models.index(b)
    return [(i, j)] if directional(metric) else [(i, j), (j, i)]


def pair_value(metric: MetricFile, a: str, b: str) -> PairValue:
    """The (a, b) entry with its bootstrap interval and permutation null. Symmetric metrics
    (and CKNNA, asymmetric only in rounding) average both orientations; the information
    imbalance and the reconstruction errors keep the direction a → b. Above chance: the
    Benjamini–Hochberg q-value (else the p-value) of the larger p of the orientations ≤ ALPHA."""
    cells = _cells(metric, a, b)

    def mean(name: str) -> float:
        return float(np.mean([_entry(metric, name, r, c) for r, c in cells]))

    higher, upper = higher_is_aligned(metric), upper_bound(metric)
    raw, low, high, null = mean("matrix"), mean("ci_low"), mean("ci_high"), mean("null_mean")
    if "calibrated" in metric.extra:
        calibrated = mean("calibrated")
    else:
        calibrated = calibrate(raw, null, higher, upper)
    bounds = sorted(calibrate(v, null, higher, upper) for v in (low, high))
    p = max((_entry(metric, "p_value", r, c) for r, c in cells), default=math.nan)
    q = max((_entry(metric, "q_value", r, c) for r, c in cells), default=math.nan)
    if np.isfinite(q) or np.isfinite(p):
        above = float((q if np.isfinite(q) else p) <= ALPHA)
    else:  # an older file: its flags, else its threshold (now an order statistic)
        flags = [_entry(metric, "above_chance", r, c) for r, c in cells]
        if "above_chance" not in metric.extra:
            flags = [float(above_chance(_entry(metric, "matrix", r, c),
                                        _entry(metric, "null_p95", r, c), higher))
                     for r, c in cells]
        above = float(min(flags)) if all(np.isfinite(flags)) else math.nan
    return PairValue(raw, low, high, null, mean("null_p95"), calibrated, bounds[0], bounds[1],
                     above, p, q)


def pair_replicates(metric: MetricFile, a: str, b: str) -> np.ndarray | None:
    """The (a, b) entry on each half-sample (orientations averaged as in :func:`pair_value`),
    or None when the file holds no replicates (metrics.bootstrap = 0, or an older file)."""
    stack = metric.extra.get("replicates")
    if stack is None or np.ndim(stack) != 3:
        return None
    return np.mean([stack[:, r, c] for r, c in _cells(metric, a, b)], axis=0)


@dataclass(frozen=True)
class Effect:
    """Trained pairs' alignment minus the strongest control's, with a paired interval."""

    value: float
    low: float
    high: float
    n_pairs: int
    controls: tuple[str, ...]
    per_pair: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    @property
    def above(self) -> bool:
        return bool(np.isfinite(self.low) and self.low > 0)

    @property
    def below(self) -> bool:
        return bool(np.isfinite(self.high) and self.high < 0)


def _substitutes(a: str, b: str, controls: Sequence[str],
                 modality: Mapping[str, str]) -> list[tuple[str, str]]:
    """The pairs that keep one partner and put a control of the other's input type (e.g.
    `composition` for a 3D model, `morgan-fp` for a SMILES model) in its place."""
    def like(c: str, m: str) -> bool:
        return c not in (a, b) and modality.get(c) == modality.get(m)

    return [(c, b) for c in controls if like(c, a)] + [(a, c) for c in controls if like(c, b)]


def effect_over_controls(metric: MetricFile, pairs: Sequence[tuple[str, str]],
                         controls: Sequence[str], modality: Mapping[str, str],
                         ci: float = 0.95) -> Effect:
    """For each pair (a, b): its alignment minus the best alignment that a control reaches in
    place of either partner ((c, b) with c of a's input type, or (a, c) with c of b's),
    oriented so that > 0 means "the trained pair is more aligned"; averaged over the pairs
    that have a control. The interval is paired: the same difference on each half-sample
    (every entry of a replicate comes from the same rows)."""
    from matteralign.metrics.resampling import paired_interval

    sign = 1.0 if higher_is_aligned(metric) else -1.0
    controls = [c for c in controls if c in metric.models]
    if not pairs or not controls:
        return Effect(math.nan, math.nan, math.nan, len(pairs), tuple(controls))
    per_pair, values, reps = {}, [], []
    for a, b in pairs:
        subs = _substitutes(a, b, controls, modality)
        if not subs:
            continue
        raw = sign * pair_value(metric, a, b).raw
        best = max(sign * pair_value(metric, x, y).raw for x, y in subs)
        value = raw - best
        rep_ab = pair_replicates(metric, a, b)
        rep = None
        if rep_ab is not None:
            rep_subs = np.stack([pair_replicates(metric, x, y) for x, y in subs])
            rep = sign * rep_ab - np.max(sign * rep_subs, axis=0)
            reps.append(rep)
        low, high = paired_interval(value, rep, ci) if rep is not None else (math.nan,
                                                                             math.nan)
        per_pair[f"{a} × {b}"] = (value, low, high)
        values.append(value)
    if not values:
        return Effect(math.nan, math.nan, math.nan, 0, tuple(controls))
    mean = float(np.mean(values))
    low, high = (paired_interval(mean, np.mean(np.stack(reps), axis=0), ci)
                 if len(reps) == len(values) else (math.nan, math.nan))
    return Effect(mean, low, high, len(values), tuple(controls), per_pair)


def describe_effect(effect: Effect, name: str) -> str:
    if not np.isfinite(effect.value):
        return f"{name} over controls: no control in the grid"
    interval = (f" [{num(effect.low)}, {num(effect.high)}]" if np.isfinite(effect.low)
                else " (no interval: metrics.bootstrap = 0)")
    return (f"{name} of the trained pairs minus the strongest control with either partner "
            f"({', '.join(effect.controls)}), mean over {effect.n_pairs} pairs: "
            f"{num(effect.value)}{interval}")


@dataclass(frozen=True)
class Ceiling:
    """The alignment of models that differ only by training seed: the noise ceiling."""

    group: str
    pairs: int
    value: float
    low: float
    high: float
    members: tuple[str, ...] = ()
    #: the mean over the pairs on each half-sample (None: the file holds no replicates)
    replicates: np.ndarray | None = None


def group_ceiling(metric: MetricFile, group: str, members: Sequence[str],
                  ci: float = 0.95) -> Ceiling | None:
    """Mean alignment over every pair of ``members`` (seed replicates of ``group``), with its
    half-sample interval and replicates; None with fewer than two members in the file."""
    from matteralign.metrics.resampling import paired_interval

    present = [m for m in members if m in metric.models]
    pairs = pairs_between(present, present)
    if not pairs:
        return None
    value, stacked = mean_over_pairs(metric, pairs)
    low, high = (paired_interval(value, stacked, ci) if stacked is not None
                 else (math.nan, math.nan))
    return Ceiling(group, len(pairs), value, low, high, tuple(present), stacked)


def mean_over_pairs(metric: MetricFile, pairs: Sequence[tuple[str, str]]
                    ) -> tuple[float, np.ndarray | None]:
    """The mean raw value over ``pairs`` and its half-sample replicates (None without them),
    so that a difference of two such means gets a paired interval."""
    value = float(np.mean([pair_value(metric, a, b).raw for a, b in pairs]))
    reps = [pair_replicates(metric, a, b) for a, b in pairs]
    stacked = np.mean(np.stack(reps), axis=0) if all(r is not None for r in reps) else None
    return value, stacked


def noise_ceiling(metric: MetricFile, ci: float = 0.95) -> Ceiling | None:
    """The ceiling (:func:`group_ceiling`) of the seed-replicate group with the most pairs in
    the file (models.domains.seed_groups: SEED_REPLICATES and the ladder's rungs of one
    size); None without two replicates of one model."""
    from matteralign.models.domains import seed_groups

    best = None
    for group, present in seed_groups(metric.models).items():
        ceiling = group_ceiling(metric, group, present, ci)
        if ceiling is not None and (best is None or ceiling.pairs > best.pairs):
            best = ceiling
    return best


def describe_ceiling(ceiling: Ceiling | None, name: str, trained_mean: float) -> str:
    if ceiling is None:
        return ("noise ceiling: none (no two seed replicates of one model in the grid; add "
                "e.g. ani-1x-m0 and ani-1x-m1 on molecules)")
    share = trained_mean / ceiling.value if ceiling.value else math.nan
    return (f"noise ceiling ({ceiling.group}'s seed replicates, {ceiling.pairs} pairs): {name} "
            f"{num(ceiling.value)} [{num(ceiling.low)}, {num(ceiling.high)}]; the trained "
            f"pairs' mean {num(trained_mean)} is {percent(share)} of it")


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
    text += f", chance {num(v.null_mean)}, p = {num(v.p_value, 2)}"
    if np.isfinite(v.q_value):
        text += f" (BH q = {num(v.q_value, 2)})"
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
        "mean_calibrated_groger": _mean_entry(metric, "calibrated_groger", pairs),
    }


def _mean_entry(metric: MetricFile, name: str, pairs: Sequence[tuple[str, str]]) -> float:
    """Mean over pairs (orientations averaged as in :func:`pair_value`) of one dataset."""
    if name not in metric.extra or not pairs:
        return math.nan
    values = [np.mean([_entry(metric, name, r, c) for r, c in _cells(metric, a, b)])
              for a, b in pairs]
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def describe_stats(stats: Mapping[str, Any], what: str) -> str:
    name = NAMES.get(stats["metric"], stats["metric"])
    if not stats["n_pairs"]:
        return f"{name}, {what}: no pairs"
    return (f"{name}, {what} ({stats['n_pairs']} pairs): mean {num(stats['mean_raw'])}, "
            f"chance {num(stats['mean_null'])}, calibrated {num(stats['mean_calibrated'])} "
            f"(range {num(stats['min_calibrated'])} to {num(stats['max_calibrated'])}; "
            f"Gröger et al.'s calibrated {num(stats.get('mean_calibrated_groger', math.nan))}"
            f"), {percent(stats['share_above_chance'])} above chance")


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
