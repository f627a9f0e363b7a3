"""HDF5 files of the study: prepared structures, embeddings and alignment matrices.

Every writer goes through :func:`atomic_h5`, so a killed job never leaves a half-written file
under the final name, and every file records a hash of its datasets (attribute
``content_sha256``) that the readers check, so a truncated or overwritten file is refused by
name instead of being computed with. The layouts are documented in ``docs/formats.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from matteralign.errors import MatterAlignError, MissingInputError

STR = h5py.string_dtype(encoding="utf-8")
#: the attribute holding the hash of all datasets of a file (see :func:`content_sha256`)
CONTENT_HASH = "content_sha256"


class CorruptFileError(MatterAlignError, ValueError):
    """A study file that cannot be read, or whose datasets differ from what was written."""


def damaged(path: str | os.PathLike[str], why: str) -> CorruptFileError:
    return CorruptFileError(f"{path} is damaged ({why}); delete it and rerun snakemake to "
                            "rebuild it")


def current_umask() -> int:
    """The process umask (read by setting and restoring it: not thread-safe, but the study's
    writers run one per process)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    The file gets the permissions a plain ``open()`` would give it (0o666 less the umask),
    not mkstemp's private 0o600, so results stay readable to the group that shares them."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike[str]) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing that appears under ``path`` only once closed cleanly,
    with the hash of everything written into it as attribute ``content_sha256``."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as handle:
            yield handle
            names = dataset_names(handle)
            handle.attrs[CONTENT_HASH] = content_sha256((n, handle[n][()]) for n in names)


def dataset_names(handle: h5py.Group) -> list[str]:
    """Paths of every dataset in the file (groups descended), sorted."""
    names: list[str] = []
    handle.visititems(lambda name, obj: names.append(name)
                      if isinstance(obj, h5py.Dataset) else None)
    return sorted(names)


def _canonical(array: np.ndarray) -> np.ndarray:
    """Strings as ``str`` whatever h5py returns them as (bytes, numpy bytes), so the hash of
    what was written equals the hash of what is read back, under any h5py version."""
    if array.dtype.kind not in "OSU":
        return array
    values = [v.decode() if isinstance(v, bytes) else str(v) for v in array.ravel()]
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(array.shape)


def content_sha256(datasets: Iterable[tuple[str, np.ndarray]]) -> str:
    """sha256 over (path, :func:`sha256_arrays` of the data) of datasets in the given
    (sorted) order: what a file's ``content_sha256`` attribute records."""
    digest = hashlib.sha256()
    for name, array in datasets:
        digest.update(name.encode() + b"\0")
        digest.update(sha256_arrays(_canonical(np.asarray(array))).encode())
    return digest.hexdigest()


@contextlib.contextmanager
def open_h5(path: str | os.PathLike[str]) -> Iterator[h5py.File]:
    """Open a study file for reading; one HDF5 cannot open raises :class:`CorruptFileError`
    naming it (a missing file :class:`MissingInputError`, a ``FileNotFoundError``)."""
    if not os.path.exists(path):
        raise MissingInputError(f"{path} does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError:
        raise damaged(path, "not a readable HDF5 file: truncated?") from None
    with handle:
        yield handle


def load_verified(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every dataset (by path) and the attributes of a study file, after checking its
    ``content_sha256`` (files written before it existed have none and are accepted)."""
    with open_h5(path) as handle:
        try:
            data = {name: handle[name][()] for name in dataset_names(handle)}
        except (OSError, RuntimeError):
            raise damaged(path, "unreadable data: truncated?") from None
        attrs = read_attrs(handle)
    expected = attrs.get(CONTENT_HASH)
    if expected and content_sha256(sorted(data.items())) != expected:
        raise damaged(path, "content hash mismatch")
    return data, attrs


def verify_file(path: str | os.PathLike[str]) -> None:
    """Raise :class:`CorruptFileError` if ``path`` is unreadable or its datasets differ from
    what its writer hashed; return quietly for a sound file (or one without a hash)."""
    load_verified(path)


def require(data: Mapping[str, np.ndarray], name: str, path: str | os.PathLike[str]) -> np.ndarray:
    """``data[name]``, or :class:`CorruptFileError` when the file lacks that dataset."""
    if name not in data:
        raise damaged(path, f"dataset {name!r} missing")
    return data[name]


def write_columns(path: str | os.PathLike[str], text: Mapping[str, Sequence[str]],
                  arrays: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> None:
    """A flat study file (performance.h5, probes.h5, ...): string columns, numeric arrays and
    attributes, written atomically with its content hash."""
    with atomic_h5(path) as handle:
        for name, values in text.items():
            handle.create_dataset(name, data=strings(values))
        for name, array in arrays.items():
            handle.create_dataset(name, data=array)
        set_attrs(handle, attrs)


def read_columns(path: str | os.PathLike[str], text: Sequence[str], arrays: Sequence[str]
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The named string columns (decoded) and arrays of a flat study file, and its attributes,
    after checking its content hash; a missing dataset raises :class:`CorruptFileError`."""
    data, attrs = load_verified(path)
    columns: dict[str, Any] = {name: read_strings(require(data, name, path)) for name in text}
    columns.update({name: require(data, name, path) for name in arrays})
    return columns, attrs


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


def attr_flag(value: Any) -> bool | None:
    """A boolean attribute: a real bool as written now, or the strings "True"/"False" that
    older files hold; None when missing or empty (a per-model metric's direction)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    text = str(value).strip().lower() if value is not None else ""
    return True if text in ("true", "1") else False if text in ("false", "0") else None


def attr_flags(values: Any, n: int) -> list[bool]:
    """A per-model boolean attribute (e.g. ``random_init``) as ``n`` bools, False where the
    attribute has no entry."""
    given = [] if values is None or isinstance(values, str) else list(values)
    return [bool(attr_flag(given[i])) if i < len(given) else False for i in range(n)]


def strings(values: Sequence[str]) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=STR)


def read_strings(dataset: h5py.Dataset | np.ndarray) -> list[str]:
    values = dataset[()] if isinstance(dataset, h5py.Dataset) else dataset
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


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
    """Read an embedding file; a damaged one raises :class:`CorruptFileError`."""
    data, attrs = load_verified(path)
    return EmbeddingFile(
        ids=read_strings(require(data, "ids", path)),
        embeddings=require(data, "embeddings", path),
        valid=require(data, "valid", path).astype(bool),
        errors=read_strings(require(data, "errors", path)),
        energy=data.get("energy"),
        attrs=attrs,
    )


# ---------------------------------------------------------------------------------------------
# Atom embeddings: results/{dataset}/atoms/{model}.h5
# ---------------------------------------------------------------------------------------------


@dataclass
class AtomEmbeddingFile:
    """In-memory form of one per-atom embedding file: one row per atom of the embedded
    structures, in structure order and within a structure in atom order."""

    embeddings: np.ndarray  # float64 [A, D]: the pooled file's layer before pooling
    structure_ids: list[str]  # [A] the id of each row's structure
    structure_index: np.ndarray  # int64 [A] its row in structures.h5
    atom_index: np.ndarray  # int64 [A] the atom's index within its structure
    atomic_number: np.ndarray  # int64 [A]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return str(self.attrs.get("model", ""))

    @property
    def elements(self) -> list[str]:
        from ase.data import chemical_symbols

        return [chemical_symbols[int(z)] for z in self.atomic_number]


def write_atom_embeddings(path: str | os.PathLike[str], result: AtomEmbeddingFile) -> None:
    n = len(result.structure_ids)
    columns = (result.embeddings, result.structure_index, result.atom_index,
               result.atomic_number)
    if any(len(column) != n for column in columns):
        raise ValueError(f"atom embedding arrays disagree on the number of atoms for {path}")
    with atomic_h5(path) as handle:
        handle.create_dataset("embeddings", data=np.asarray(result.embeddings, np.float64))
        handle.create_dataset("structure_ids", data=strings(result.structure_ids))
        for name in ("structure_index", "atom_index", "atomic_number"):
            handle.create_dataset(name, data=np.asarray(getattr(result, name), np.int64))
        handle.create_dataset("element", data=strings(result.elements))
        set_attrs(handle, {**result.attrs, "n_atoms": n,
                           "dim": int(result.embeddings.shape[1]) if n else 0})


def read_atom_embeddings(path: str | os.PathLike[str]) -> AtomEmbeddingFile:
    """Read a per-atom embedding file; a damaged one raises :class:`CorruptFileError`."""
    data, attrs = load_verified(path)
    return AtomEmbeddingFile(
        embeddings=require(data, "embeddings", path),
        structure_ids=read_strings(require(data, "structure_ids", path)),
        structure_index=require(data, "structure_index", path).astype(np.int64),
        atom_index=require(data, "atom_index", path).astype(np.int64),
        atomic_number=require(data, "atomic_number", path).astype(np.int64),
        attrs=attrs,
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


def _put_metric(group: h5py.Group, result: MetricFile) -> None:
    if (result.matrix is None) == (result.values is None):
        raise ValueError("a metric file holds exactly one of `matrix` or `values`")
    if result.matrix is not None:
        group.create_dataset("matrix", data=np.asarray(result.matrix, dtype=np.float64))
    else:
        group.create_dataset("values", data=np.asarray(result.values, dtype=np.float64))
    group.create_dataset("models", data=strings(result.models))
    for name, array in result.extra.items():
        group.create_dataset(name, data=np.asarray(array, dtype=np.float64))
    set_attrs(group, {**result.attrs, "metric": result.metric})


def write_metric(path: str | os.PathLike[str], result: MetricFile) -> None:
    with atomic_h5(path) as handle:
        _put_metric(handle, result)


def write_metric_groups(path: str | os.PathLike[str], results: Mapping[str, MetricFile],
                        attrs: Mapping[str, Any]) -> None:
    """Several results of one metric in one file, one HDF5 group each (e.g. one per element:
    ``results/{dataset}/atoms/by_element/{metric}.h5``), laid out like a metric file."""
    with atomic_h5(path) as handle:
        for name, result in results.items():
            _put_metric(handle.create_group(name), result)
        set_attrs(handle, {**attrs, "groups": list(results)})


def read_metric_groups(path: str | os.PathLike[str]) -> dict[str, MetricFile]:
    """The results of :func:`write_metric_groups`, by group name, in the order written."""
    data, attrs = load_verified(path)
    names = [str(name) for name in attrs.get("groups", [])]
    with open_h5(path) as handle:
        group_attrs = {name: read_attrs(handle[name]) for name in names}
    return {name: _metric_from({key.split("/", 1)[1]: value for key, value in data.items()
                                if key.startswith(f"{name}/")}, group_attrs[name], path)
            for name in names}


def read_metric(path: str | os.PathLike[str]) -> MetricFile:
    """Read a metric file; a damaged one raises :class:`CorruptFileError`. Its boolean
    attributes come back as bools, also from older files that held them as strings."""
    data, attrs = load_verified(path)
    return _metric_from(data, attrs, path)


def _metric_from(data: dict[str, np.ndarray], attrs: dict[str, Any],
                 path: str | os.PathLike[str]) -> MetricFile:
    extra = {name: array for name, array in data.items()
             if name not in ("matrix", "values", "models") and "/" not in name}
    models = read_strings(require(data, "models", path))
    for key in ("symmetric", "higher_is_aligned"):
        if key in attrs:
            attrs[key] = attr_flag(attrs[key])
    if "random_init" in attrs:
        attrs["random_init"] = attr_flags(attrs["random_init"], len(models))
    return MetricFile(
        metric=str(attrs.get("metric", "")),
        models=models,
        matrix=data.get("matrix"),
        values=data.get("values"),
        extra=extra,
        attrs=attrs,
    )
