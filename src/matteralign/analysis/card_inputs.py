"""What an alignment card reads: a new model's embeddings, checked against the stored
dataset's structures, and the stored zoo (its embedding, metric and analysis files)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from matteralign.errors import InputError, MissingInputError
from matteralign.io import EmbeddingFile, MetricFile, damaged, open_h5, read_embeddings, read_metric

#: ids shown in an error message
EXAMPLES = 5
#: the datasets of an embedding file that hold one entry per structure id
PER_ID = ("embeddings", "valid", "errors", "energy")


def _examples(items: list[str]) -> str:
    shown = ", ".join(items[:EXAMPLES])
    return shown + (", ..." if len(items) > EXAMPLES else "")


@dataclass
class Zoo:
    """The stored results of one dataset that a card is placed against."""

    dataset: str
    folder: Path
    structures: Path
    ids: list[str]
    metric_files: dict[str, MetricFile]  # metric -> its stored file, in the table's order
    embedding_paths: list[Path]  # in the metric files' model order
    analysis: dict[str, Path] = field(default_factory=dict)  # name -> stored analysis file

    @property
    def models(self) -> list[str]:
        return next(iter(self.metric_files.values())).models

    @property
    def settings(self) -> dict[str, object]:
        """k, preprocessing, B, P and seed of the stored metric files."""
        attrs = next(iter(self.metric_files.values())).attrs
        return {key: attrs[key] for key in
                ("k", "preprocessing", "bootstrap", "permutations", "seed")}


def read_zoo(results: str | os.PathLike[str], dataset: str) -> Zoo:
    """The stored zoo of ``dataset`` under ``results``, or a clear error naming what is
    missing and how to make it."""
    from matteralign.datasets.store import read_structures
    from matteralign.metrics.spec import METRICS

    folder = Path(results) / dataset
    structures = folder / "structures.h5"
    if not structures.exists():
        raise MissingInputError(
            f"{structures} does not exist: dataset {dataset!r} has no stored results under "
            f"{results}; run the study first (`make study`, or `snakemake` with {dataset!r} in "
            "config/config.yaml) or pass --results")
    metric_files = {spec.name: read_metric(folder / f"{spec.name}.h5") for spec in METRICS
                    if (folder / f"{spec.name}.h5").exists()}
    if not any(f.matrix is not None for f in metric_files.values()):
        names = ", ".join(f"{spec.name}.h5" for spec in METRICS)
        raise MissingInputError(
            f"{folder} holds no alignment results (none of {names}): the study's align step "
            f"has not run for {dataset!r}; run `make study` (or `snakemake "
            f"{folder}/cknna.h5`) first")
    orders = {name: f.models for name, f in metric_files.items()}
    models = next(iter(orders.values()))
    if any(order != models for order in orders.values()):
        raise InputError(f"the metric files of {folder} list different models: {orders}; "
                         "rerun the study's align step so that they agree")
    embedding_paths = [folder / "embeddings" / f"{m}.h5" for m in models]
    missing = [str(p) for p in embedding_paths if not p.exists()]
    if missing:
        raise MissingInputError(f"the zoo's embedding files are missing: {missing}; the card "
                                "reads them (rerun the study's embed step)")
    for path in embedding_paths:
        problem = row_count_problem(path)
        if problem:
            raise damaged(path, f"{problem}: not one row per structure")
    ids = [r.id for r in read_structures(structures)]
    analysis = {name: folder / f"{name}.h5" for name in
                ("performance", "probes", "convergence")
                if (folder / f"{name}.h5").exists()}
    return Zoo(dataset=dataset, folder=folder, structures=structures, ids=ids,
               metric_files=metric_files, embedding_paths=embedding_paths, analysis=analysis)


def row_count_problem(path: str | os.PathLike[str]) -> str | None:
    """Which datasets of an embedding file do not hold one entry per id, or None.

    Read from the shapes alone, so it is cheap and holds for files without a content hash
    (which a hash check would not catch: a hash records what was written, not that it fits)."""
    with open_h5(path) as handle:
        rows = {name: _rows(handle[name]) for name in ("ids", *PER_ID) if name in handle}
    n = rows.pop("ids", None)
    if n is None:
        return None  # the reader names the missing dataset
    counts = {name: count for name, count in rows.items() if count is not None}
    wrong = {name: count for name, count in counts.items() if count != n}
    if not wrong:
        return None
    listed = ", ".join(f"{name} has {count} rows" for name, count in wrong.items())
    return f"{listed} but ids has {n}"


def _rows(obj: object) -> int | None:
    """Length of an HDF5 dataset's first axis (0 for a scalar), None for a group."""
    shape = getattr(obj, "shape", None)
    if shape is None:
        return None
    return int(shape[0]) if shape else 0


def read_ids_file(path: str | os.PathLike[str], dataset: str | None = None,
                  stored: str | os.PathLike[str] | None = None) -> list[str]:
    """The ids of an ``ids.txt``: the one the study writes (its ``# dataset=...`` header is
    not an id; see :func:`~matteralign.datasets.prepare.read_ids`) or a plain list. A header
    naming another dataset (than ``dataset``, whose own list is ``stored``), or another
    count than the file lists, is refused."""
    from matteralign.datasets.prepare import read_ids

    ids, header = read_ids(path)
    named = header.get("dataset")
    if dataset and named and named != dataset:
        own = stored if stored is not None else f"results/{dataset}/ids.txt"
        raise InputError(f"{path} lists the ids of dataset {named!r}, not {dataset!r}: give "
                         f"the ids.txt of {dataset!r} ({own})")
    if header.get("n", "").isdigit() and int(header["n"]) != len(ids):
        raise InputError(f"{path}: its header says n={header['n']} but it lists {len(ids)} "
                         "ids (cut short?); write one id per line, in the array's row order")
    return ids


def read_new_embedding(ids: list[str], *, embeddings: str | os.PathLike[str] | None = None,
                       npy: str | os.PathLike[str] | None = None,
                       ids_file: str | os.PathLike[str] | None = None,
                       name: str | None = None, dataset: str | None = None,
                       ids_path: str | os.PathLike[str] | None = None) -> EmbeddingFile:
    """A new model's embeddings in the order of the dataset's ``ids``.

    Either an embedding file in the documented format (``embeddings``), whose ``valid`` mask
    is honoured and each of whose datasets must hold one row per id, or an (N, D) ``.npy``
    array whose row i embeds the i-th id of ``ids_file`` (as :func:`read_ids_file` reads it).
    The ids must be exactly the dataset's (in any order); every row to be used must be finite.
    ``dataset`` and ``ids_path`` (the dataset's stored ``ids.txt``) only sharpen the errors.
    """
    if (embeddings is None) == (npy is None):
        raise InputError("give either an embedding file (EMB) or --npy X.npy with --ids "
                         "ids.txt, not both or neither")
    if embeddings is not None:
        source = str(embeddings)
        if not Path(source).exists():
            raise MissingInputError(f"{source} does not exist")
        problem = row_count_problem(source)
        if problem:
            raise InputError(f"{source}: {problem}; row i of each must belong to the i-th id "
                             "(docs/formats.md, embedding files): rewrite the file, or give "
                             "--npy X.npy --ids ids.txt")
        new = read_embeddings(source)
        attrs = dict(new.attrs)
        attrs["model"] = name or new.model or Path(source).stem
        new = EmbeddingFile(ids=new.ids, embeddings=np.asarray(new.embeddings),
                            valid=new.valid, errors=new.errors, energy=new.energy, attrs=attrs)
    else:
        source = str(npy)
        if ids_file is None:
            stored = f" (the study's list: {ids_path})" if ids_path is not None else ""
            raise InputError("--npy needs --ids: a text file with one structure id per line, "
                             f"row i of the array embedding the i-th id{stored}")
        for path in (npy, ids_file):
            if not Path(path).exists():
                raise MissingInputError(f"{path} does not exist")
        try:
            array = np.load(source, allow_pickle=False)
        except ValueError as err:
            raise InputError(f"{source} is not a plain .npy array ({err})") from err
        rows = read_ids_file(ids_file, dataset, ids_path)
        if array.ndim != 2:
            raise InputError(f"{source}: expected a 2-D array (N, D), got shape {array.shape}")
        if array.shape[0] != len(rows):
            raise InputError(f"{source} has {array.shape[0]} rows but {ids_file} lists "
                             f"{len(rows)} ids: row i must embed the i-th id")
        n = len(rows)
        new = EmbeddingFile(ids=rows, embeddings=array, valid=np.ones(n, bool), errors=[""] * n,
                            attrs={"model": name or Path(source).stem,
                                   "weights": "not recorded (embeddings given as .npy)",
                                   "weights_sha256": "", "random_init": False,
                                   "source": "npy"})
    where = (f"their ids are in {ids_path}, which --ids reads as it is" if ids_path is not None
             else "their ids are the `ids` of the stored structures.h5")
    return _in_dataset_order(new, ids, source, where)


def _in_dataset_order(new: EmbeddingFile, ids: list[str], source: str,
                      where: str) -> EmbeddingFile:
    x = np.asarray(new.embeddings)
    if x.ndim != 2 or x.shape[1] == 0:
        raise InputError(f"{source}: the embeddings have dimension 0 (shape {x.shape}); a "
                         "model must give at least one feature per structure")
    if x.dtype.kind not in "fiu":
        raise InputError(f"{source}: embeddings must be numbers, got dtype {x.dtype}")
    duplicated = sorted(i for i, count in Counter(new.ids).items() if count > 1)
    if duplicated:
        raise InputError(f"{source} lists {len(duplicated)} structure ids more than once "
                         f"(e.g. {_examples(duplicated)}); each structure needs one row")
    theirs, ours = set(new.ids), set(ids)
    missing = [i for i in ids if i not in theirs]
    extra = [i for i in new.ids if i not in ours]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of the dataset's {len(ids)} structures are missing "
                         f"(e.g. {_examples(missing)})")
        if extra:
            parts.append(f"{len(extra)} ids are not in the dataset (e.g. {_examples(extra)})")
        raise InputError(
            f"{source}: the ids do not match the stored dataset: {'; '.join(parts)}. Embed "
            f"exactly the structures `matteralign export-structures` writes ({where}); in an "
            "embedding file, mark a structure your model cannot handle with valid = false "
            "instead of leaving it out")
    order = np.array([{i: r for r, i in enumerate(new.ids)}[i] for i in ids], dtype=np.int64)
    x = x[order].astype(np.float64)
    valid = np.asarray(new.valid, bool)[order]
    bad = valid & ~np.isfinite(x).all(axis=1)
    if bad.any():
        names = [ids[i] for i in np.flatnonzero(bad)]
        raise InputError(f"{source}: {len(names)} rows hold NaN or Inf (e.g. "
                         f"{_examples(names)}); fix them, or in an embedding file mark those "
                         "structures valid = false with their reason")
    if not valid.any():
        raise InputError(f"{source}: no structure is marked valid")
    energy = None if new.energy is None else np.asarray(new.energy, np.float64)[order]
    errors = [new.errors[i] for i in order]
    return EmbeddingFile(ids=list(ids), embeddings=x, valid=valid, errors=errors,
                         energy=energy, attrs=new.attrs)

