"""Run one model over one prepared dataset and write its embedding file.

Long runs are resumable: the structures are embedded in shards, each finished shard is saved
atomically under ``{output}.parts/``, and a restarted job (a requeued SLURM job, a killed
laptop run) loads the finished shards of the same model, weights, dataset, code and package
versions and continues from there; shards of another code or package version are dropped and
the model starts over, so a file never mixes rows of two versions. The parts are removed once
the final file is written.

With ``atoms_output``, the same forward passes also give every atom's features before pooling
(models with ``per_atom``), written to a per-atom file for the atom-level study: the atoms of
the structures :func:`atom_structures` selects, the same structures for every model.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import inspect
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from matteralign.datasets.store import read_structure_attrs, read_structures
from matteralign.errors import MatterAlignError
from matteralign.io import (
    AtomEmbeddingFile,
    CorruptFileError,
    EmbeddingFile,
    atomic_h5,
    load_verified,
    open_h5,
    read_strings,
    strings,
    write_atom_embeddings,
    write_embeddings,
)
from matteralign.models import ModelAdapter, get_model
from matteralign.models.geometry import geometry_problem
from matteralign.models.weights import check_weights_pin
from matteralign.provenance import provenance
from matteralign.records import Record

#: structures per resumable shard (MATTERALIGN_SHARD_SIZE overrides it, e.g. for tests of
#: cancelled cluster jobs; it is part of the shards' fingerprint)
SHARD_SIZE = int(os.environ.get("MATTERALIGN_SHARD_SIZE") or 256)
#: atoms per forward pass for 3D models (adapters may set ``max_batch_atoms``): a batch of
#: sixteen 1,000-atom proteins would need tens of GB for an equivariant network
MAX_BATCH_ATOMS = 2048
#: default bound on the atoms of a per-atom file (QM9's 1,000 molecules have about 18,000)
MAX_ATOMS_TOTAL = 20_000


class PerAtomUnavailable(MatterAlignError, ValueError):
    """Per-atom features were asked of a model that gives none (not an interatomic potential)."""


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".strip()[:500]


class _Shard:
    """What one shard produced: row index -> vector / energy / error, and the per-atom
    features (float64) of the rows whose atoms are kept."""

    def __init__(self) -> None:
        self.vectors: dict[int, np.ndarray] = {}
        self.energies: dict[int, float] = {}
        self.errors: dict[int, str] = {}
        self.atoms: dict[int, np.ndarray] = {}

    def update(self, other: _Shard) -> None:
        self.vectors.update(other.vectors)
        self.energies.update(other.energies)
        self.errors.update(other.errors)
        self.atoms.update(other.atoms)

    def save(self, path: Path, indices: Sequence[int], fingerprint: str,
             versions: Mapping[str, str] | None = None) -> None:
        dim = len(next(iter(self.vectors.values()))) if self.vectors else 0
        rows = np.array(indices, dtype=np.int64)
        vectors = np.full((len(rows), dim), np.nan, np.float32)
        energies = np.full(len(rows), np.nan)
        for j, i in enumerate(rows):
            if i in self.vectors:
                vectors[j] = self.vectors[i]
            energies[j] = self.energies.get(i, np.nan)
        with atomic_h5(path) as handle:
            handle.create_dataset("indices", data=rows)
            handle.create_dataset("vectors", data=vectors)
            handle.create_dataset("energies", data=energies)
            handle.create_dataset("errors", data=strings([self.errors.get(i, "") for i in rows]))
            handle.create_dataset("done", data=np.array([i in self.vectors for i in rows]))
            kept = [i for i in rows if i in self.atoms]
            handle.create_dataset("atom_rows", data=np.array(kept, dtype=np.int64))
            handle.create_dataset("atom_counts", data=np.array(
                [len(self.atoms[i]) for i in kept], dtype=np.int64))
            atom_dim = self.atoms[kept[0]].shape[1] if kept else 0
            handle.create_dataset("atom_vectors", data=np.concatenate(
                [self.atoms[i] for i in kept]) if kept else np.zeros((0, atom_dim)))
            handle.attrs["fingerprint"] = fingerprint
            for key, value in (versions or {}).items():
                handle.attrs[key] = value

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> tuple[_Shard, list[int]] | None:
        try:
            data, attrs = load_verified(path)
            if attrs.get("fingerprint") != fingerprint:
                return None
            rows = data["indices"].tolist()
            vectors, energies = data["vectors"], data["energies"]
            errors, done = read_strings(data["errors"]), data["done"]
            atom_rows, atom_counts = data["atom_rows"].tolist(), data["atom_counts"]
            atom_vectors = data["atom_vectors"]
        except (OSError, KeyError, CorruptFileError):
            return None  # unreadable or damaged part: recompute it
        shard = cls()
        for j, i in enumerate(rows):
            if done[j]:
                shard.vectors[i] = vectors[j]
                if np.isfinite(energies[j]):
                    shard.energies[i] = float(energies[j])
            else:
                shard.errors[i] = errors[j]
        offsets = np.concatenate([[0], np.cumsum(atom_counts)]).astype(np.int64)
        for j, i in enumerate(atom_rows):
            shard.atoms[i] = atom_vectors[offsets[j]:offsets[j + 1]]
        return shard, rows


def _atom_rows(out_atoms: list[np.ndarray] | None, j: int, record: Record) -> np.ndarray:
    """Record ``j``'s per-atom features from an adapter's output, checked against its atoms."""
    if out_atoms is None:
        raise RuntimeError("the adapter returned no per-atom features")
    rows = np.asarray(out_atoms[j], dtype=np.float64)
    n_atoms = len(record.atoms) if record.atoms is not None else 0
    if rows.ndim != 2 or rows.shape[0] != n_atoms:
        raise RuntimeError(f"per-atom features of shape {rows.shape} for {n_atoms} atoms")
    return rows


def _embed_rows(adapter: ModelAdapter, records: Sequence[Record], rows: Sequence[int],
                keep_atoms: frozenset[int] = frozenset()) -> _Shard:
    shard = _Shard()

    def keep(indices: Sequence[int]) -> None:
        out = adapter.embed_batch([records[i] for i in indices])
        for j, i in enumerate(indices):
            vector = np.asarray(out.embeddings[j], dtype=np.float32)
            if not np.all(np.isfinite(vector)):
                shard.errors[i] = "non-finite embedding"
                continue
            if i in keep_atoms:
                shard.atoms[i] = _atom_rows(out.atom_embeddings, j, records[i])
            shard.vectors[i] = vector
            if out.energy is not None:
                shard.energies[i] = float(out.energy[j])

    try:
        keep(rows)
    except Exception:  # noqa: BLE001 - one bad structure must not sink the batch
        for i in rows:
            try:
                keep([i])
            except Exception as err:  # noqa: BLE001 - masked with its reason
                shard.errors[i] = _error(err)
    return shard


def _batches(adapter: ModelAdapter, records: Sequence[Record], rows: Sequence[int],
             batch_size: int) -> list[list[int]]:
    """Consecutive batches of at most ``batch_size`` structures and, for 3D models, at most
    ``max_batch_atoms`` atoms (a larger structure goes alone)."""
    limit = adapter.max_batch_atoms or MAX_BATCH_ATOMS
    batches: list[list[int]] = []
    current: list[int] = []
    atoms = 0
    for i in rows:
        size = len(records[i].atoms) if adapter.modality == "atoms" and records[i].atoms else 0
        if current and (len(current) == batch_size or atoms + size > limit):
            batches.append(current)
            current, atoms = [], 0
        current.append(i)
        atoms += size
    if current:
        batches.append(current)
    return batches


def input_problems(adapter: ModelAdapter, records: Sequence[Record]) -> list[str]:
    """Why ``adapter`` cannot take each record ("" where it can): for 3D models first the
    shared :func:`geometry_problem` (over the atoms the model reads: all of them, unless the
    adapter's ``geometry_atoms`` names them), then its own ``check``; a ``check`` that raises
    masks that structure with the error instead of ending the job."""
    reasons = []
    for record in records:
        reason = None
        if adapter.modality == "atoms" and record.atoms is not None:
            try:
                reason = geometry_problem(record.atoms, adapter.geometry_atoms(record.atoms))
            except Exception as err:  # noqa: BLE001 - masked with its reason
                reason = f"geometry check failed: {_error(err)}"
        if not reason:
            try:
                reason = adapter.check(record)
            except Exception as err:  # noqa: BLE001 - masked with its reason
                reason = f"check failed: {_error(err)}"
        reasons.append(reason or "")
    return reasons


def _source_files(adapter: ModelAdapter) -> list[Path]:
    """The matteralign modules an adapter's vectors depend on: the module of its class and of
    each base class, the matteralign modules those draw names from, and this module,
    records.py and the structures reader."""
    modules = {__name__, "matteralign.records", "matteralign.datasets.store"}
    for cls in type(adapter).__mro__:
        if cls.__module__.startswith("matteralign."):
            modules.add(cls.__module__)
            for value in vars(sys.modules[cls.__module__]).values():
                origin = value.__name__ if inspect.ismodule(value) else \
                    getattr(value, "__module__", None)
                if isinstance(origin, str) and origin.startswith("matteralign."):
                    modules.add(origin)
    files = set()
    for name in modules:
        module = sys.modules.get(name)
        source = getattr(module, "__file__", None)
        if source and source.endswith(".py"):
            files.add(Path(source))
    return sorted(files)


def code_sha256(adapter: ModelAdapter) -> str:
    """sha256 of the source of the matteralign modules that compute ``adapter``'s vectors
    (:func:`_source_files`, by file name and bytes)."""
    digest = hashlib.sha256()
    for path in _source_files(adapter):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def packages_sha256() -> str:
    """sha256 of the sorted ``name==version`` lines of every distribution installed in this
    environment: an upgraded package (torch, the model's own) changes it."""
    lines = sorted({f"{(dist.metadata['Name'] or '').lower()}=={dist.version}"
                    for dist in importlib.metadata.distributions()})
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _fingerprint(adapter: ModelAdapter, dataset_sha256: str, options: str,
                 versions: Mapping[str, str]) -> str:
    key = "|".join([adapter.name, adapter.weights_label(), dataset_sha256, str(SHARD_SIZE),
                    options, versions["code_sha256"], versions["packages_sha256"]])
    return hashlib.sha256(key.encode()).hexdigest()


def _stale_parts(parts: Path, fingerprint: str, versions: Mapping[str, str]) -> str | None:
    """Why the finished shards under ``parts`` cannot be resumed from, or None: they were
    computed by another code or package version (or another model, weights, dataset or
    options), so none of them may join this run's rows."""
    for part in sorted(parts.glob("shard-*.h5")):
        try:
            with open_h5(part) as handle:
                attrs = dict(handle.attrs)
        except (OSError, CorruptFileError):
            continue  # an unreadable shard is recomputed on its own
        if attrs.get("fingerprint") == fingerprint:
            continue
        what = {"code_sha256": "code", "packages_sha256": "package"}
        changed = [what[key] for key in versions if attrs.get(key) != versions[key]]
        if changed:
            return f"shards from another {'/'.join(changed)} version: recomputing"
        return "shards of another model, weights, dataset or options: recomputing"
    return None


def atom_structures(records: Sequence[Record], max_atoms_total: int) -> np.ndarray:
    """Which structures' atoms a per-atom file holds (bool [N]): structures taken in the
    order of the sha256 of their ids (a fixed pseudo-random order, the same for every model
    and independent of the dataset's row order), each while the total stays within
    ``max_atoms_total`` atoms. All of them when the dataset fits."""
    chosen = np.zeros(len(records), dtype=bool)
    order = sorted(range(len(records)),
                   key=lambda i: hashlib.sha256(records[i].id.encode()).hexdigest())
    total = 0
    for i in order:
        atoms = records[i].atoms
        size = len(atoms) if atoms is not None else 0
        if size and total + size <= max_atoms_total:
            chosen[i] = True
            total += size
    return chosen


def _atom_file(records: Sequence[Record], result: _Shard, attrs: Mapping[str, Any]
               ) -> AtomEmbeddingFile:
    rows = sorted(result.atoms)
    counts = [len(result.atoms[i]) for i in rows]
    dim = result.atoms[rows[0]].shape[1] if rows else 0
    numbers = [np.asarray(records[i].atoms.numbers, np.int64) for i in rows]  # type: ignore[union-attr]
    return AtomEmbeddingFile(
        embeddings=np.concatenate([result.atoms[i] for i in rows]) if rows
        else np.zeros((0, dim)),
        structure_ids=[records[i].id for i, n in zip(rows, counts, strict=True)
                       for _ in range(n)],
        structure_index=np.repeat(np.array(rows, np.int64), counts),
        atom_index=np.concatenate([np.arange(n) for n in counts]).astype(np.int64) if rows
        else np.zeros(0, np.int64),
        atomic_number=np.concatenate(numbers) if rows else np.zeros(0, np.int64),
        attrs=dict(attrs),
    )


def embed_dataset(
    model: str,
    structures: str | os.PathLike[str],
    output: str | os.PathLike[str],
    weights: str | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    progress: bool = True,
    options: Mapping[str, Any] | None = None,
    sha256: str | None = None,
    atoms_output: str | os.PathLike[str] | None = None,
    max_atoms_total: int = MAX_ATOMS_TOTAL,
) -> EmbeddingFile:
    """Embed every structure of ``structures`` with ``model``; write and return the result.

    Structures the model cannot take (no input of its modality, unsupported elements, a
    failure inside the model) are kept as invalid rows with the reason in ``errors``.
    ``options`` go to the adapter (e.g. ``max_atoms``, ``allow_pickle``,
    ``trust_remote_code``); ``sha256`` pins the weights file: a different file stops the job
    before anything is computed. ``atoms_output``: also write the per-atom features of the
    structures :func:`atom_structures` picks within ``max_atoms_total`` atoms there.
    """
    options = dict(options or {})
    adapter = get_model(model, weights=weights, device=device, **options)
    if atoms_output is not None and not adapter.per_atom:
        raise PerAtomUnavailable(
            f"model {model!r} gives no per-atom features (only interatomic potentials do); "
            "leave it out of the atom-level study (it is not a 3D model with atom features)")
    if max_atoms_total < 1:
        raise ValueError(f"max_atoms_total must be >= 1, got {max_atoms_total}")
    weights_sha256 = check_weights_pin(adapter, sha256)
    adapter.load()
    options_json = json.dumps(options, sort_keys=True, default=str)
    records = read_structures(structures)
    keep_atoms = frozenset(np.flatnonzero(atom_structures(records, max_atoms_total)).tolist()
                           if atoms_output is not None else ())
    atoms_key = f"atoms<={max_atoms_total}" if atoms_output is not None else "pooled"
    data_attrs = read_structure_attrs(structures)
    n = len(records)
    reasons = input_problems(adapter, records)
    todo = [i for i, reason in enumerate(reasons) if not reason]
    batch = batch_size or adapter.batch_size
    parts = Path(f"{output}.parts")
    versions = {"code_sha256": code_sha256(adapter), "packages_sha256": packages_sha256()}
    fingerprint = _fingerprint(adapter, str(data_attrs.get("dataset_sha256", "")),
                               f"{options_json}|{atoms_key}", versions)
    stale = _stale_parts(parts, fingerprint, versions) if parts.is_dir() else None
    if stale:
        print(f"{adapter.name}: {parts}: {stale}", file=sys.stderr)
        shutil.rmtree(parts)
    result = _Shard()
    bar = tqdm(total=len(todo), desc=adapter.name, unit="struct", file=sys.stderr,
               disable=not progress, mininterval=2.0)
    resumed = 0
    for number, start in enumerate(range(0, len(todo), SHARD_SIZE)):
        rows = todo[start:start + SHARD_SIZE]
        part = parts / f"shard-{number:05d}.h5"
        loaded = _Shard.load(part, fingerprint) if part.exists() else None
        if loaded is not None and loaded[1] == rows:
            result.update(loaded[0])
            resumed += len(rows)
            bar.update(len(rows))
            continue
        shard = _Shard()
        for chunk in _batches(adapter, records, rows, batch):
            shard.update(_embed_rows(adapter, records, chunk, keep_atoms))
            bar.update(len(chunk))
        shard.save(part, rows, fingerprint, versions)
        result.update(shard)
    bar.close()
    if resumed:
        print(f"resumed {resumed} structures from {parts}", file=sys.stderr)
    masked = len(result.errors) + sum(1 for r in reasons if r)
    print(f"{adapter.name}: {len(result.vectors)} embedded, {masked} masked", file=sys.stderr)
    if not result.vectors:
        sample = next(iter(result.errors.values()), next((r for r in reasons if r), "none"))
        print(f"warning: {model} embedded none of {n} structures; e.g. {sample}", file=sys.stderr)
    dim = len(next(iter(result.vectors.values()))) if result.vectors else 0
    matrix = np.full((n, dim), np.nan, dtype=np.float32)
    energy = np.full(n, np.nan)
    for i, vector in result.vectors.items():
        matrix[i] = vector
    for i, value in result.energies.items():
        energy[i] = value
    for i, reason in result.errors.items():
        reasons[i] = reason
    valid = np.array([i in result.vectors for i in range(n)])
    attrs = {
        "model": adapter.name,
        "family": adapter.family,
        "modality": adapter.modality,
        "architecture": adapter.architecture,
        "weights": adapter.weights_label(),
        "weights_sha256": weights_sha256,
        "options": options_json,
        "random_init": adapter.is_random_init,
        "layer": adapter.layer,
        "pooling": adapter.pooling,
        "license": adapter.license,
        "device": device,
        "dataset": data_attrs.get("dataset", Path(structures).parent.name),
        "dataset_sha256": data_attrs.get("dataset_sha256", ""),
        "dataset_source": data_attrs.get("source", ""),
        "n_valid": int(valid.sum()),
        "resumed_structures": resumed,
        **versions,
        **provenance(adapter.key_packages),
    }
    embedding = EmbeddingFile(
        ids=[r.id for r in records],
        embeddings=matrix,
        valid=valid,
        errors=reasons,
        energy=energy if adapter.produces_energy else None,
        attrs=attrs,
    )
    if atoms_output is not None:
        atom_file = _atom_file(records, result, {
            **attrs, "max_atoms_total": max_atoms_total,
            "n_structures": len(result.atoms),
            "n_structures_selected": len(keep_atoms),
            "selection": "structures in sha256(id) order while the atoms total <= "
                         "max_atoms_total; those the model embedded",
        })
        write_atom_embeddings(atoms_output, atom_file)
        print(f"{adapter.name}: {len(atom_file.structure_ids)} atoms of {len(result.atoms)} "
              f"structures -> {atoms_output}", file=sys.stderr)
    write_embeddings(output, embedding)
    shutil.rmtree(parts, ignore_errors=True)
    return embedding
