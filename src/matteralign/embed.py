"""Run one model over one prepared dataset and write its embedding file.

Long runs are resumable: the structures are embedded in shards, each finished shard is saved
atomically under ``{output}.parts/``, and a restarted job (a requeued SLURM job, a killed
laptop run) loads the finished shards of the same model, weights and dataset and continues
from there. The parts are removed once the final file is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from matteralign.datasets.store import read_structure_attrs, read_structures
from matteralign.io import (
    EmbeddingFile,
    atomic_h5,
    read_strings,
    strings,
    write_embeddings,
)
from matteralign.models import ModelAdapter, get_model
from matteralign.models.base import check_weights_pin
from matteralign.provenance import provenance
from matteralign.records import Record

#: structures per resumable shard (MATTERALIGN_SHARD_SIZE overrides it, e.g. for tests of
#: cancelled cluster jobs; it is part of the shards' fingerprint)
SHARD_SIZE = int(os.environ.get("MATTERALIGN_SHARD_SIZE") or 256)
#: atoms per forward pass for 3D models (adapters may set ``max_batch_atoms``): a batch of
#: sixteen 1,000-atom proteins would need tens of GB for an equivariant network
MAX_BATCH_ATOMS = 2048


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".strip()[:500]


class _Shard:
    """What one shard produced: row index -> vector / energy / error."""

    def __init__(self) -> None:
        self.vectors: dict[int, np.ndarray] = {}
        self.energies: dict[int, float] = {}
        self.errors: dict[int, str] = {}

    def update(self, other: _Shard) -> None:
        self.vectors.update(other.vectors)
        self.energies.update(other.energies)
        self.errors.update(other.errors)

    def save(self, path: Path, indices: Sequence[int], fingerprint: str) -> None:
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
            handle.attrs["fingerprint"] = fingerprint

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> tuple[_Shard, list[int]] | None:
        try:
            with h5py.File(path, "r") as handle:
                if handle.attrs.get("fingerprint") != fingerprint:
                    return None
                rows = handle["indices"][()].tolist()
                vectors, energies = handle["vectors"][()], handle["energies"][()]
                errors, done = read_strings(handle["errors"]), handle["done"][()]
        except (OSError, KeyError):
            return None  # unreadable part: recompute it
        shard = cls()
        for j, i in enumerate(rows):
            if done[j]:
                shard.vectors[i] = vectors[j]
                if np.isfinite(energies[j]):
                    shard.energies[i] = float(energies[j])
            else:
                shard.errors[i] = errors[j]
        return shard, rows


def _embed_rows(adapter: ModelAdapter, records: Sequence[Record], rows: Sequence[int]) -> _Shard:
    shard = _Shard()

    def keep(indices: Sequence[int]) -> None:
        out = adapter.embed_batch([records[i] for i in indices])
        for j, i in enumerate(indices):
            vector = np.asarray(out.embeddings[j], dtype=np.float32)
            if not np.all(np.isfinite(vector)):
                shard.errors[i] = "non-finite embedding"
                continue
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
    limit = getattr(adapter, "max_batch_atoms", None) or MAX_BATCH_ATOMS
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


def _fingerprint(adapter: ModelAdapter, dataset_sha256: str, options: str) -> str:
    key = "|".join([adapter.name, adapter.weights_label(), dataset_sha256, str(SHARD_SIZE),
                    options])
    return hashlib.sha256(key.encode()).hexdigest()


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
) -> EmbeddingFile:
    """Embed every structure of ``structures`` with ``model``; write and return the result.

    Structures the model cannot take (no input of its modality, unsupported elements, a
    failure inside the model) are kept as invalid rows with the reason in ``errors``.
    ``options`` go to the adapter (e.g. ``max_atoms``, ``allow_pickle``,
    ``trust_remote_code``); ``sha256`` pins the weights file: a different file stops the job
    before anything is computed.
    """
    options = dict(options or {})
    adapter = get_model(model, weights=weights, device=device, **options)
    weights_sha256 = check_weights_pin(adapter, sha256)
    adapter.load()
    options_json = json.dumps(options, sort_keys=True, default=str)
    records = read_structures(structures)
    data_attrs = read_structure_attrs(structures)
    n = len(records)
    reasons = [adapter.check(r) or "" for r in records]
    todo = [i for i, reason in enumerate(reasons) if not reason]
    batch = batch_size or adapter.batch_size
    parts = Path(f"{output}.parts")
    fingerprint = _fingerprint(adapter, str(data_attrs.get("dataset_sha256", "")),
                               options_json)
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
            shard.update(_embed_rows(adapter, records, chunk))
            bar.update(len(chunk))
        shard.save(part, rows, fingerprint)
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
        "random_init": adapter.weights_label() == "random-init",
        "layer": adapter.layer,
        "pooling": adapter.pooling,
        "license": adapter.license,
        "device": device,
        "dataset": data_attrs.get("dataset", Path(structures).parent.name),
        "dataset_sha256": data_attrs.get("dataset_sha256", ""),
        "dataset_source": data_attrs.get("source", ""),
        "n_valid": int(valid.sum()),
        "resumed_structures": resumed,
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
    write_embeddings(output, embedding)
    shutil.rmtree(parts, ignore_errors=True)
    return embedding
