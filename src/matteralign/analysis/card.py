"""An alignment card: where a new model's embeddings sit against a stored study's zoo.

The new model is compared with every stored model of one dataset by each metric of the study,
with the study's k, preprocessing, half-samples (B) and permutation null (P); the zoo–zoo
numbers, probes, convergence and tree are read from the stored results, not recomputed. The
card is a dict (``card.json``, schema in docs/formats.md) drawn as one PNG and one HTML page.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from matteralign.analysis.calibration import above_chance, calibrated_score
from matteralign.analysis.card_inputs import Zoo, read_new_embedding, read_zoo
from matteralign.analysis.convergence import mean_to_others, symmetrised
from matteralign.analysis.preprocess import preprocess
from matteralign.analysis.study import load_study
from matteralign.analysis.study_inputs import is_random_init
from matteralign.errors import InputError
from matteralign.io import EmbeddingFile, attr_flags
from matteralign.models.domains import control_of
from matteralign.provenance import provenance

CARD_VERSION = 1
#: the metric the summary, the nearest models, the convergence point and the tree use
HEADLINE = "cknna"
#: models listed as nearest
N_NEAREST = 3
#: memory the dense one-against-zoo path may hold before the streamed engine is used instead
DENSE_BUDGET = 4 * 2**30
#: what each interval and null is, for the card's settings
NULL_SENTENCE = ("P null replicates, each shuffling the new model's rows against the fixed zoo "
                 "(the same null as the study's independent shuffles: every metric is "
                 "invariant to permuting both models' rows together)")


def rows_needed(k: int, bootstrap: int, metrics: list[str]) -> tuple[int, str]:
    """The fewest rows the card's metrics take with the study's settings, and why: k + 2
    (at least 4) for k neighbours; with half-samples, twice k + 1 (at least 8), since each
    half-sample holds N // 2 rows and k must stay below that."""
    from matteralign.metrics.spec import SPECS

    uses_k = any(SPECS[m].uses_k for m in metrics)
    if bootstrap > 0:
        if uses_k:
            return max(2 * (k + 1), 8), (f"each of the B={bootstrap} half-samples holds N // 2 "
                                         f"rows, and k={k} neighbours need k + 1 of them")
        return 8, f"each of the B={bootstrap} half-samples holds N // 2 rows, at least 4"
    if uses_k:
        return max(k + 2, 4), f"k={k} neighbours need k + 2 rows"
    return 4, "the metrics need at least 4 rows"


def _progress(items: Iterable[Any], label: str) -> Iterable[Any]:
    from tqdm import tqdm

    items = list(items)
    return tqdm(items, desc=label, file=sys.stderr, leave=False, disable=len(items) < 2)


def compare_to_zoo(new: np.ndarray, zoo: dict[str, np.ndarray], metrics: list[str],
                   settings: dict[str, Any],
                   dense_budget: int = DENSE_BUDGET) -> tuple[dict[str, np.ndarray], str]:
    """Every metric of (new, zoo model) with the study's B and P: the dense path of
    :func:`~matteralign.metrics.against.against` when it fits in ``dense_budget``, else the
    streamed ``pairwise`` over the new model and the zoo (the same numbers, slower)."""
    from matteralign.metrics import pairwise
    from matteralign.metrics.against import against, dense_bytes

    kwargs = {"k": int(settings["k"]), "bootstrap": int(settings["bootstrap"]),
              "permutations": int(settings["permutations"]), "seed": int(settings["seed"])}
    if dense_bytes(len(new), len(zoo)) <= dense_budget:
        values, _ = against(new, zoo, metrics, progress=_progress, **kwargs)
        return values, "dense"
    print(f"card: N = {len(new)} needs {dense_bytes(len(new), len(zoo)) / 2**30:.1f} GiB for "
          "the dense path; using the streamed engine over all models (slower)", file=sys.stderr)
    key = "__new__"
    result = pairwise({key: new, **zoo}, metrics, **kwargs)
    values = {}
    for name, (arr, _) in result.items():
        if name.endswith("/replicates"):  # (B, M, M): the card reports intervals only
            continue
        values[name] = arr[:1] if arr.ndim == 1 else np.stack([arr[0, 1:], arr[1:, 0]])
    return values, "streamed"


def _entry(values: dict[str, np.ndarray], metric: str, row: int, j: int, spec: Any,
           permutations: int) -> dict[str, Any]:
    def get(stat: str) -> float:
        key = f"{metric}/{stat}" if stat else metric
        return float(values[key][row, j]) if key in values else math.nan

    value, null_mean, null_p95 = get(""), get("null_mean"), get("null_p95")
    higher, upper = bool(spec.higher_is_aligned), float(spec.range[1])
    calibrated = (float(calibrated_score(value, null_mean, higher, upper))
                  if permutations else math.nan)
    above = float(above_chance(value, null_p95, higher)) if permutations else math.nan
    return {"value": value, "ci_low": get("ci_low"), "ci_high": get("ci_high"),
            "null_mean": null_mean, "null_p95": null_p95, "p_value": get("p_value"),
            "calibrated": calibrated, "above_chance": bool(above == 1.0)}


def _combined(zoo_matrix: np.ndarray, to_zoo: np.ndarray, from_zoo: np.ndarray,
              diagonal: float) -> np.ndarray:
    """The stored zoo matrix with the new model as the last row (source) and column."""
    m = len(zoo_matrix)
    out = np.empty((m + 1, m + 1))
    out[:m, :m] = zoo_matrix
    out[m, :m], out[:m, m], out[m, m] = to_zoo, from_zoo, diagonal
    return out


def _rank(scores: np.ndarray, index: int, higher_is_better: bool) -> int:
    """1-based rank of ``scores[index]`` (NaN ranks last)."""
    key = np.where(np.isfinite(scores), scores if higher_is_better else -scores, -np.inf)
    return int((key > key[index]).sum()) + 1


def metric_section(metric: str, zoo: Zoo, values: dict[str, np.ndarray],
                   permutations: int) -> dict[str, Any]:
    from matteralign.metrics.spec import SPECS

    spec = SPECS[metric]
    stored = zoo.metric_files[metric]
    models = stored.models
    to_zoo = []
    for j, model in enumerate(models):
        entry = {"model": model, **_entry(values, metric, 0, j, spec, permutations)}
        entry["reverse"] = (None if spec.symmetric
                            else _entry(values, metric, 1, j, spec, permutations))
        to_zoo.append(entry)
    combined = _combined(stored.matrix, values[metric][0], values[metric][1],
                         float(np.diag(stored.matrix).mean()))
    means = mean_to_others(combined)
    higher = bool(spec.higher_is_aligned)
    sym = symmetrised(combined)[-1, :-1]
    order = np.argsort(-sym if higher else sym, kind="stable")
    return {
        "title": spec.title, "symmetric": spec.symmetric, "higher_is_aligned": higher,
        "to_zoo": to_zoo, "mean_alignment": float(means[-1]),
        "rank": _rank(means, len(models), higher), "n_ranked": len(models) + 1,
        "zoo_mean_alignment": {m: float(v) for m, v in zip(models, means[:-1], strict=True)},
        "nearest": [models[i] for i in order[:N_NEAREST] if np.isfinite(sym[i])],
        "matrix": combined,
    }


def _probe_sections(zoo: Zoo, new: EmbeddingFile, source: str,
                    seed: int) -> tuple[dict[str, Any] | None, Any]:
    """The new model's probes and reference-energy probe next to the stored zoo's."""
    from matteralign.analysis.performance import performance, read_performance
    from matteralign.analysis.probes import probes, read_probes
    from matteralign.analysis.study_inputs import inputs_from_files

    if "probes" not in zoo.analysis and "performance" not in zoo.analysis:
        return None, None
    inputs = inputs_from_files(zoo.structures, [new], [source])
    inputs.control_labels = ["random-init" if is_random_init(new) else ""]
    section = None
    if "probes" in zoo.analysis:
        stored = read_probes(zoo.analysis["probes"])
        folds, alphas = int(stored.attrs["folds"]), np.asarray(stored.attrs["alphas"])
        mine = probes(inputs, seed, folds, alphas)
        props = [p for p in stored.properties if p in mine.properties]
        units = json.loads(stored.attrs.get("units", "{}") or "{}")
        column = {p: mine.properties.index(p) for p in props}
        section = {
            "properties": props, "units": {p: units.get(p, "") for p in props},
            "new": {"r2": {p: float(mine.r2[0, column[p]]) for p in props},
                    "mae": {p: float(mine.mae[0, column[p]]) for p in props}},
            "zoo": {stat: {p: {m: float(getattr(stored, stat)[i, stored.properties.index(p)])
                               for i, m in enumerate(stored.models)} for p in props}
                    for stat in ("r2", "mae")},
        }
        section["rank_r2"] = {
            p: _rank(np.append(stored.r2[:, stored.properties.index(p)],
                               section["new"]["r2"][p]), len(stored.models), True)
            for p in props}
    perf = None
    if "performance" in zoo.analysis:
        stored_perf = read_performance(zoo.analysis["performance"])
        attrs = stored_perf.attrs
        perf = performance(inputs, seed, int(attrs["folds"]), np.asarray(attrs["alphas"]),
                           float(attrs["calibration_fraction"]))
    return section, perf


def _convergence_section(zoo: Zoo, headline: dict[str, Any] | None,
                         perf: Any) -> dict[str, Any] | None:
    from matteralign.analysis.convergence import read_convergence

    if "convergence" not in zoo.analysis or headline is None:
        return None
    stored = read_convergence(zoo.analysis["convergence"])
    attrs = stored["attrs"]
    reference, measure = str(attrs.get("reference", "")), str(attrs.get("performance_measure"))
    models = list(stored["models"])
    entry = next((e for e in headline["to_zoo"] if e["model"] == reference), None)
    alignment = math.nan
    if entry is not None:
        back = entry["reverse"]["value"] if entry["reverse"] else entry["value"]
        alignment = (entry["value"] + back) / 2
    mae, note = math.nan, ""
    if perf is not None:
        mae = float(perf.energy_mae[0] if measure == "energy_mae" else perf.probe_mae[0])
    if not np.isfinite(mae):
        note = (f"the new model has no {measure.replace('_', ' ')} (energy predictions are "
                "read from an embedding file's `energy` column): alignment only")
    if entry is None:
        note = f"the reference model {reference!r} is not in the zoo"
    units = ""
    if perf is not None:
        units = str(perf.attrs.get("target_units", ""))
    return {"reference": reference, "performance_measure": measure, "units": units,
            "new": {"mae": mae, "alignment_to_reference": alignment},
            "zoo": {"models": models, "mae": [float(v) for v in stored["mae"]],
                    "alignment_to_reference": [float(v) for v in
                                               stored["alignment_to_reference"]],
                    "control": list(stored["control"])},
            "note": note}


def _tree_section(headline: dict[str, Any], models: list[str], name: str,
                  modalities: list[str], controls: list[str]) -> dict[str, Any]:
    from matteralign.analysis.tree import model_tree

    leaves = [*models, name]
    tree = model_tree(leaves, headline["matrix"])
    new_leaf = len(models)
    members = {i: [i] for i in range(len(leaves))}
    joins, height = [], math.nan
    for row, (a, b, dist, _) in enumerate(tree.linkage):
        a, b = int(a), int(b)
        cluster = members[a] + members[b]
        members[len(leaves) + row] = cluster
        if new_leaf in (a, b) and not joins:
            other = b if a == new_leaf else a
            joins, height = [leaves[i] for i in members[other]], float(dist)
    return {"models": leaves, "linkage": tree.linkage.tolist(), "modality": modalities,
            "control": controls, "joins": joins, "height": height}


def build_card(results: str | os.PathLike[str], dataset: str, *,
               embeddings: str | os.PathLike[str] | None = None,
               npy: str | os.PathLike[str] | None = None,
               ids_file: str | os.PathLike[str] | None = None,
               name: str | None = None, dense_budget: int = DENSE_BUDGET) -> dict[str, Any]:
    """The card of one new model on one stored dataset (nothing is written)."""
    from matteralign.metrics.spec import SPECS

    clock: dict[str, float] = {}
    t0 = time.perf_counter()
    zoo = read_zoo(results, dataset)
    source = str(embeddings if embeddings is not None else npy)
    stored_ids = zoo.folder / "ids.txt"
    new = read_new_embedding(zoo.ids, embeddings=embeddings, npy=npy, ids_file=ids_file,
                             name=name, dataset=dataset,
                             ids_path=stored_ids if stored_ids.exists() else None)
    settings = dict(zoo.settings)
    k, prep = int(settings["k"]), str(settings["preprocessing"])
    bootstrap, permutations = int(settings["bootstrap"]), int(settings["permutations"])
    models = zoo.models
    model_name = new.model if new.model not in models else f"{new.model} (new)"
    study = load_study(zoo.embedding_paths, prep, min_rows=max(k + 2, 4))
    mask = study.mask & new.valid
    need, why = rows_needed(k, bootstrap, list(zoo.metric_files))
    if mask.sum() < need:
        raise InputError(
            f"{source}: too few valid rows ({int(mask.sum())}) for k={k}; need at least {need} "
            f"({why}). Rows count where the structure is valid in the new model and in every "
            f"zoo model ({int(new.valid.sum())} of {len(new.ids)} are valid in the new one): "
            "embed more of the dataset's structures, or check why the rest are masked")
    zoo_arrays = {m: preprocess(f.embeddings[mask], prep)
                  for m, f in zip(models, study.files, strict=True)}
    new_array = preprocess(new.embeddings[mask], prep)
    clock["read"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    metrics = list(zoo.metric_files)
    values, engine = compare_to_zoo(new_array, zoo_arrays, metrics, settings, dense_budget)
    clock["metrics"] = time.perf_counter() - t1

    pair_metrics = [m for m in metrics if not SPECS[m].per_model]
    sections = {m: metric_section(m, zoo, values, permutations) for m in pair_metrics}
    first = zoo.metric_files[pair_metrics[0]].attrs
    random_init = attr_flags(first.get("random_init"), len(models))
    controls = [control_of(m, r) for m, r in zip(models, random_init, strict=True)]
    modalities = [str(v) for v in first.get("modalities", [""] * len(models))]
    new_random = is_random_init(new)
    intrinsic = None
    if "intrinsic_dim" in values:
        stored = zoo.metric_files["intrinsic_dim"]
        intrinsic = {"value": float(values["intrinsic_dim"][0]),
                     "ci_low": float(values.get("intrinsic_dim/ci_low", [math.nan])[0]),
                     "ci_high": float(values.get("intrinsic_dim/ci_high", [math.nan])[0]),
                     "zoo": {m: float(v) for m, v in zip(stored.models, stored.values,
                                                         strict=True)}}

    t2 = time.perf_counter()
    probe_section, perf = _probe_sections(zoo, new, source, int(settings["seed"]))
    clock["probes"] = time.perf_counter() - t2
    headline = sections.get(HEADLINE)
    convergence = _convergence_section(zoo, headline, perf)
    tree = None
    if headline is not None:
        tree = _tree_section(headline, models, model_name,
                             [*modalities, str(new.attrs.get("modality", ""))],
                             [*controls, "random-init" if new_random else ""])
    for section in sections.values():
        section.pop("matrix")
    clock["total"] = time.perf_counter() - t0

    files = ", ".join(f"{m}.h5" for m in pair_metrics)
    reused = [
        f"zoo–zoo alignment matrices, intervals and nulls: {files} (read, not recomputed; "
        "only the M new–zoo pairs are computed)",
        "each zoo model's full-sample neighbour lists, nearest neighbours, distance moments and "
        "distance ranks: computed once and reused by all P null replicates",
    ]
    if intrinsic is not None:
        reused.append("the zoo's intrinsic dimensions: intrinsic_dim.h5")
    reused += [f"the zoo's {name}: {path.name}" for name, path in zoo.analysis.items()]
    return {
        "card_version": CARD_VERSION,
        "model": {"name": model_name, "source": source,
                  "format": "h5" if embeddings is not None else "npy",
                  "weights": str(new.attrs.get("weights", "")),
                  "weights_sha256": str(new.attrs.get("weights_sha256", "")),
                  "random_init": new_random, "dim": int(new.embeddings.shape[1]),
                  "n_rows": len(new.ids), "n_valid": int(new.valid.sum())},
        "dataset": {"name": dataset, "kind": _dataset_kind(dataset),
                    "dataset_sha256": str(first.get("dataset_sha256", "")),
                    "n_total": len(zoo.ids), "n_used": int(mask.sum()),
                    "n_study_used": int(first.get("n_used", study.n_used))},
        "settings": {"k": k, "preprocessing": prep, "bootstrap": bootstrap,
                     "permutations": permutations, "seed": int(settings["seed"]), "ci": 0.95,
                     "null": NULL_SENTENCE, "engine": engine},
        "zoo": {"models": models, "control": controls, "modality": modalities},
        "headline_metric": HEADLINE if HEADLINE in sections else pair_metrics[0],
        "metrics": sections,
        "intrinsic_dim": intrinsic,
        "probes": probe_section,
        "convergence": convergence,
        "tree": tree,
        "reused": reused,
        "timing_s": {key: round(value, 3) for key, value in clock.items()},
        "provenance": {**provenance(("scipy",)),
                       "new_model_attrs": {key: _plain(value) for key, value in
                                           new.attrs.items()},
                       "zoo_content_sha256": {
                           m: str(f.attrs.get("content_sha256", ""))
                           for m, f in zip(models, study.files, strict=True)},
                       "metric_files_content_sha256": {
                           m: str(f.attrs.get("content_sha256", ""))
                           for m, f in zoo.metric_files.items()}},
    }


def _dataset_kind(dataset: str) -> str:
    from matteralign.datasets import registered_datasets

    cls = registered_datasets().get(dataset)
    return str(getattr(cls, "kind", "")) if cls is not None else ""


def _plain(value: Any) -> Any:
    """An attribute value as JSON can hold it."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: the files of a card, in its output folder
CARD_FILES = ("card.json", "card.png", "card.html")
