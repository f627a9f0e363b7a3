"""A study's CKNNA in the layouts of the paper authors' public viewer (Garden-AI/almanac).

Two layers, as that repository has them (read at commit 73832a5; docs/formats.md):

- ``_data/{Dataset}/cknnas.json`` and ``_data/model_metadata.json``: the per-pair, per-k
  CKNNA its exporter reads (``almanac_embeddings/export_layouts.py``,
  ``load_cknna_distance_matrix`` and ``load_metadata``): keys are Python-repr'd
  ``(model_a, model_b)`` tuples, values ``{"<k>": similarity}``; metadata keyed by display
  label, each record with ``model_name``.
- ``tree-data.json``: what its page reads (``src/data/tree-data.json``, drawn by
  ``src/components/SimilarityTree.astro``): per dataset an n × n symmetric distance matrix
  with zero diagonal over ``points`` (eight keys each, null where unknown). The viewer's own
  distance, √JSD of CKNNA by the paper's eqs A9–A12, is computed by code that is not public;
  this export writes the study's tree distance √(1 − clip(CKNNA)) and says so in ``metric``.

The viewer is for 3D-structure potentials: ``tree-data.json`` holds the trained models that
read 3D structures; ``cknnas.json`` holds every model, its metadata marking controls (as the
authors' own ``Randomized`` architecture) and modality, so that their filters apply.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matteralign.io import atomic_path, attr_flags, read_metric

#: the viewer's distance is not public; ours, named in every exported dataset
METRIC_TEXT = ("sqrt(1 - CKNNA) at k={k} (matteralign's tree distance; the viewer's own "
               "sqrt(JSD) of CKNNA, paper eqs A9-A12, is not public)")
#: the study's modality names in the authors' metadata vocabulary
MODALITY = {"atoms": "3D", "smiles": "SMILES", "text": "text", "sequence": "sequence",
            "graph": "graph"}


@dataclass
class AlmanacExport:
    out: Path
    datasets: dict[str, int]  # dataset -> models in its cknnas.json
    tree_points: dict[str, int]  # dataset -> points in tree-data.json


def _display(dataset: str) -> str:
    return {"qm9": "QM9", "omat24": "OMat24", "omol25": "OMol25", "salex": "sAlex"}.get(
        dataset, dataset)


def _symmetric(matrix: np.ndarray) -> np.ndarray:
    return (np.asarray(matrix, dtype=np.float64) + np.asarray(matrix, dtype=np.float64).T) / 2


def _metadata(model: str, family: str, modality: str, control: str) -> dict[str, Any]:
    from matteralign.models.domains import training_domain

    try:
        trained_on = training_domain(model).data
    except KeyError:
        trained_on = ""
    architecture = ["Randomized"] if control == "random-init" else (
        ["Baseline"] if control == "baseline" else [family or model])
    return {"model_name": model, "architecture": architecture,
            "modality": [MODALITY.get(modality, modality)], "num_params": None,
            "dataset": [trained_on] if trained_on else [], "dft_level_of_theory": []}


def _point(model: str, meta: dict[str, Any]) -> dict[str, Any]:
    trained = meta["dataset"][0] if meta["dataset"] else None
    return {"modelName": model, "label": model, "family": meta["architecture"][0],
            "corpus": "other", "sizeM": None, "numParams": None, "slug": None,
            "trainedOn": trained}


def export_almanac(results: str | os.PathLike[str], out: str | os.PathLike[str]
                   ) -> AlmanacExport:
    """Every dataset of ``results`` with a cknna.h5 into ``out`` (see the module text)."""
    from matteralign.analysis.tree import alignment_distance
    from matteralign.models.domains import control_of

    results, out = Path(results), Path(out)
    files = sorted(results.glob("*/cknna.h5"))
    if not files:
        raise FileNotFoundError(f"{results}: no {{dataset}}/cknna.h5; run the study (with "
                                "cknna in metrics.names) first")
    metadata: dict[str, dict[str, Any]] = {}
    tree: list[dict[str, Any]] = []
    counts, points = {}, {}
    for path in files:
        dataset = path.parent.name
        metric = read_metric(path)
        k = str(int(metric.attrs.get("k", 25)))
        models = list(metric.models)
        sym = _symmetric(metric.matrix)
        flags = attr_flags(metric.attrs.get("random_init"), len(models))
        modalities = list(metric.attrs.get("modalities", [""] * len(models)))
        families = list(metric.attrs.get("families", [""] * len(models)))
        controls = [control_of(m, r) for m, r in zip(models, flags, strict=True)]
        cknnas = {repr((models[i], models[j])): {k: float(sym[i, j])}
                  for i in range(len(models)) for j in range(i + 1, len(models))
                  if np.isfinite(sym[i, j])}
        with atomic_path(out / "_data" / _display(dataset) / "cknnas.json") as tmp:
            tmp.write_text(json.dumps(cknnas, indent=1))
        counts[dataset] = len(models)
        meta = {m: _metadata(m, f, mod, c) for m, f, mod, c in
                zip(models, families, modalities, controls, strict=True)}
        metadata.update({m: record for m, record in meta.items() if m not in metadata})
        keep = [i for i, m in enumerate(models) if modalities[i] == "atoms" and not controls[i]]
        points[dataset] = len(keep)
        if len(keep) < 2:
            continue
        distance, _ = alignment_distance(metric.matrix[np.ix_(keep, keep)])
        tree.append({"id": dataset.lower(), "dataset": _display(dataset),
                     "metric": METRIC_TEXT.format(k=k), "n": len(keep),
                     "points": [_point(models[i], meta[models[i]]) for i in keep],
                     "labels": [models[i] for i in keep],
                     "matrix": np.round(distance, 5).tolist()})
    with atomic_path(out / "_data" / "model_metadata.json") as tmp:
        tmp.write_text(json.dumps({m: record for m, record in sorted(metadata.items())},
                                  indent=1))
    with atomic_path(out / "tree-data.json") as tmp:
        tmp.write_text(json.dumps({"datasets": tree}, indent=1, ensure_ascii=False))
    return AlmanacExport(out, counts, points)
