"""The paper's claims, one function each: a :class:`Claim` with the paper's statement, the
rule that turns the numbers into a verdict, and one :class:`Test` per dataset (or sub-test).

A verdict rests on an effect over the controls (random-init runs, non-neural baselines) where
the claim is about alignment, on exact tests over model families where it is about models,
and says "cannot be tested here" where the smallest attainable p-value is above the level.
Nothing is recomputed from embeddings: only means, ranks and differences of the values in the
study's files (their half-sample replicates included), so every number can be traced to a file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from matteralign.analysis.evidence import (
    AGREES,
    ALPHA,
    DISAGREES,
    INCONCLUSIVE,
    NAMES,
    PRESS_SOURCE,
    UNTESTABLE,
    Claim,
    DatasetResults,
    Test,
    combine,
    describe_ceiling,
    describe_effect,
    describe_pair,
    describe_stats,
    effect_over_controls,
    figure_path,
    has_null,
    noise_ceiling,
    num,
    or_nan,
    pair_replicates,
    pair_stats,
    pair_value,
    pairs_between,
    percent,
)
from matteralign.analysis.held_out_claims import held_out_tests
from matteralign.analysis.ladder_claims import is_rung, ladder_tests
from matteralign.analysis.modeltests import (
    describe,
    group_difference_test,
    rank_correlation_test,
)
from matteralign.io import MetricFile
from matteralign.metrics.resampling import paired_interval

#: smallest own-probe R² for a probe to count as having something to transfer
MIN_PROBE_R2 = 0.2
#: transfer holds when the median transferred R² keeps at least this share of the own R²
MIN_TRANSFER_RETENTION = 0.5
#: "similar" intrinsic dimensions: every trained model within this factor of their median
ID_SPREAD_FACTOR = 2.0
#: a share of model pairs above chance that counts as "most pairs"
MAJORITY = 0.5
#: calibration "removes most of" a score when the calibrated mean keeps less than this share
RETAINED_SHARE = 0.5

LOCAL_METRICS = ("mutual_knn", "cknna")
#: models the paper names in its local-optimum finding
PAPER_LOCAL_OPTIMUM = ("mace-off23", "orb-v3-conservative")
PAPER_REFERENCE = "uma"
LLM_MODELS = ("qwen2.5-0.5b-prompted", "causal-lm-prompted")


def _no_null_reason(metric: MetricFile) -> str:
    return (f"{metric.metric}.h5 has no permutation null (metrics.permutations = "
            f"{metric.attrs.get('permutations', 0)}): without a chance level an alignment "
            "value cannot be called above chance; set metrics.permutations (and "
            "metrics.bootstrap) > 0")


def _min_p_reason(metric: MetricFile) -> str | None:
    """Why no entry of this file can be called above chance at ALPHA, or None if one can."""
    p = int(metric.attrs.get("permutations", 0) or 0)
    if 1.0 / (1.0 + p) > ALPHA:
        return (f"{metric.metric}.h5 has P = {p} permutations: the smallest p-value, "
                f"1/(P+1) = {1 / (1 + p):.3g}, cannot reach {ALPHA}; set metrics.permutations "
                f">= {math.ceil(1 / ALPHA) - 1}")
    return None


def _controls(d: DatasetResults, metric: MetricFile) -> list[str]:
    control = d.control()
    return [m for m in metric.models if control.get(m)]


def _ceiling_line(metric: MetricFile, pairs: Sequence[tuple[str, str]]) -> tuple[
        list[str], dict[str, Any]]:
    ceiling = noise_ceiling(metric)
    mean = float(np.mean([pair_value(metric, a, b).raw for a, b in pairs])) if pairs \
        else math.nan
    numbers = ({} if ceiling is None else
               {"noise_ceiling": {"group": ceiling.group, "pairs": ceiling.pairs,
                                  "value": ceiling.value, "ci": [ceiling.low, ceiling.high],
                                  "trained_share": mean / ceiling.value
                                  if ceiling.value else math.nan}})
    return [describe_ceiling(ceiling, NAMES[metric.metric], mean)], numbers


def cross_modality(data: Sequence[DatasetResults]) -> Claim:
    claim = Claim(
        "cross_modality", "1. Do models of different modalities align on small molecules?",
        "Models that read different inputs of the same molecules (3D structures, SMILES "
        "strings, text) learn aligned representations: their nearest-neighbour structure "
        "agrees far beyond chance.",
        "On each molecule dataset, over every pair of a trained 3D-structure model with a "
        "trained SMILES or text model, the local metric (CKNNA, else mutual k-NN). Effect over "
        "controls = the pair's alignment minus the best alignment a control (non-neural "
        "baseline or random-init model) reaches with either partner, averaged over pairs, with "
        "a paired half-sample 95% interval. Agrees if the effect's interval lies above 0 and at "
        f"least {MAJORITY:.0%} of the pairs are above chance (Benjamini-Hochberg q ≤ {ALPHA} "
        "over the dataset's pairs × metrics); disagrees if fewer pairs are above chance or the "
        "effect's interval lies below 0; inconclusive otherwise. Untestable without a control, "
        f"without half-sample replicates, or when P cannot give p ≤ {ALPHA}.")
    molecules = [d for d in data if d.kind == "molecules"]
    if not molecules:
        claim.tests.append(Test("all datasets", UNTESTABLE, "no molecule dataset in the study"))
    for d in molecules:
        metric = next((d.metrics[m] for m in ("cknna", "mutual_knn") if m in d.metrics), None)
        figures = [figure_path(d.name, m) for m in ("cknna", "mutual_knn") if m in d.metrics]
        if metric is None:
            claim.tests.append(Test(d.name, UNTESTABLE, "neither cknna.h5 nor mutual_knn.h5 "
                                    "(metrics.names lists neither)"))
            continue
        modality, control = d.modality(), d.control()
        structure = [m for m in metric.models if modality.get(m) == "atoms" and not control[m]]
        strings = [m for m in metric.models
                   if modality.get(m) in ("smiles", "text") and not control[m]]
        if not structure or not strings:
            claim.tests.append(Test(d.name, UNTESTABLE, "the grid needs a trained 3D-structure "
                                    "model and a trained SMILES or text model; it has "
                                    f"3D {structure or 'none'}, SMILES/text {strings or 'none'}",
                                    figures=figures))
            continue
        if not has_null(metric):
            claim.tests.append(Test(d.name, UNTESTABLE, _no_null_reason(metric),
                                    figures=figures))
            continue
        pairs = pairs_between(structure, strings)
        stats = pair_stats(metric, pairs)
        controls = _controls(d, metric)
        effect = effect_over_controls(metric, pairs, controls, modality)
        by_kind = {kind: pair_stats(metric, pairs_between(structure, [m for m in strings
                                                                if modality[m] == kind]))
                   for kind in ("smiles", "text")}
        above, mean_cal = stats["share_above_chance"], stats["mean_calibrated"]
        floor = _min_p_reason(metric)
        if floor:
            verdict, why = UNTESTABLE, floor
        elif not controls:
            verdict, why = UNTESTABLE, ("no control in the grid (add `composition`, "
                                        "`morgan-fp` or a random-init model): without one, "
                                        "alignment cannot be told from shared size and "
                                        "composition")
        elif not np.isfinite(effect.low):
            verdict, why = UNTESTABLE, (f"{metric.metric}.h5 holds no half-sample replicates "
                                        "(metrics.bootstrap = 0, or a file from an older "
                                        "version): the effect over controls has no interval")
        elif above < MAJORITY or effect.below:
            verdict, why = DISAGREES, ""
        elif effect.above:
            verdict, why = AGREES, ""
        else:
            verdict, why = INCONCLUSIVE, ""
        reason = why or (
            f"{percent(above)} of the {len(pairs)} 3D × SMILES/text pairs are above chance; "
            f"effect over the strongest control {num(effect.value)} "
            f"[{num(effect.low)}, {num(effect.high)}]; mean calibrated "
            f"{NAMES[metric.metric]} {num(mean_cal)}")
        measured = [describe_effect(effect, NAMES[metric.metric]),
                    describe_stats(stats, "3D × SMILES/text, trained")]
        measured += [describe_stats(s, f"3D × {kind}") for kind, s in by_kind.items()
                     if s["n_pairs"]]
        ceiling_lines, ceiling_numbers = _ceiling_line(metric, pairs)
        measured += ceiling_lines
        measured += [describe_pair(metric, a, b, d.name) for a, b in pairs]
        measured += [f"effect over controls, {pair}: {num(v)} [{num(lo)}, {num(hi)}]"
                     for pair, (v, lo, hi) in effect.per_pair.items()]
        control_pairs = [(a, b) for a, b in pairs_between(metric.models, metric.models)
                         if (control[a] or control[b])
                         and {modality.get(a), modality.get(b)} & {"atoms"}
                         and {modality.get(a), modality.get(b)} & {"smiles", "text"}]
        what = f"3D × SMILES/text pairs with a control ({', '.join(controls)})"
        control_lines = ([describe_stats(pair_stats(metric, control_pairs), what)]
                         if control_pairs else [])
        claim.tests.append(Test(d.name, verdict, reason, measured, control_lines,
                                {"metric": metric.metric, "trained": stats, **{
                                    f"3d_x_{k}": s for k, s in by_kind.items()},
                                 "controls": pair_stats(metric, control_pairs),
                                 "effect_over_controls": {
                                     "value": effect.value, "ci": [effect.low, effect.high],
                                     "controls": list(effect.controls),
                                     "n_pairs": effect.n_pairs},
                                 "min_p": 1.0 / (1.0 + int(metric.attrs.get("permutations",
                                                                            0) or 0)),
                                 **ceiling_numbers},
                                figures + [figure_path(d.name, "tree")]))
    models = sorted({m for d in molecules for m in d.models()})
    claim.notes.append(f"Models here: {', '.join(models) or 'none'}. The paper compares many "
                       "more (e.g. MACE, UMA, Orb, MoLFormer, LLMs) at N = 50,000; this grid's "
                       "3D models are mostly crystal-trained potentials.")
    return claim


def _convergence_ready(d: DatasetResults) -> tuple[dict[str, Any] | None, str]:
    table = d.tables.get("convergence")
    if table is None:
        return None, ("no convergence.h5 (it needs cknna among metrics.names and the "
                      "performance file)")
    attrs = table["attrs"]
    if attrs.get("performance_measure") != "energy_mae":
        return None, (f"{d.name} has no reference energies, so there is no energy error to "
                      "rank the models by")
    if int(attrs.get("n_models", 0)) < 3:
        return None, (f"only {attrs.get('n_models', 0)} trained model(s) predict energies on "
                      f"{d.name}; a rank correlation needs at least 3")
    return table, ""


def _regime_of(d: DatasetResults) -> dict[str, str]:
    table = d.tables.get("regimes")
    if table is None:
        return {}
    return dict(zip(table["models"], table["regime"], strict=False))


def _energy_lines(d: DatasetResults) -> list[str]:
    """performance.h5: each model's held-out energy error per atom and how many structures."""
    table = d.tables.get("performance")
    if table is None or "energy_mae_per_atom" not in table:
        return []
    cells = [f"{m} {num(float(e), 2)} (n = {int(n)})" for m, e, n in zip(
        table["models"], table["energy_mae_per_atom"], table.get("energy_n", [0] *
                                                                  len(table["models"])),
        strict=True) if np.isfinite(e)]
    return ["held-out energy MAE per atom, eV/atom (performance.h5): " + ", ".join(cells)] \
        if cells else []


def _probe_lines(d: DatasetResults) -> list[str]:
    """probes.h5: each model's cross-validated R² (with its interval) for every property."""
    table = d.tables.get("probes")
    if table is None or "r2" not in table:
        return []
    r2 = np.asarray(table["r2"], dtype=np.float64)
    lo = np.asarray(table.get("r2_lo", np.full_like(r2, np.nan)), dtype=np.float64)
    hi = np.asarray(table.get("r2_hi", np.full_like(r2, np.nan)), dtype=np.float64)

    def cell(i: int, j: int) -> str:
        text = num(float(r2[i, j]), 2)
        if np.isfinite(lo[i, j]):
            text += f" [{num(float(lo[i, j]), 2)}, {num(float(hi[i, j]), 2)}]"
        return text

    return [f"probe R² of {m} (probes.h5): " + ", ".join(
        f"{p} {cell(i, j)}" for j, p in enumerate(table["properties"]))
        for i, m in enumerate(table["models"])]


def _alignment_to(metric: MetricFile | None, models: Sequence[str], reference: str,
                  calibrated: bool) -> dict[str, float]:
    if metric is None or reference not in metric.models:
        return {}
    out = {}
    for m in models:
        if m in metric.models and m != reference:
            v = pair_value(metric, m, reference)
            out[m] = v.calibrated if calibrated else v.raw
    return out


def _energy_models(d: DatasetResults, table: Mapping[str, Any]) -> tuple[list[str], str]:
    """Trained models with an energy error, not the reference nor of the reference's family
    (an ensemble's own members are not independent of it), and the reference."""
    models = list(table["models"])
    reference = str(table["attrs"].get("reference", ""))
    control = dict(zip(models, table.get("control", [""] * len(models)), strict=False))
    family = d.family()
    ref_family = family.get(reference, reference)
    eligible = [m for i, m in enumerate(models) if not control.get(m) and m != reference
                and np.isfinite(table["mae"][i]) and family.get(m, m) != ref_family
                and not is_rung(m)]
    return eligible, reference


def convergence_claim(data: Sequence[DatasetResults]) -> Claim:
    claim = Claim(
        "convergence", "2. Do interatomic potentials converge as their energy error falls?",
        "The more accurate an interatomic potential (lower energy error), the more similar its "
        "representation to the other accurate models': alignment to the best model rises as "
        "the error falls.",
        "On each dataset with reference energies: Spearman ρ between energy MAE and calibrated "
        "CKNNA to the reference model (analysis.reference, else the lowest MAE) over model "
        "families (checkpoints of one family averaged into one point; the reference's family "
        "left out), with the exact permutation p-value over every ordering of the families. "
        f"Agrees if ρ < 0 with p ≤ {ALPHA}, disagrees if ρ > 0 with p ≤ {ALPHA}, inconclusive "
        "otherwise; cannot be tested when the smallest attainable p (2/n! for n families) is "
        f"above {ALPHA}, i.e. with fewer than 5 families. Controls and the ladder's rungs are "
        "excluded. The trained ladder (ladder: in the config) is its own test, under control: "
        "ρ between each rung's held-out test MAE and its calibrated CKNNA to the most "
        "accurate rung of another seed (the ladder's rungs share one seed's initial weights, "
        "it does not), over the rungs of the ladder's seed (each an independent training "
        "run, one unit), with the same exact p-value and verdict rule; the same ρ to the "
        "ladder's own best rung and to ANI-1x is shown, not scored; its seed replicates give "
        "the noise ceiling at each of their sizes.")
    for d in data:
        claim.tests += ladder_tests(d.name, d.metrics.get("cknna"), d.ladder)
        table, why = _convergence_ready(d)
        figures = [figure_path(d.name, "convergence")]
        if table is None:
            claim.tests.append(Test(d.name, UNTESTABLE, why, figures=figures))
            continue
        attrs = table["attrs"]
        eligible, reference = _energy_models(d, table)
        models = list(table["models"])
        mae = {m: float(table["mae"][models.index(m)]) for m in eligible}
        cknna = d.metrics.get("cknna")
        calibrated = _alignment_to(cknna, eligible, reference, calibrated=True)
        raw = _alignment_to(cknna, eligible, reference, calibrated=False)
        if not calibrated:
            calibrated = {m: float(table["alignment_to_reference"][models.index(m)])
                          for m in eligible}
        family = d.family()
        test = rank_correlation_test(mae, calibrated, family)
        raw_test = rank_correlation_test(mae, raw, family) if raw else None
        sign = -1.0 if str(attrs.get("metric", "cknna")) != "information_imbalance" else 1.0
        described = describe(test, f"ρ(energy MAE, calibrated CKNNA to {reference})")
        if test.n_units < 3:
            claim.tests.append(Test(
                d.name, UNTESTABLE, f"ρ(energy MAE, CKNNA to the reference) needs 3 energy "
                f"model families besides the reference {reference}'s; {d.name} has "
                f"{test.n_units} ({', '.join(test.units) or 'none'})", [described],
                figures=figures))
            continue
        if not test.testable(ALPHA):
            claim.tests.append(Test(
                d.name, UNTESTABLE,
                f"{test.n_units} independent model families ({', '.join(test.units)}) give a "
                f"smallest attainable exact p of {num(test.min_p, 2)} > {ALPHA}: no ordering "
                "of these models could be significant; the trained ladder (more families, or "
                "models trained by the study) is what this needs",
                [described], numbers={"reference": reference, "rho": test.statistic,
                                      "p_value": test.p_value, "min_p": test.min_p,
                                      "n_families": test.n_units,
                                      "n_models": test.n_models}, figures=figures))
            continue
        if test.p_value <= ALPHA and sign * test.statistic > 0:
            verdict = AGREES
        elif test.p_value <= ALPHA and sign * test.statistic < 0:
            verdict = DISAGREES
        else:
            verdict = INCONCLUSIVE
        regimes = _regime_of(d)
        measured = [described]
        if raw_test is not None:
            measured.append(describe(raw_test, f"ρ(energy MAE, raw CKNNA to {reference})"))
        measured += [f"{m} [{regimes.get(m, '?')}, family {family.get(m, m)}]: energy MAE "
                     f"{num(mae[m])} eV, CKNNA to {reference} {num(raw.get(m, math.nan))}, "
                     f"calibrated {num(calibrated[m])}" for m in eligible]
        measured += _energy_lines(d)
        if attrs.get("note"):
            measured.append(f"note: {attrs['note']}")
        claim.tests.append(Test(d.name, verdict, described, measured, [],
                                {"reference": reference, "rho": test.statistic,
                                 "p_value": test.p_value, "min_p": test.min_p,
                                 "n_families": test.n_units, "n_models": test.n_models},
                                figures))
    claim.notes.append("The paper ranks tens of potentials (MACE, UMA, Orb, eSEN, ...); with "
                       "the handful of families that ship with weights here, the exact test "
                       "over families usually cannot reach p ≤ 0.05, and the page says so "
                       "rather than reporting an interval over four sibling checkpoints.")
    return claim


def local_optimum_claim(data: Sequence[DatasetResults]) -> Claim:
    claim = Claim(
        "local_optimum", "3. Do some accurate models sit in a local optimum?",
        "Some accurate potentials are nonetheless weakly aligned with the other accurate "
        "models (the paper: MACE-OFF and Orb v3 conservative against UMA): accuracy can be "
        "reached by a different representation.",
        "Candidate = among the third of eligible models (trained, with energy MAE, not the "
        "reference) with the lowest MAE and among the third least aligned (CKNNA) to the "
        "reference (convergence.h5's local_optimum). Needs at least 3 eligible models. For "
        "each candidate, the paired half-sample difference: mean CKNNA to the reference of "
        "the other eligible models (of other families) minus the candidate's. Agrees if its 95% "
        "interval lies above 0 for some candidate; inconclusive otherwise, also when no model "
        "is a candidate (an existential claim is not refuted by its absence in a small grid).")
    for d in data:
        table, why = _convergence_ready(d)
        figures = [figure_path(d.name, "convergence")]
        if table is None:
            claim.tests.append(Test(d.name, UNTESTABLE, why, figures=figures))
            continue
        models = list(table["models"])
        reference = table["attrs"].get("reference", "")
        control = dict(zip(models, table.get("control", [""] * len(models)), strict=False))
        eligible = [m for i, m in enumerate(models) if not control.get(m) and m != reference
                    and np.isfinite(table["mae"][i])]
        if len(eligible) < 3:
            claim.tests.append(Test(d.name, UNTESTABLE, f"{len(eligible)} eligible model(s) "
                                    f"besides the reference {reference}; the thirds need 3",
                                    figures=figures))
            continue
        flagged = [m for i, m in enumerate(models) if bool(table["local_optimum"][i])]
        cknna = d.metrics.get("cknna")
        align = {m: float(table["alignment_to_reference"][models.index(m)]) for m in eligible}
        measured = [f"reference {reference}; eligible: " + ", ".join(
            f"{m} (MAE {num(float(table['mae'][models.index(m)]))} eV, CKNNA "
            f"{num(align[m])})" for m in eligible)]
        if not flagged:
            claim.tests.append(Test(d.name, INCONCLUSIVE, "no accurate model is among the "
                                    f"least aligned to {reference}: none to test, which does "
                                    "not show that none exists", measured,
                                    numbers={"flagged": []}, figures=figures))
            continue
        if cknna is None or reference not in cknna.models:
            claim.tests.append(Test(d.name, UNTESTABLE, "no cknna.h5 with the reference",
                                    measured, figures=figures))
            continue
        family = d.family()
        separated, differences = [], {}
        for model in flagged:
            others = [m for m in eligible if m != model
                      and family.get(m, m) != family.get(model, model)]
            if not others:
                continue
            value = float(np.mean([pair_value(cknna, m, reference).raw for m in others])
                          - pair_value(cknna, model, reference).raw)
            reps_f = pair_replicates(cknna, model, reference)
            reps_o = [pair_replicates(cknna, m, reference) for m in others]
            if reps_f is None or any(r is None for r in reps_o):
                low, high = math.nan, math.nan
            else:
                low, high = paired_interval(value, np.mean(np.stack(reps_o), axis=0) - reps_f)
            differences[model] = [value, low, high]
            measured.append(describe_pair(cknna, model, reference, d.name))
            measured.append(f"{model}: the other eligible families' mean CKNNA to {reference} "
                            f"minus its own = {num(value)} [{num(low)}, {num(high)}] (paired "
                            f"half-samples; others: {', '.join(others)})")
            if np.isfinite(low) and low > 0:
                separated.append(model)
        if not differences:
            claim.tests.append(Test(d.name, UNTESTABLE, "every other eligible model is of the "
                                    "candidates' own family", measured, figures=figures))
            continue
        verdict = AGREES if separated else INCONCLUSIVE
        reason = (f"candidate(s): {', '.join(flagged)}" + (
            "; aligned less than the other accurate models, interval above 0" if separated
            else "; the paired difference's interval reaches 0"))
        claim.tests.append(Test(d.name, verdict, reason, measured,
                                numbers={"flagged": flagged, "separated": separated,
                                         "difference": differences, "reference": reference},
                                figures=figures))
    present = sorted({m for d in data for m in d.models()
                      if m.startswith(PAPER_LOCAL_OPTIMUM + (PAPER_REFERENCE,))})
    claim.notes.append("The paper's models (MACE-OFF23, Orb v3 conservative, UMA) are "
                       + (f"present as {present}" if present else "not in this grid") +
                       "; the rule is applied to the models that are.")
    return claim


def regimes_claim(data: Sequence[DatasetResults]) -> Claim:
    claim = Claim(
        "regimes", "4. In distribution vs out of distribution",
        "In distribution (ID) a model's representation is governed by its training data; out "
        "of distribution (OOD, e.g. a crystal-trained potential on molecules) representations "
        "collapse onto low-information, architecture-specific manifolds: lower intrinsic "
        "dimension and a changed information-imbalance pattern.",
        "On each dataset, the TwoNN intrinsic dimensions of trained 3D-structure models in "
        "distribution against those out of distribution (one modality only, so that the "
        "contrast is not one between input types), over model families (checkpoints of a "
        "family averaged), with the exact two-sided permutation p-value over every split of "
        f"the families: agrees if OOD is lower with p ≤ {ALPHA}, disagrees if higher with "
        f"p ≤ {ALPHA}, inconclusive otherwise; cannot be tested when the smallest attainable p "
        f"(2/C(n, k)) is above {ALPHA}. The information-imbalance pattern by pair type "
        "(regimes.h5) is shown, not scored. Under control (the ladder's held-out design: one "
        "architecture, size and seed trained with and without an element): for each pair of "
        "twins the difference in differences (restricted minus twin, held-out minus held-in "
        "molecules) of the intrinsic dimension (the verdict's quantity; CKNNA to ANI-1x and "
        "Δ(model → ANI-1x) are shown with the same test, not scored); agrees if the exact "
        f"sign-flip p over the pairs is ≤ {ALPHA} and the mean's paired 95% interval excludes "
        "0, both in the predicted direction (ID lower; CKNNA lower, Δ higher), disagrees if "
        "both in the other; untestable unless the restricted rungs' test error rises on "
        "held-out molecules more than their twins' (the design check).")
    for d in data:
        claim.tests += held_out_tests(d.name, d.held_out, d.ladder is not None
                                      and _held_out_expected(d))
        table = d.tables.get("regimes")
        figures = [figure_path(d.name, "intrinsic_dim_regimes"), figure_path(d.name, "ii_plane")]
        if table is None:
            claim.tests.append(Test(d.name, UNTESTABLE, "no regimes.h5 (it needs cknna, "
                                    "intrinsic_dim and information_imbalance among "
                                    "metrics.names)"))
            continue
        modality = d.modality()
        groups: dict[str, dict[str, float]] = {"ID": {}, "OOD": {}, "control": {}}
        other_modality: dict[str, str] = {}
        for model, group, dim in zip(table["models"], table["regime"], table["intrinsic_dim"],
                                     strict=True):
            if is_rung(model):  # the ladder's rungs are read by the held-out design
                continue
            if group == "control":
                groups["control"][model] = float(dim)
            elif modality.get(model) == "atoms":
                groups.setdefault(group, {})[model] = float(dim)
            else:
                other_modality[model] = f"{group}, {modality.get(model, '?')}"
        listing = [f"{g} (3D models): " + (", ".join(f"{m} {num(v)}"
                                                     for m, v in groups[g].items()) or "none")
                   for g in ("ID", "OOD")]
        if other_modality:
            listing.append("left out (other input types): " + ", ".join(
                f"{m} ({g})" for m, g in other_modality.items()))
        summary = json.loads(table["attrs"].get("summary", "{}") or "{}")
        pairs = json.loads(table["attrs"].get("pairs", "{}") or "{}")
        pattern = [f"{t} pairs ({s.get('n_pairs', 0)}): mean Δ "
                   f"{num(or_nan(s.get('mean_information_imbalance')))}, mean calibrated "
                   f"CKNNA {num(or_nan(s.get('mean_calibrated_alignment')))}"
                   for t, s in pairs.items() if t != "control"]
        if not groups["ID"] or not groups["OOD"]:
            claim.tests.append(Test(d.name, UNTESTABLE, "needs trained 3D-structure models "
                                    "both in and out of distribution: " + "; ".join(listing),
                                    pattern, figures=figures))
            continue
        try:
            test = group_difference_test(groups["ID"], groups["OOD"], d.family())
        except ValueError as err:
            claim.tests.append(Test(d.name, UNTESTABLE, str(err), listing + pattern,
                                    figures=figures))
            continue
        described = describe(test, "mean ID in distribution minus out of distribution")
        numbers = {"id": groups["ID"], "ood": groups["OOD"], "difference": test.statistic,
                   "p_value": test.p_value, "min_p": test.min_p, "n_families": test.n_units,
                   "summary": summary, "pairs": pairs}
        control = groups.get("control", {})
        controls = ["controls: " + ", ".join(f"{m} {num(v)}" for m, v in control.items())] \
            if control else []
        if not test.testable(ALPHA):
            claim.tests.append(Test(d.name, UNTESTABLE, f"{test.n_units} model families split "
                                    f"{len(set(d.family().get(m, m) for m in groups['ID']))} "
                                    "ID / "
                                    f"{len(set(d.family().get(m, m) for m in groups['OOD']))} "
                                    f"OOD: the smallest attainable exact p is "
                                    f"{num(test.min_p, 2)} > {ALPHA}",
                                    [described] + listing + pattern, controls, numbers,
                                    figures + d.map_figures))
            continue
        if test.p_value <= ALPHA:
            verdict = AGREES if test.statistic > 0 else DISAGREES
        else:
            verdict = INCONCLUSIVE
        claim.tests.append(Test(d.name, verdict, described, [described] + listing + pattern,
                                controls, numbers, figures + d.map_figures))
    claim.notes.append("Regimes come from matteralign.models.domains (overridable with "
                       "analysis.domains). Only 3D-structure models are compared: across "
                       "input types (SMILES, graphs, crystals) ID and OOD would be confounded "
                       "with modality. The held-out design answers it free of that confound: "
                       "one model on held-in and held-out chemistry (docs/ladder.md).")
    return claim


def _held_out_expected(d: DatasetResults) -> bool:
    """The ladder has rungs trained without an element (the design is asked for)."""
    from matteralign.training.ladder import parse_rung_name

    return any(getattr(parse_rung_name(n), "excluded", "") for n in d.ladder.names)


def _dims(d: DatasetResults) -> tuple[dict[str, float], dict[str, tuple[float, float]]] | None:
    metric = d.metrics.get("intrinsic_dim")
    if metric is None or metric.values is None:
        return None
    values = {m: float(v) for m, v in zip(metric.models, metric.values, strict=True)}
    low = metric.extra.get("ci_low", np.full(len(metric.models), np.nan))
    high = metric.extra.get("ci_high", np.full(len(metric.models), np.nan))
    return values, {m: (float(lo), float(hi)) for m, lo, hi in zip(metric.models, low, high,
                                                                   strict=True)}


def _dim_line(model: str, values: Mapping[str, float],
              ci: Mapping[str, tuple[float, float]]) -> str:
    return f"{model} {num(values[model])} [{num(ci[model][0])}, {num(ci[model][1])}]"


def intrinsic_dim_claim(data: Sequence[DatasetResults]) -> Claim:
    claim = Claim(
        "intrinsic_dim", "5. Are intrinsic dimensions similar across architectures?",
        "The intrinsic dimension of the representations is similar across architectures, and "
        "higher for text language models.",
        f"(a) similar: every trained non-text model's TwoNN ID within a factor "
        f"{ID_SPREAD_FACTOR:g} of their median (agrees) or not (disagrees); needs 2 models. "
        "(b) text higher: each trained text model's ID, lower end of its bootstrap interval, "
        "above that median (agrees); its value below the median (disagrees); in between "
        "(inconclusive); no text model: cannot be tested.")
    for d in data:
        dims = _dims(d)
        figures = [figure_path(d.name, name) for name in ("intrinsic_dim",
                                                          "intrinsic_dim_regimes")]
        if dims is None:
            claim.tests.append(Test(d.name, UNTESTABLE, "no intrinsic_dim.h5 (metrics.names "
                                    "lacks intrinsic_dim)"))
            continue
        values, ci = dims
        modality, control = d.modality(), d.control()
        others = {m: v for m, v in values.items()
                  if not control.get(m) and modality.get(m) != "text"}
        texts = {m: v for m, v in values.items()
                 if not control.get(m) and modality.get(m) == "text"}
        measured = [", ".join(_dim_line(m, values, ci) for m in others)]
        controls = [", ".join(_dim_line(m, values, ci) for m in values if control.get(m))] \
            if any(control.values()) else []
        if len(others) < 2:
            claim.tests.append(Test(f"{d.name}: similar", UNTESTABLE, "fewer than 2 trained "
                                    "non-text models", measured, controls, figures=figures))
        else:
            median = float(np.median(list(others.values())))
            ratio = max(max(others.values()) / median, median / min(others.values()))
            similar = ratio <= ID_SPREAD_FACTOR
            claim.tests.append(Test(
                f"{d.name}: similar", AGREES if similar else DISAGREES,
                f"IDs {num(min(others.values()))} to {num(max(others.values()))}, median "
                f"{num(median)}: the farthest is a factor {num(ratio, 2)} from it",
                measured, controls, {"ids": others, "median": median, "factor": ratio},
                figures))
        if not texts:
            claim.tests.append(Test(f"{d.name}: text higher", UNTESTABLE,
                                    "no trained text model reads this dataset"))
            continue
        if not others:
            claim.tests.append(Test(f"{d.name}: text higher", UNTESTABLE,
                                    "no trained non-text model to compare with"))
            continue
        median = float(np.median(list(others.values())))
        verdicts = []
        for m in texts:
            low = ci[m][0] if np.isfinite(ci[m][0]) else values[m]
            verdicts.append(AGREES if low > median else DISAGREES if values[m] < median
                            else INCONCLUSIVE)
        claim.tests.append(Test(f"{d.name}: text higher", combine(verdicts),
                                "; ".join(f"{_dim_line(m, values, ci)} against the median "
                                          f"{num(median)}"
                                          for m in texts),
                                numbers={"text": texts, "median_others": median},
                                figures=figures))
    texts = sorted({m for d in data for m, mod in d.modality().items() if mod == "text"})
    if texts and not set(texts) & set(LLM_MODELS):
        claim.notes.append(f"The paper's text models are large language models; the text "
                           f"model here ({', '.join(texts)}) is a small sentence encoder, so "
                           "(b) tests the claim only loosely.")
    return claim


def _retention(r2: np.ndarray, direct: np.ndarray, owners: Sequence[int],
               sources: Sequence[int]) -> list[float]:
    """R²(owner's probe on the source mapped into the owner) / R²(owner's own probe)."""
    return [float(r2[a, b] / direct[a]) for a in owners for b in sources
            if a != b and np.isfinite(r2[a, b])]


def transfer_claim(data: Sequence[DatasetResults]) -> Claim:
    claim = Claim(
        "transfer", "6. Do linear probes transfer between latent spaces?",
        "A linear probe of a property trained on one model's latent space keeps working on "
        "another model's embeddings once those are mapped linearly into the first space: the "
        "spaces encode the property in linearly related ways.",
        f"Over ordered pairs of trained models (probe owner A whose own probe has R² ≥ "
        f"{MIN_PROBE_R2:g}, source B ≠ A): the map B → A is fitted blind to the property "
        "(ridge reconstruction of A's embedding, α by cross-validated reconstruction error) "
        "and A's frozen probe is applied to B's mapped embedding, on held-out folds of a "
        "repeated K-fold. Retention = transferred R² / A's own R². Agrees if the median "
        f"retention ≥ {MIN_TRANSFER_RETENTION:g} and, for at least {MAJORITY:.0%} of the "
        "pairs, the lower end of the transferred R²'s interval lies above the best control's "
        "transfer into the same probe; disagrees if the median retention is below "
        f"{MIN_TRANSFER_RETENTION:g}; inconclusive otherwise; cannot be tested without a "
        "control.", source=PRESS_SOURCE)
    for d in data:
        table = d.tables.get("transfer")
        figures = [figure_path(d.name, "probe_transfer"), figure_path(d.name, "probes")]
        if table is None:
            claim.tests.append(Test(d.name, UNTESTABLE, "no transfer.h5", figures=figures))
            continue
        models = list(table["models"])
        r2 = np.asarray(table["r2"], dtype=np.float64)
        direct = np.asarray(table.get("r2_direct", np.diag(r2)), dtype=np.float64)
        low = np.asarray(table.get("r2_lo", np.full_like(r2, np.nan)), dtype=np.float64)
        high = np.asarray(table.get("r2_hi", np.full_like(r2, np.nan)), dtype=np.float64)
        from_controls = np.asarray(table.get("r2_from_controls", np.full(len(models), np.nan)),
                                   dtype=np.float64)
        control = d.control()
        prop = table["attrs"].get("property", "?")
        owners = [i for i, m in enumerate(models)
                  if not control.get(m) and np.isfinite(direct[i]) and direct[i] >= MIN_PROBE_R2]
        trained = [i for i, m in enumerate(models) if not control.get(m)]
        kept = _retention(r2, direct, owners, trained)
        measured = [f"own probe R² ({prop}): " + ", ".join(
            f"{m} {num(float(direct[i]), 2)}" for i, m in enumerate(models))]
        if not kept:
            claim.tests.append(Test(d.name, UNTESTABLE, f"fewer than two trained models have "
                                    f"an own probe of {prop} with R² ≥ {MIN_PROBE_R2:g}",
                                    measured, figures=figures))
            continue
        ordered = [(a, b) for a in owners for b in trained if a != b and np.isfinite(r2[a, b])]
        median = float(np.median(kept))
        beyond = [bool(np.isfinite(low[a, b]) and np.isfinite(from_controls[a])
                       and low[a, b] > from_controls[a]) for a, b in ordered]
        share_beyond = float(np.mean(beyond)) if beyond else math.nan
        has_controls = bool(np.isfinite(from_controls[owners]).any())
        if median < MIN_TRANSFER_RETENTION:
            verdict = DISAGREES
        elif not has_controls:
            verdict = UNTESTABLE
        elif share_beyond >= MAJORITY:
            verdict = AGREES
        else:
            verdict = INCONCLUSIVE
        reason = (f"median retention {num(median, 2)} over {len(kept)} ordered pairs; "
                  f"{percent(share_beyond)} of them transfer beyond the best control's "
                  "transfer into the same probe" if has_controls else
                  f"median retention {num(median, 2)}; no control in transfer.h5 to compare "
                  "with (add `composition`, `morgan-fp` or a random-init model)")
        measured += [f"{models[a]} ← {models[b]}: R² {num(float(r2[a, b]), 2)} "
                     f"[{num(float(low[a, b]), 2)}, {num(float(high[a, b]), 2)}] of own "
                     f"{num(float(direct[a]), 2)}; best control into {models[a]}: "
                     f"{num(float(from_controls[a]), 2)}" for a, b in ordered]
        measured += _probe_lines(d)
        control_idx = [i for i, m in enumerate(models) if control.get(m)]
        controls = []
        from_control_retention = _retention(r2, direct, owners, control_idx)
        if from_control_retention:
            controls.append(f"from controls ({', '.join(models[i] for i in control_idx)}): "
                            "median retention "
                            f"{num(float(np.median(from_control_retention)), 2)}")
        claim.tests.append(Test(d.name, verdict, reason, measured, controls,
                                {"property": prop, "median_retention": median,
                                 "share_beyond_controls": share_beyond,
                                 "n_pairs": len(kept)}, figures))
    claim.notes.append("Probe transfer is not a question of arXiv 2512.03750 but of a "
                       "popular-press account of this line of work; the retention threshold "
                       "is this study's. Linear probes and a linear map: a high transfer says "
                       "A's probe direction is linearly available in B's space (docs/"
                       "metrics.md, probe transfer).")
    return claim


def _within(metric: MetricFile, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The pairs whose models are both in this metric file."""
    return [(a, b) for a, b in pairs if a in metric.models and b in metric.models]


def _width_lines(d: DatasetResults, pairs: Sequence[tuple[str, str]]
                 ) -> tuple[list[str], dict[str, Any]]:
    """Raw alignment and its chance level against embedding width (Gröger et al.: chance
    grows with width): per model the mean over its trained pairs, ρ over model families with
    the exact p. Shown beside the verdicts (how much of a raw number is width), not scored."""
    lines: list[str] = []
    numbers: dict[str, Any] = {}
    for name in ("cka", "cknna"):
        metric = d.metrics.get(name)
        dims = metric.attrs.get("dims") if metric is not None else None
        if metric is None or dims is None or not has_null(metric):
            continue
        width = dict(zip(metric.models, (int(w) for w in dims), strict=True))
        inside = _within(metric, pairs)
        raw: dict[str, float] = {}
        null: dict[str, float] = {}
        for model in sorted({m for pair in inside for m in pair}):
            own = [pair_value(metric, a, b) for a, b in inside if model in (a, b)]
            raw[model] = float(np.nanmean([v.raw for v in own]))
            null[model] = float(np.nanmean([v.null_mean for v in own]))
        tests = {"raw": rank_correlation_test(width, raw, d.family()),
                 "chance": rank_correlation_test(width, null, d.family())}
        lines += [describe(t, f"{NAMES[name]}: ρ(embedding width, mean {what} value over the "
                              "model's trained pairs)") for what, t in tests.items()]
        numbers[name] = {"width": {m: width[m] for m in raw}, "raw": raw, "chance": null,
                         **{f"rho_{k}": t.statistic for k, t in tests.items()},
                         **{f"p_{k}": t.p_value for k, t in tests.items()}}
    return lines, numbers


def calibration_claim(data: Sequence[DatasetResults]) -> Claim:
    claim = Claim(
        "calibration", "Calibration: what survives a permutation null?",
        "Gröger et al. (arXiv 2602.14486): raw similarity scores are inflated by chance (which "
        "grows with width and shrinks with N); after calibrating against a permutation null, "
        "global (CKA-type) convergence largely disappears while local neighbourhood agreement "
        "(mutual k-NN) survives, across modalities. No alignment number without its chance "
        "level and uncertainty.",
        "Over all pairs of trained models of a dataset: (global) CKA agrees with the critique "
        f"if calibration removes most of it (mean calibrated < {RETAINED_SHARE:g} × mean raw) "
        f"or fewer than {MAJORITY:.0%} of pairs are above chance, disagrees otherwise; (local) "
        f"mutual k-NN (else CKNNA) agrees if at least {MAJORITY:.0%} of pairs are above chance, "
        "disagrees otherwise. Needs the permutation null (metrics.permutations > 0).",
        source="Gröger et al., arXiv 2602.14486")
    for d in data:
        trained = d.trained()
        pairs = pairs_between(trained, trained)
        figures = [figure_path(d.name, m) for m in ("cka", "mutual_knn", "cknna") if m in d.metrics]
        table_lines = [describe_stats(pair_stats(metric, _within(metric, pairs)), "trained pairs")
                       for name, metric in d.metrics.items() if metric.matrix is not None
                       and has_null(metric)]
        cka = d.metrics.get("cka")
        if cka is None:
            claim.tests.append(Test(f"{d.name}: global", UNTESTABLE, "metrics.names lacks cka"))
        elif not has_null(cka):
            claim.tests.append(Test(f"{d.name}: global", UNTESTABLE, _no_null_reason(cka)))
        elif _min_p_reason(cka):
            claim.tests.append(Test(f"{d.name}: global", UNTESTABLE, _min_p_reason(cka)))
        elif not pairs:
            claim.tests.append(Test(f"{d.name}: global", UNTESTABLE, "fewer than 2 trained "
                                    "models"))
        else:
            s = pair_stats(cka, _within(cka, pairs))
            kept = s["mean_calibrated"] / s["mean_raw"] if s["mean_raw"] else math.nan
            gone = kept < RETAINED_SHARE or s["share_above_chance"] < MAJORITY
            claim.tests.append(Test(
                f"{d.name}: global", AGREES if gone else DISAGREES,
                f"calibrated CKA keeps {percent(kept)} of the raw mean "
                f"({num(s['mean_calibrated'])} of {num(s['mean_raw'])}); "
                f"{percent(s['share_above_chance'])} of {s['n_pairs']} pairs above chance",
                table_lines, numbers={"cka": s, "retained": kept}, figures=figures))
        local = next((d.metrics[m] for m in LOCAL_METRICS if m in d.metrics), None)
        if local is None:
            claim.tests.append(Test(f"{d.name}: local", UNTESTABLE, "metrics.names lacks "
                                    "mutual_knn and cknna"))
        elif not has_null(local):
            claim.tests.append(Test(f"{d.name}: local", UNTESTABLE, _no_null_reason(local)))
        elif _min_p_reason(local):
            claim.tests.append(Test(f"{d.name}: local", UNTESTABLE, _min_p_reason(local)))
        elif pairs:
            s = pair_stats(local, _within(local, pairs))
            claim.tests.append(Test(
                f"{d.name}: local", AGREES if s["share_above_chance"] >= MAJORITY else DISAGREES,
                f"{percent(s['share_above_chance'])} of {s['n_pairs']} pairs above chance in "
                f"{NAMES[local.metric]} (mean calibrated {num(s['mean_calibrated'])})",
                numbers={local.metric: s}, figures=figures))
        lines, numbers = _width_lines(d, pairs)
        for test in claim.tests:
            if test.label in (f"{d.name}: global", f"{d.name}: local") and lines:
                test.measured = [*test.measured, *lines]
                test.numbers = {**test.numbers, "width": numbers}
    claim.notes.append("Every pair's raw value, bootstrap interval, chance level and "
                       "calibrated value are in the tables of claim 1 and in each metric file "
                       "(datasets ci_low, ci_high, replicates, null_mean, null_p95, p_value, "
                       "q_value, calibrated, calibrated_groger, above_chance). Above chance = "
                       f"Benjamini-Hochberg q ≤ {ALPHA} over the dataset's pairs × metrics, "
                       "with p = (1 + #null as aligned)/(1 + P).")
    return claim
