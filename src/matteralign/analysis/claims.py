"""The paper's claims, one function each: a :class:`Claim` with the paper's statement, the
rule that turns the numbers into a verdict, and one :class:`Test` per dataset (or sub-test).

Controls (random-init runs, non-neural baselines) never enter a verdict; their numbers are
shown beside the trained models'. Nothing is recomputed from embeddings: only means, ranks and
ratios of the values in the study's files, so every number can be traced to a file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from matteralign.analysis.evidence import (
    AGREES,
    DISAGREES,
    INCONCLUSIVE,
    NAMES,
    UNTESTABLE,
    Claim,
    DatasetResults,
    Test,
    combine,
    describe_pair,
    describe_stats,
    figure_path,
    has_null,
    num,
    or_nan,
    pair_stats,
    pair_value,
    pairs_between,
    percent,
)
from matteralign.io import MetricFile

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
ALPHA = 0.05

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


def cross_modality(data: Sequence[DatasetResults]) -> Claim:
    claim = Claim(
        "cross_modality", "1. Do models of different modalities align on small molecules?",
        "Models that read different inputs of the same molecules (3D structures, SMILES "
        "strings, text) learn aligned representations: their nearest-neighbour structure "
        "agrees far beyond chance.",
        "On each molecule dataset, over every pair of a trained 3D-structure model with a "
        "trained SMILES or text model, the local metric (CKNNA, else mutual k-NN): agrees if "
        f"at least {MAJORITY:.0%} of the pairs are above chance (beyond the permutation null's "
        "95th percentile in both orientations) and their mean calibrated alignment is > 0; "
        "disagrees if fewer are above chance. Controls (baselines, random-init) are shown, "
        "not counted.")
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
        by_kind = {kind: pair_stats(metric, pairs_between(structure, [m for m in strings
                                                                if modality[m] == kind]))
                   for kind in ("smiles", "text")}
        above, mean_cal = stats["share_above_chance"], stats["mean_calibrated"]
        if above >= MAJORITY and mean_cal > 0:
            verdict = AGREES
        elif above >= MAJORITY:
            verdict = INCONCLUSIVE
        else:
            verdict = DISAGREES
        reason = (f"{percent(above)} of the {len(pairs)} 3D × SMILES/text pairs are above "
                  f"chance; mean calibrated {NAMES[metric.metric]} {num(mean_cal)}")
        measured = [describe_stats(stats, "3D × SMILES/text, trained")]
        measured += [describe_stats(s, f"3D × {kind}") for kind, s in by_kind.items()
                     if s["n_pairs"]]
        measured += [describe_pair(metric, a, b, d.name) for a, b in pairs]
        controls = [m for m in metric.models if control[m]]
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
                                 "controls": pair_stats(metric, control_pairs)},
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
    """probes.h5: each model's cross-validated R² for every property."""
    table = d.tables.get("probes")
    if table is None or "r2" not in table:
        return []
    r2 = np.asarray(table["r2"], dtype=np.float64)
    return [f"probe R² of {m} (probes.h5): " + ", ".join(
        f"{p} {num(float(r2[i, j]), 2)}" for j, p in enumerate(table["properties"]))
        for i, m in enumerate(table["models"])]


def convergence_claim(data: Sequence[DatasetResults]) -> Claim:
    claim = Claim(
        "convergence", "2. Do interatomic potentials converge as their energy error falls?",
        "The more accurate an interatomic potential (lower energy error), the more similar its "
        "representation to the other accurate models': alignment to the best model rises as "
        "the error falls.",
        "On each dataset with reference energies and at least 3 trained models predicting "
        "energy: Spearman ρ between energy MAE and CKNNA to the reference model (analysis."
        "reference, else the lowest MAE), with a bootstrap 95% interval over models: agrees if "
        "ρ < 0 and the interval excludes 0, disagrees if ρ > 0 and the interval excludes 0, "
        "inconclusive otherwise. Controls are excluded from ρ.")
    for d in data:
        table, why = _convergence_ready(d)
        figures = [figure_path(d.name, "convergence")]
        if table is None:
            claim.tests.append(Test(d.name, UNTESTABLE, why, figures=figures))
            continue
        attrs = table["attrs"]
        rho = float(attrs.get("spearman_reference", math.nan))
        low = float(attrs.get("spearman_reference_ci_low", math.nan))
        high = float(attrs.get("spearman_reference_ci_high", math.nan))
        sign = -1.0 if str(attrs.get("metric", "cknna")) != "information_imbalance" else 1.0
        if not np.isfinite(rho):
            claim.tests.append(Test(d.name, UNTESTABLE, "ρ(energy MAE, CKNNA to the reference) "
                                    "needs 3 energy models besides the reference "
                                    f"{attrs.get('reference', '')}; {d.name} has "
                                    f"{int(attrs.get('n_models', 0)) - 1}", figures=figures))
            continue
        if np.isfinite(low) and sign * high > 0 and sign * low > 0:
            verdict = AGREES
        elif np.isfinite(low) and sign * high < 0 and sign * low < 0:
            verdict = DISAGREES
        else:
            verdict = INCONCLUSIVE
        reference = attrs.get("reference", "")
        reason = (f"ρ(energy MAE, CKNNA to {reference}) = {num(rho, 2)} "
                  f"[{num(low, 2)}, {num(high, 2)}] over {int(attrs.get('n_models', 0)) - 1} "
                  "models")
        regimes = _regime_of(d)
        control = dict(zip(table["models"], table.get("control", [""] * len(table["models"])),
                           strict=False))
        rows = []
        for i, model in enumerate(table["models"]):
            if not np.isfinite(table["mae"][i]) and not control.get(model):
                continue
            rows.append(f"{model}{' (' + control[model] + ')' if control.get(model) else ''}"
                        f" [{regimes.get(model, '?')}]: energy MAE {num(table['mae'][i])} eV, "
                        f"CKNNA to reference {num(table['alignment_to_reference'][i])}, mean "
                        f"CKNNA to the others {num(table['mean_alignment'][i])}")
        measured = [reason, f"ρ(energy MAE, mean CKNNA) = "
                    f"{num(float(attrs.get('spearman_mean', math.nan)), 2)} "
                    f"[{num(float(attrs.get('spearman_mean_ci_low', math.nan)), 2)}, "
                    f"{num(float(attrs.get('spearman_mean_ci_high', math.nan)), 2)}]"]
        measured += [r for r in rows if "(" not in r.split(" [")[0]]
        controls = [r for r in rows if "(" in r.split(" [")[0]]
        measured += _energy_lines(d)
        if attrs.get("note"):
            measured.append(f"note: {attrs['note']}")
        ood = sum(1 for m in table["models"] if regimes.get(m) == "OOD"
                  and np.isfinite(table["mae"][table["models"].index(m)]))
        if ood:
            measured.append(f"{ood} of the energy models are out of distribution on {d.name} "
                            "(trained on other kinds of matter); the paper's trend is for "
                            "potentials on their own domain")
        claim.tests.append(Test(d.name, verdict, reason, measured, controls,
                                {"reference": reference, "spearman_reference": [rho, low, high],
                                 "n_models": int(attrs.get("n_models", 0))}, figures))
    claim.notes.append("The paper ranks tens of potentials (MACE, UMA, Orb, eSEN, ...); with "
                       "the handful that ship with weights here, a bootstrap interval over "
                       "models is wide and an inconclusive verdict is the expected outcome.")
    return claim


def local_optimum_claim(data: Sequence[DatasetResults]) -> Claim:
    claim = Claim(
        "local_optimum", "3. Do some accurate models sit in a local optimum?",
        "Some accurate potentials are nonetheless weakly aligned with the other accurate "
        "models (the paper: MACE-OFF and Orb v3 conservative against UMA): accuracy can be "
        "reached by a different representation.",
        "Local optimum = among the third of eligible models (trained, with energy MAE, not the "
        "reference) with the lowest MAE and among the third least aligned (CKNNA) to the "
        "reference (convergence.h5's local_optimum). Needs at least 3 eligible models. Agrees "
        "if a flagged model's CKNNA to the reference, upper end of its bootstrap interval, "
        "lies below the mean CKNNA to the reference of the other eligible models; inconclusive "
        "if flagged but the interval reaches that mean; disagrees if no model is flagged.")
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
            claim.tests.append(Test(d.name, DISAGREES, "no accurate model is among the least "
                                    f"aligned to {reference}", measured,
                                    numbers={"flagged": []}, figures=figures))
            continue
        separated = []
        for model in flagged:
            others = np.mean([align[m] for m in eligible if m != model])
            upper = pair_value(cknna, model, reference).ci_high if cknna else math.nan
            if cknna:
                measured.append(describe_pair(cknna, model, reference, d.name))
            measured.append(f"{model}: mean CKNNA of the other eligible models to {reference}"
                            f" {num(float(others))}")
            if np.isfinite(upper) and upper < others:
                separated.append(model)
        verdict = AGREES if separated else INCONCLUSIVE
        reason = (f"local optimum: {', '.join(flagged)}" + (
            "; interval below the others' alignment" if separated else
            "; but its interval (or lack of one) reaches the others' alignment"))
        claim.tests.append(Test(d.name, verdict, reason, measured,
                                numbers={"flagged": flagged, "separated": separated,
                                         "reference": reference}, figures=figures))
    present = sorted({m for d in data for m in d.models()
                      if m.startswith(PAPER_LOCAL_OPTIMUM + (PAPER_REFERENCE,))})
    claim.notes.append("The paper's models (MACE-OFF23, Orb v3 conservative, UMA) are "
                       + (f"present as {present}" if present else "not in this grid") +
                       "; the rule is applied to the models that are.")
    return claim


def _mann_whitney(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy.stats import mannwhitneyu

    if len(x) < 1 or len(y) < 1:
        return math.nan
    return float(mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue)


def regimes_claim(data: Sequence[DatasetResults]) -> Claim:
    claim = Claim(
        "regimes", "4. In distribution vs out of distribution",
        "In distribution (ID) a model's representation is governed by its training data; out "
        "of distribution (OOD, e.g. a crystal-trained potential on molecules) representations "
        "collapse onto low-information, architecture-specific manifolds: lower intrinsic "
        "dimension and a changed information-imbalance pattern.",
        "On each dataset, the TwoNN intrinsic dimensions of the trained ID models against the "
        "trained OOD models (text models left out: claim 5 treats them), two-sided exact "
        f"Mann-Whitney test over models: agrees if the OOD models' IDs are lower with p < "
        f"{ALPHA}, disagrees if higher with p < {ALPHA}, inconclusive otherwise. The "
        "information-imbalance pattern by pair type (regimes.h5) is shown, not scored.")
    for d in data:
        table = d.tables.get("regimes")
        figures = [figure_path(d.name, "intrinsic_dim_regimes"), figure_path(d.name, "ii_plane")]
        if table is None:
            claim.tests.append(Test(d.name, UNTESTABLE, "no regimes.h5 (it needs cknna, "
                                    "intrinsic_dim and information_imbalance among "
                                    "metrics.names)"))
            continue
        modality = d.modality()
        groups: dict[str, dict[str, float]] = {"ID": {}, "OOD": {}, "control": {}}
        for model, group, dim in zip(table["models"], table["regime"], table["intrinsic_dim"],
                                     strict=True):
            if modality.get(model) != "text" or group == "control":
                groups.setdefault(group, {})[model] = float(dim)
        ids, oods = list(groups["ID"].values()), list(groups["OOD"].values())
        listing = [f"{g}: " + (", ".join(f"{m} {num(v)}" for m, v in groups[g].items())
                               or "none") for g in ("ID", "OOD")]
        summary = json.loads(table["attrs"].get("summary", "{}") or "{}")
        pairs = json.loads(table["attrs"].get("pairs", "{}") or "{}")
        pattern = [f"{t} pairs ({s.get('n_pairs', 0)}): mean Δ "
                   f"{num(or_nan(s.get('mean_information_imbalance')))}, mean calibrated "
                   f"CKNNA {num(or_nan(s.get('mean_calibrated_alignment')))}"
                   for t, s in pairs.items() if t != "control"]
        if not ids or not oods:
            claim.tests.append(Test(d.name, UNTESTABLE, "needs trained models both in and out "
                                    "of distribution (text models aside): " + "; ".join(listing),
                                    pattern, figures=figures))
            continue
        diff = float(np.mean(ids) - np.mean(oods))
        p = _mann_whitney(ids, oods)
        if p < ALPHA:
            verdict = AGREES if diff > 0 else DISAGREES
        else:
            verdict = INCONCLUSIVE
        reason = (f"mean ID {num(float(np.mean(ids)))} in distribution vs "
                  f"{num(float(np.mean(oods)))} out ({len(ids)} vs {len(oods)} models, "
                  f"Mann-Whitney p = {num(p, 2)})")
        control = groups.get("control", {})
        controls = ["controls: " + ", ".join(f"{m} {num(v)}" for m, v in control.items())] \
            if control else []
        claim.tests.append(Test(d.name, verdict, reason, listing + pattern, controls,
                                {"id": groups["ID"], "ood": groups["OOD"], "p_value": p,
                                 "summary": summary, "pairs": pairs},
                                figures + d.map_figures))
    claim.notes.append("Regimes come from matteralign.models.domains (overridable with "
                       "analysis.domains). Per-model interval bounds are in regimes.h5; the "
                       "test is across models, so with few models per group p cannot fall "
                       "below 0.05 (e.g. 1 vs 3 models) and the verdict is inconclusive.")
    return claim


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
        others = {m: v for m, v in values.items() if not control[m] and modality[m] != "text"}
        texts = {m: v for m, v in values.items() if not control[m] and modality[m] == "text"}
        measured = [", ".join(_dim_line(m, values, ci) for m in others)]
        controls = [", ".join(_dim_line(m, values, ci) for m in values if control[m])] \
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
        f"{MIN_PROBE_R2:g}, source B ≠ A), retention = R²(A's probe on B mapped into A) / "
        f"R²(A's own probe): agrees if the median retention ≥ {MIN_TRANSFER_RETENTION:g}, "
        "disagrees if below. Chance: a map from an unrelated space gives R² ≤ 0 on held-out "
        "structures. transfer.h5 holds one split, so no interval is given.")
    for d in data:
        table = d.tables.get("transfer")
        figures = [figure_path(d.name, "probe_transfer"), figure_path(d.name, "probes")]
        if table is None:
            claim.tests.append(Test(d.name, UNTESTABLE, "no transfer.h5", figures=figures))
            continue
        models = list(table["models"])
        r2 = np.asarray(table["r2"], dtype=np.float64)
        direct = np.asarray(table.get("r2_direct", np.diag(r2)), dtype=np.float64)
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
        median = float(np.median(kept))
        transferred = [float(r2[a, b]) for a in owners for b in trained if a != b]
        verdict = AGREES if median >= MIN_TRANSFER_RETENTION else DISAGREES
        reason = (f"median retention {num(median, 2)} over {len(kept)} ordered pairs "
                  f"(transferred R² {num(min(transferred), 2)} to "
                  f"{num(max(transferred), 2)}; chance ≤ 0)")
        measured += [f"{models[a]} ← {models[b]}: R² {num(float(r2[a, b]), 2)} of own "
                     f"{num(float(direct[a]), 2)}" for a in owners for b in trained if a != b]
        measured += _probe_lines(d)
        control_idx = [i for i, m in enumerate(models) if control.get(m)]
        controls = []
        from_controls = _retention(r2, direct, owners, control_idx)
        if from_controls:
            controls.append(f"from controls ({', '.join(models[i] for i in control_idx)}): "
                            f"median retention {num(float(np.median(from_controls)), 2)}")
        claim.tests.append(Test(d.name, verdict, reason, measured, controls,
                                {"property": prop, "median_retention": median,
                                 "n_pairs": len(kept)}, figures))
    splits = sorted({f"{d.name}: {d.tables['transfer']['attrs'].get('n_train', '?')} train / "
                     f"{d.tables['transfer']['attrs'].get('n_test', '?')} test structures"
                     for d in data if "transfer" in d.tables})
    if splits:
        claim.notes.append("One seeded split per dataset (" + "; ".join(splits) + "), ridge "
                           "probes and ridge maps; the paper's probes and models differ, so "
                           "the retention threshold is this study's, not the paper's.")
    return claim


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
        "disagrees otherwise. Needs the permutation null (metrics.permutations > 0).")
    for d in data:
        trained = d.trained()
        pairs = pairs_between(trained, trained)
        figures = [figure_path(d.name, m) for m in ("cka", "mutual_knn", "cknna") if m in d.metrics]
        table_lines = [describe_stats(pair_stats(metric, pairs), "trained pairs")
                       for name, metric in d.metrics.items() if metric.matrix is not None
                       and has_null(metric)]
        cka = d.metrics.get("cka")
        if cka is None:
            claim.tests.append(Test(f"{d.name}: global", UNTESTABLE, "metrics.names lacks cka"))
        elif not has_null(cka):
            claim.tests.append(Test(f"{d.name}: global", UNTESTABLE, _no_null_reason(cka)))
        elif not pairs:
            claim.tests.append(Test(f"{d.name}: global", UNTESTABLE, "fewer than 2 trained "
                                    "models"))
        else:
            s = pair_stats(cka, pairs)
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
        elif pairs:
            s = pair_stats(local, pairs)
            claim.tests.append(Test(
                f"{d.name}: local", AGREES if s["share_above_chance"] >= MAJORITY else DISAGREES,
                f"{percent(s['share_above_chance'])} of {s['n_pairs']} pairs above chance in "
                f"{NAMES[local.metric]} (mean calibrated {num(s['mean_calibrated'])})",
                numbers={local.metric: s}, figures=figures))
    claim.notes.append("Every pair's raw value, bootstrap interval, chance level and "
                       "calibrated value are in the tables of claim 1 and in each metric file "
                       "(datasets ci_low, ci_high, null_mean, null_p95, calibrated, "
                       "above_chance).")
    return claim
