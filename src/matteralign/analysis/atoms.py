"""Atom-level alignment: the study's metrics over every atomic environment, not only over
pooled structures.

Each interatomic potential's per-atom file (``results/{dataset}/atoms/{model}.h5``) holds one
row per atom, the hooked layer before pooling. The models are compared on the atoms of the
structures every one of them embedded, row for row (same structure, same atom index, checked
by element). Atoms of one structure are not independent samples, so the half-samples of the
bootstrap draw structures, each with all its atoms (``pairwise(groups=...)``); the
permutation null shuffles atoms, as the pooled null shuffles structures.

``by_element`` repeats the comparison within each element: do two models agree on which
carbons are alike, once being a carbon is no longer what makes two atoms close?
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matteralign.analysis.align import metric_files, run_attrs
from matteralign.analysis.preprocess import preprocess
from matteralign.analysis.study import AlignmentError
from matteralign.io import (
    AtomEmbeddingFile,
    MetricFile,
    read_atom_embeddings,
    write_metric,
    write_metric_groups,
)

#: how the bootstrap of an atom-level metric file resamples (its ``resampling`` attribute)
RESAMPLING = "half of the structures with all their atoms (atoms of one structure are not " \
             "independent); the permutation null shuffles atoms"


@dataclass
class AtomStudy:
    """A dataset's per-atom embeddings as the metrics see them: the atoms of the structures
    every model embedded, in the same order in every model, preprocessed."""

    names: list[str]
    arrays: dict[str, np.ndarray]  # model -> float64 [n_atoms, D_model]
    structure: np.ndarray  # int64 [n_atoms]: each row's structure (row in structures.h5)
    atomic_number: np.ndarray  # int64 [n_atoms]
    preprocessing: str
    files: list[AtomEmbeddingFile] = field(repr=False, default_factory=list)

    @property
    def n_atoms(self) -> int:
        return len(self.structure)

    @property
    def n_structures(self) -> int:
        return len(np.unique(self.structure))

    def element_rows(self, min_atoms: int) -> dict[str, np.ndarray]:
        """Row indices of each element with at least ``min_atoms`` atoms, by symbol, in
        order of atomic number."""
        from ase.data import chemical_symbols

        out = {}
        for z in np.unique(self.atomic_number):
            rows = np.flatnonzero(self.atomic_number == z)
            if len(rows) >= min_atoms:
                out[chemical_symbols[int(z)]] = rows
        return out


def load_atom_study(paths: Sequence[str | os.PathLike[str]], preprocessing: str = "l2",
                    min_rows: int = 4) -> AtomStudy:
    """Read per-atom files and keep the atoms of the structures present in every one."""
    if len(paths) < 1:
        raise AlignmentError("no per-atom embedding files given")
    files = [read_atom_embeddings(p) for p in paths]
    names = [f.model for f in files]
    if len(set(names)) != len(names):
        raise AlignmentError(f"the same model appears twice among the per-atom files: {names}")
    hashes = {str(f.attrs.get("dataset_sha256", "")) for f in files}
    if len(hashes) > 1:
        raise AlignmentError(f"per-atom files come from different dataset versions: {hashes}; "
                             "rebuild them from the same structures.h5")
    common = set.intersection(*(set(f.structure_index.tolist()) for f in files))
    kept = [np.isin(f.structure_index, list(common)) for f in files]
    first = files[0]
    structure, atom_index = first.structure_index[kept[0]], first.atom_index[kept[0]]
    numbers = first.atomic_number[kept[0]]
    for f, keep in zip(files[1:], kept[1:], strict=True):
        if not (np.array_equal(f.structure_index[keep], structure)
                and np.array_equal(f.atom_index[keep], atom_index)
                and np.array_equal(f.atomic_number[keep], numbers)):
            raise AlignmentError(
                f"per-atom files of {first.model!r} and {f.model!r} list the atoms of the same "
                "structures differently; rebuild them from the same structures.h5")
    if len(structure) < min_rows:
        raise AlignmentError(
            f"only {len(structure)} atoms of {len(common)} structures are in every per-atom "
            f"file; the metrics need at least {min_rows}. Raise max_atoms_total, or drop the "
            "model that embedded the fewest structures")
    arrays = {f.model: preprocess(f.embeddings[keep], preprocessing)
              for f, keep in zip(files, kept, strict=True)}
    return AtomStudy(names=names, arrays=arrays, structure=structure, atomic_number=numbers,
                     preprocessing=preprocessing, files=files)


def _common_attrs(study: AtomStudy, rows: np.ndarray | None, settings: dict[str, Any]
                  ) -> dict[str, Any]:
    structure = study.structure if rows is None else study.structure[rows]
    attrs = study.files[0].attrs
    return {
        "dataset": attrs.get("dataset", ""),
        "dataset_sha256": attrs.get("dataset_sha256", ""),
        "level": "atoms",
        "n_used": len(structure),  # rows compared: atoms
        "n_atoms": len(structure),
        "n_structures": len(np.unique(structure)),
        "resampling": RESAMPLING,
        **run_attrs([f.attrs for f in study.files], **settings),
    }


def _align(study: AtomStudy, rows: np.ndarray | None, metrics: Sequence[str],
           settings: dict[str, Any], device: str | None) -> dict[str, MetricFile]:
    from matteralign.metrics import pairwise

    arrays = study.arrays if rows is None else {m: a[rows] for m, a in study.arrays.items()}
    groups = study.structure if rows is None else study.structure[rows]
    results = pairwise(arrays, metrics=list(metrics), k=settings["k"], device=device,
                       bootstrap=settings["bootstrap"], permutations=settings["permutations"],
                       seed=settings["seed"], groups=groups)
    return metric_files(results, metrics, study.names, _common_attrs(study, rows, settings),
                        settings["bootstrap"], settings["permutations"])


def min_element_atoms(k: int, bootstrap: int) -> int:
    """Fewest atoms of an element for its own matrices: k + 2 (k neighbours and TwoNN), and
    four times that with a bootstrap, so that a half-sample of the structures still holds
    k + 2 of its atoms."""
    need = max(k + 2, 4)
    return 4 * need if bootstrap > 0 else need


def align_atoms(
    paths: Sequence[str | os.PathLike[str]],
    outputs: dict[str, str | os.PathLike[str]],
    by_element: dict[str, str | os.PathLike[str]] | None = None,
    k: int = 25,
    preprocessing: str = "l2",
    bootstrap: int = 0,
    permutations: int = 0,
    seed: int = 0,
    device: str | None = None,
) -> dict[str, MetricFile]:
    """Every metric of ``outputs`` (metric -> path) over all atoms every model embedded;
    ``by_element`` (metric -> path): the same within each element with enough atoms, one
    group per element in one file per metric."""
    study = load_atom_study(paths, preprocessing, min_rows=max(k + 2, 4))
    settings = {"k": k, "preprocessing": preprocessing, "bootstrap": bootstrap,
                "permutations": permutations, "seed": seed}
    written = _align(study, None, list(outputs), settings, device) if outputs else {}
    for metric, path in outputs.items():
        write_metric(path, written[metric])
    if by_element:
        floor = min_element_atoms(k, bootstrap)
        elements = study.element_rows(floor)
        per_element = {symbol: _align(study, rows, list(by_element), settings, device)
                       for symbol, rows in elements.items()}
        counts = {symbol: len(rows) for symbol, rows in elements.items()}
        for metric, path in by_element.items():
            write_metric_groups(path, {s: r[metric] for s, r in per_element.items()}, {
                "metric": metric, "level": "atoms by element", "min_atoms": floor,
                "elements": list(counts), "element_atoms": list(counts.values()),
                "dataset": study.files[0].attrs.get("dataset", ""),
            })
    return written


@dataclass
class LevelPair:
    """One pair of potentials under one metric, pooled and atom by atom."""

    metric: str
    source: str
    target: str
    pooled: float
    pooled_ci: tuple[float, float]
    atoms: float
    atoms_ci: tuple[float, float]
    atoms_above_chance: bool | None  # None: no permutation null
    by_element: dict[str, float] = field(default_factory=dict)


def _entry(result: MetricFile, i: int, j: int, name: str) -> float:
    array = result.matrix if name == "value" else result.extra.get(name)
    return float("nan") if array is None else float(array[i, j])


def compare_levels(pooled: dict[str, MetricFile], atoms: dict[str, MetricFile],
                   by_element: dict[str, dict[str, MetricFile]] | None = None
                   ) -> list[LevelPair]:
    """Every pair of the atom-level models under every pairwise metric in both: its pooled
    entry (read from the study's matrix, whose structures may be more) next to its atom-level
    entry, with intervals, the atom-level chance flag and each element's value. Symmetric
    metrics give each unordered pair once."""
    pairs = []
    for metric, level in atoms.items():
        if level.matrix is None or metric not in pooled:
            continue
        whole = pooled[metric]
        symmetric = bool(level.attrs.get("symmetric"))
        names = level.models
        for a, source in enumerate(names):
            for b, target in enumerate(names):
                if a == b or (symmetric and b < a):
                    continue
                if source not in whole.models or target not in whole.models:
                    continue
                i, j = whole.models.index(source), whole.models.index(target)
                above = level.extra.get("above_chance")
                elements = {}
                for symbol, result in (by_element or {}).get(metric, {}).items():
                    if source in result.models and target in result.models:
                        elements[symbol] = _entry(result, result.models.index(source),
                                                  result.models.index(target), "value")
                pairs.append(LevelPair(
                    metric=metric, source=source, target=target,
                    pooled=_entry(whole, i, j, "value"),
                    pooled_ci=(_entry(whole, i, j, "ci_low"), _entry(whole, i, j, "ci_high")),
                    atoms=_entry(level, a, b, "value"),
                    atoms_ci=(_entry(level, a, b, "ci_low"), _entry(level, a, b, "ci_high")),
                    atoms_above_chance=None if above is None else bool(above[a, b]),
                    by_element=elements,
                ))
    return pairs


def write_level_table(path: str | os.PathLike[str], pairs: Sequence[LevelPair]) -> None:
    """The comparison as a TSV, one row per (metric, pair); per-element columns at the end."""
    from matteralign.io import atomic_path

    elements = sorted({s for p in pairs for s in p.by_element})
    header = ["metric", "source", "target", "pooled", "pooled_ci_low", "pooled_ci_high",
              "atoms", "atoms_ci_low", "atoms_ci_high", "atoms_above_chance",
              *[f"atoms_{s}" for s in elements]]
    lines = ["\t".join(header)]
    for p in pairs:
        cells = [p.metric, p.source, p.target, *(f"{v:.6g}" for v in (
            p.pooled, *p.pooled_ci, p.atoms, *p.atoms_ci)),
            "" if p.atoms_above_chance is None else str(p.atoms_above_chance).lower(),
            *(f"{p.by_element[s]:.6g}" if s in p.by_element else "" for s in elements)]
        lines.append("\t".join(cells))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
