"""HDF5 files of the study: prepared structures, embeddings and alignment matrices.

Every writer goes through :func:`atomic_h5`, so a killed job never leaves a half-written file
under the final name. The layouts are documented in ``docs/formats.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

STR = h5py.string_dtype(encoding="utf-8")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike[str]) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing that appears under ``path`` only once closed cleanly."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            yield handle


def set_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any]) -> None:
    """Store attributes, turning None into "" and sequences of str into utf-8 arrays."""
    for key, value in attrs.items():
        if value is None:
            value = ""
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            value = np.array(value, dtype=STR)
        elif isinstance(value, Mapping):
            value = repr(dict(value))
        obj.attrs[key] = value


def read_attrs(obj: h5py.HLObject) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.ndarray) and value.dtype.kind in "OS":
            value = [v.decode() if isinstance(v, bytes) else str(v) for v in value]
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def strings(values: Sequence[str]) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=STR)


def read_strings(dataset: h5py.Dataset) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in dataset[()]]


def sha256_arrays(*arrays: np.ndarray) -> str:
    """A content hash of arrays (dtype, shape and bytes), independent of file layout."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.asarray(array)
        if array.dtype.kind in "OUS":
            data = "\x1f".join(str(v) for v in array.ravel()).encode()
            digest.update(b"str")
        else:
            data = np.ascontiguousarray(array).tobytes()
            digest.update(array.dtype.str.encode())
        digest.update(repr(array.shape).encode())
        digest.update(data)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes; of a directory (e.g. a Hugging Face checkpoint folder), the
    sha256 of its sorted ``relative/path  file-sha256`` lines, so one value pins the folder."""
    if os.path.isdir(path):
        root = Path(path)
        lines = [f"{f.relative_to(root).as_posix()}  {sha256_file(f)}\n"
                 for f in sorted(root.rglob("*")) if f.is_file()]
        return hashlib.sha256("".join(lines).encode()).hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Embeddings: results/{dataset}/embeddings/{model}.h5
# ---------------------------------------------------------------------------------------------


@dataclass
class EmbeddingFile:
    """In-memory form of one embedding file."""

    ids: list[str]
    embeddings: np.ndarray  # float32 [N, D]; rows of invalid structures are NaN
    valid: np.ndarray  # bool [N]
    errors: list[str]  # "" where valid
    energy: np.ndarray | None = None  # float64 [N], NaN where unavailable
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return str(self.attrs.get("model", ""))


def write_embeddings(path: str | os.PathLike[str], result: EmbeddingFile) -> None:
    n = len(result.ids)
    if result.embeddings.shape[0] != n or result.valid.shape != (n,) or len(result.errors) != n:
        raise ValueError(f"embedding arrays disagree on N for {path}")
    with atomic_h5(path) as handle:
        handle.create_dataset("embeddings", data=result.embeddings.astype(np.float32))
        handle.create_dataset("ids", data=strings(result.ids))
        handle.create_dataset("valid", data=result.valid.astype(bool))
        handle.create_dataset("errors", data=strings(result.errors))
        if result.energy is not None:
            handle.create_dataset("energy", data=np.asarray(result.energy, dtype=np.float64))
        set_attrs(handle, {**result.attrs, "n": n, "dim": int(result.embeddings.shape[1])})


def read_embeddings(path: str | os.PathLike[str]) -> EmbeddingFile:
    with h5py.File(path, "r") as handle:
        return EmbeddingFile(
            ids=read_strings(handle["ids"]),
            embeddings=handle["embeddings"][()],
            valid=handle["valid"][()].astype(bool),
            errors=read_strings(handle["errors"]),
            energy=handle["energy"][()] if "energy" in handle else None,
            attrs=read_attrs(handle),
        )


# ---------------------------------------------------------------------------------------------
# Alignment results: results/{dataset}/{metric}.h5
# ---------------------------------------------------------------------------------------------


@dataclass
class MetricFile:
    metric: str
    models: list[str]
    matrix: np.ndarray | None = None  # float64 [M, M] for pairwise metrics
    values: np.ndarray | None = None  # float64 [M] for per-model metrics
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. bootstrap intervals
    attrs: dict[str, Any] = field(default_factory=dict)


def write_metric(path: str | os.PathLike[str], result: MetricFile) -> None:
    if (result.matrix is None) == (result.values is None):
        raise ValueError("a metric file holds exactly one of `matrix` or `values`")
    with atomic_h5(path) as handle:
        if result.matrix is not None:
            handle.create_dataset("matrix", data=np.asarray(result.matrix, dtype=np.float64))
        else:
            handle.create_dataset("values", data=np.asarray(result.values, dtype=np.float64))
        handle.create_dataset("models", data=strings(result.models))
        for name, array in result.extra.items():
            handle.create_dataset(name, data=np.asarray(array, dtype=np.float64))
        set_attrs(handle, {**result.attrs, "metric": result.metric})


def read_metric(path: str | os.PathLike[str]) -> MetricFile:
    with h5py.File(path, "r") as handle:
        attrs = read_attrs(handle)
        extra = {
            name: handle[name][()]
            for name in handle
            if name not in ("matrix", "values", "models") and isinstance(handle[name], h5py.Dataset)
        }
        return MetricFile(
            metric=str(attrs.get("metric", "")),
            models=read_strings(handle["models"]),
            matrix=handle["matrix"][()] if "matrix" in handle else None,
            values=handle["values"][()] if "values" in handle else None,
            extra=extra,
            attrs=attrs,
        )
