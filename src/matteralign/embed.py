"""Run one model over one prepared dataset and write its embedding file."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from matteralign.datasets.store import read_structure_attrs, read_structures
from matteralign.io import EmbeddingFile, sha256_file, write_embeddings
from matteralign.models import ModelAdapter, get_model
from matteralign.provenance import provenance
from matteralign.records import Record


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".strip()[:500]


def _run_batches(
    adapter: ModelAdapter, records: Sequence[Record], todo: np.ndarray, batch_size: int,
    progress: bool,
) -> tuple[dict[int, np.ndarray], dict[int, float], dict[int, str]]:
    vectors: dict[int, np.ndarray] = {}
    energies: dict[int, float] = {}
    errors: dict[int, str] = {}

    def keep(indices: Sequence[int]) -> None:
        out = adapter.embed_batch([records[i] for i in indices])
        for j, i in enumerate(indices):
            vector = np.asarray(out.embeddings[j], dtype=np.float32)
            if not np.all(np.isfinite(vector)):
                errors[i] = "non-finite embedding"
                continue
            vectors[i] = vector
            if out.energy is not None:
                energies[i] = float(out.energy[j])

    bar = tqdm(total=len(todo), desc=f"{adapter.name}", unit="struct", file=sys.stderr,
               disable=not progress, mininterval=2.0)
    for start in range(0, len(todo), batch_size):
        batch = [int(i) for i in todo[start:start + batch_size]]
        try:
            keep(batch)
        except Exception:  # noqa: BLE001 - one bad structure must not sink the batch
            for i in batch:
                try:
                    keep([i])
                except Exception as err:  # noqa: BLE001 - masked with its reason
                    errors[i] = _error(err)
        bar.update(len(batch))
    bar.close()
    return vectors, energies, errors


def embed_dataset(
    model: str,
    structures: str | os.PathLike[str],
    output: str | os.PathLike[str],
    weights: str | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    progress: bool = True,
) -> EmbeddingFile:
    """Embed every structure of ``structures`` with ``model``; write and return the result.

    Structures the model cannot take (no input of its modality, unsupported elements, a
    failure inside the model) are kept as invalid rows with the reason in ``errors``.
    """
    adapter = get_model(model, weights=weights, device=device).load()
    records = read_structures(structures)
    data_attrs = read_structure_attrs(structures)
    n = len(records)
    reasons = [adapter.check(r) or "" for r in records]
    todo = np.array([i for i, reason in enumerate(reasons) if not reason], dtype=np.int64)
    vectors, energies, errors = _run_batches(
        adapter, records, todo, batch_size or adapter.batch_size, progress
    )
    if not vectors:
        dim = 0
        sample = next(iter(errors.values()), next((r for r in reasons if r), "no structures"))
        print(f"warning: {model} embedded none of {n} structures; e.g. {sample}", file=sys.stderr)
    else:
        dim = len(next(iter(vectors.values())))
    matrix = np.full((n, dim), np.nan, dtype=np.float32)
    energy = np.full(n, np.nan)
    for i, vector in vectors.items():
        matrix[i] = vector
    for i, value in energies.items():
        energy[i] = value
    for i, reason in errors.items():
        reasons[i] = reason
    valid = np.array([i in vectors for i in range(n)])
    weights_file = adapter.weights_path()
    attrs = {
        "model": adapter.name,
        "family": adapter.family,
        "modality": adapter.modality,
        "architecture": adapter.architecture,
        "weights": adapter.weights_label(),
        "weights_sha256": sha256_file(weights_file) if weights_file else "",
        "random_init": adapter.weights_label() == "random-init",
        "layer": adapter.layer,
        "pooling": adapter.pooling,
        "license": adapter.license,
        "device": device,
        "dataset": data_attrs.get("dataset", Path(structures).parent.name),
        "dataset_sha256": data_attrs.get("dataset_sha256", ""),
        "dataset_source": data_attrs.get("source", ""),
        "n_valid": int(valid.sum()),
        **provenance(adapter.key_packages),
    }
    result = EmbeddingFile(
        ids=[r.id for r in records],
        embeddings=matrix,
        valid=valid,
        errors=reasons,
        energy=energy if adapter.produces_energy else None,
        attrs=attrs,
    )
    write_embeddings(output, result)
    return result
