"""Claim 2 under control: the ladder's rungs (one architecture, one seed, nested training
sets of increasing size) against their own test MAE, and the noise ceiling of its seed
replicates.

Each rung is an independent training run, so each is one unit of the exact rank test. The
reference is the most accurate rung (it is left out of its own test) and, separately, the
independently trained ANI-1x ensemble (same architecture, other data and training).
"""

from __future__ import annotations

from typing import Any

from matteralign.analysis.evidence import (
    AGREES,
    ALPHA,
    DISAGREES,
    INCONCLUSIVE,
    UNTESTABLE,
    Ceiling,
    Test,
    figure_path,
    group_ceiling,
    mean_over_pairs,
    num,
    pair_value,
)
from matteralign.analysis.ladder import Ladder
from matteralign.analysis.modeltests import describe, rank_correlation_test
from matteralign.io import MetricFile
from matteralign.metrics.resampling import paired_interval
from matteralign.training.ladder import parse_rung_name

#: the independently trained model of the same architecture the ladder is also read against
ANI_REFERENCE = "ani-1x"


def is_rung(model: str) -> bool:
    return parse_rung_name(model) is not None


def size_ceilings(metric: MetricFile, ladder: Ladder) -> dict[int, Ceiling]:
    """size -> the noise ceiling of its seed replicates (every pair; see
    :func:`~matteralign.analysis.evidence.group_ceiling`), for sizes with two or more."""
    sizes: dict[int, list[str]] = {}
    for name in ladder.names:
        if not parse_rung_name(name).excluded:  # type: ignore[union-attr]
            sizes.setdefault(int(ladder.value(name, "size")), []).append(name)
    out = {}
    for size, names in sorted(sizes.items()):
        group = parse_rung_name(names[0]).group  # type: ignore[union-attr]
        ceiling = group_ceiling(metric, group, names)
        if ceiling is not None:
            out[size] = ceiling
    return out


def shared_initialisation(metric: MetricFile, ladder: Ladder) -> dict[str, Any] | None:
    """How much of the accuracy ladder's alignment is its common initialisation: between the
    smallest and largest replicated sizes, mean CKNNA of rung pairs with the same seed minus
    that of pairs with different seeds (different data either way), with its paired
    half-sample interval; None without two replicated sizes."""
    by_size: dict[int, dict[int, str]] = {}
    for name in ladder.names:
        rung = parse_rung_name(name)
        if rung is not None and not rung.excluded and name in metric.models:
            by_size.setdefault(rung.size, {})[rung.seed] = name
    sizes = sorted(size for size, seeds in by_size.items() if len(seeds) >= 2)
    if len(sizes) < 2:
        return None
    small, large = by_size[sizes[0]], by_size[sizes[-1]]
    same = [(small[s], large[s]) for s in small if s in large]
    other = [(small[a], large[b]) for a in small for b in large if a != b]
    if not same or not other:
        return None
    (v_same, r_same), (v_other, r_other) = (mean_over_pairs(metric, same),
                                            mean_over_pairs(metric, other))
    diff = v_same - v_other
    low, high = (paired_interval(diff, r_same - r_other) if r_same is not None
                 and r_other is not None else (float("nan"), float("nan")))
    return {"sizes": [sizes[0], sizes[-1]], "same_seed": v_same, "other_seed": v_other,
            "n_same": len(same), "n_other": len(other), "value": diff, "ci": [low, high]}


def references(ladder: Ladder, metric: MetricFile, rungs: list[str], best: str
                ) -> list[tuple[str, str, bool]]:
    """(reference, how it is named, scored) for the ladder's rank tests. The verdict's
    reference is the most accurate rung of *another* seed: the ladder's rungs share their
    initial weights with each other (one seed), not with it, so alignment to it is not
    inflated by a common initialisation. The same-seed best rung and ANI-1x are shown."""
    seed = int(ladder.value(rungs[0], "seed"))
    other = [n for n in ladder.names if n in metric.models and n not in rungs
             and not parse_rung_name(n).excluded  # type: ignore[union-attr]
             and int(ladder.value(n, "seed")) != seed]
    out = []
    if other:
        reference = min(other, key=lambda n: ladder.value(n, "test_mae_ev_per_atom"))
        out.append((reference, "the most accurate rung of another seed", True))
    out.append((best, "its most accurate rung (same seed: shared initial weights)", not other))
    out.append((ANI_REFERENCE, ANI_REFERENCE, False))
    return out


def _verdict(rho: float, p: float) -> str:
    if p <= ALPHA and rho < 0:
        return AGREES
    if p <= ALPHA and rho > 0:
        return DISAGREES
    return INCONCLUSIVE


def ladder_tests(dataset: str, metric: MetricFile | None, ladder: Ladder | None) -> list[Test]:
    """The accuracy ladder's rank tests (to the most accurate rung of another seed, which
    carries the verdict; to its own best rung and to ANI-1x, shown) and the ceiling lines."""
    label = f"{dataset}: trained ladder"
    figures = [figure_path(dataset, "ladder")]
    if ladder is None:
        return []
    if metric is None:
        return [Test(label, UNTESTABLE, "no cknna.h5 (metrics.names lacks cknna)")]
    rungs = [m for m in ladder.accuracy_ladder() if m in metric.models]
    mae = {m: ladder.value(m, "test_mae_ev_per_atom") for m in rungs}
    lines = [f"{m}: {int(ladder.value(m, 'size'))} training molecules, test MAE "
             f"{num(1000 * mae[m])} meV/atom ({num(ladder.value(m, 'test_mae_ev'))} eV), "
             f"{int(ladder.value(m, 'epochs'))} epochs" for m in rungs]
    ceilings = size_ceilings(metric, ladder)
    lines += [f"noise ceiling at {size} molecules ({c.pairs} pairs of seed replicates "
              f"{', '.join(c.members)}): CKNNA {num(c.value)} [{num(c.low)}, {num(c.high)}]"
              for size, c in ceilings.items()]
    numbers: dict[str, Any] = {
        "rungs": {m: {"size": int(ladder.value(m, "size")), "test_mae_ev_per_atom": mae[m]}
                  for m in rungs},
        "noise_ceiling": {str(s): {"models": list(c.members), "pairs": c.pairs,
                                   "value": c.value, "ci": [c.low, c.high]}
                          for s, c in ceilings.items()}}
    shared = shared_initialisation(metric, ladder)
    if shared is not None:
        lines.append(f"common initialisation: CKNNA between {shared['sizes'][0]}- and "
                     f"{shared['sizes'][1]}-molecule rungs of the same seed "
                     f"{num(shared['same_seed'])} ({shared['n_same']} pairs) minus of different "
                     f"seeds {num(shared['other_seed'])} ({shared['n_other']}) = "
                     f"{num(shared['value'])} [{num(shared['ci'][0])}, {num(shared['ci'][1])}] "
                     "(what a shared seed adds to the accuracy ladder's alignment)")
        numbers["shared_initialisation"] = shared
    growing = [s for s, c in ceilings.items() if c.replicates is not None]
    if len(growing) >= 2:
        small, large = ceilings[growing[0]], ceilings[growing[-1]]
        diff = large.value - small.value
        low, high = paired_interval(diff, large.replicates - small.replicates)
        lines.append(f"seed replicates agree more with more data: ceiling at {growing[-1]} "
                     f"minus at {growing[0]} = {num(diff)} [{num(low)}, {num(high)}] (paired "
                     "half-sample 95% interval)")
        numbers["ceiling_growth"] = {"sizes": [growing[0], growing[-1]], "value": diff,
                                     "ci": [low, high]}
    tests = []
    if len(rungs) < 2:
        return [Test(label, UNTESTABLE, f"{len(rungs)} rung(s) of the ladder's seed in "
                     "cknna.h5; the ladder needs at least 4 sizes", lines, figures=figures)]
    best = min(rungs, key=lambda m: mae[m])
    for reference, what, scored in references(ladder, metric, rungs, best):
        what = f"{label} → {what}" + ("" if scored else " (secondary: not in the verdict)")
        if reference not in metric.models:
            tests.append(Test(what, UNTESTABLE, f"{reference} is not in the grid (add it on "
                              f"{dataset})", lines, figures=figures, scored=scored))
            continue
        others = [m for m in rungs if m != reference]
        calibrated = {m: pair_value(metric, m, reference).calibrated for m in others}
        test = rank_correlation_test({m: mae[m] for m in others}, calibrated,
                                     {m: m for m in others})
        described = describe(test, f"ρ(test MAE, calibrated CKNNA to {reference}) over the "
                                   "rungs (each an independent training run)")
        measured = [described] + [f"{m}: calibrated CKNNA to {reference} "
                                  f"{num(calibrated[m])}" for m in others] + lines
        found = {"reference": reference, "rho": test.statistic, "p_value": test.p_value,
                 "min_p": test.min_p, "n_rungs": test.n_units, **numbers}
        if not test.testable(ALPHA):
            why = (f"{test.n_units} rung(s) besides {reference}: a rank test needs 3"
                   if test.n_units < 3 else
                   f"{test.n_units} rungs give a smallest exact p of {num(test.min_p, 2)} > "
                   f"{ALPHA}")
            tests.append(Test(what, UNTESTABLE, f"{why}; add sizes to ladder.sizes (5 rungs "
                              "besides the reference reach p ≤ 0.05)", measured,
                              numbers=found, figures=figures, scored=scored))
            continue
        tests.append(Test(what, _verdict(test.statistic, test.p_value), described, measured,
                          numbers=found, figures=figures, scored=scored))
    return tests
