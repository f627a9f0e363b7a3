"""The ladder's QM9 sets: test, validation and the training order, in one file.

The pool is every QM9 molecule of ANI-1x's elements (H, C, N, O) that is not a study
structure. One seeded permutation of the pool gives, in order, the test set, the validation
set and the training order; the training set of a rung of size n is the first n of that
order, so the rungs' sets are nested. Each set is a group of padded arrays (``ids``,
``numbers`` [n, A] with 0 = padding, ``coordinates`` [n, A, 3] in Angstrom as float32, the
precision the ANI networks take, ``energies`` [n] = QM9's U0 in Hartree, torchani's unit).
With the held-out design, group ``train_no{X}`` is the training order of the rungs trained
without element X: the molecules of the same permutation, after the test and validation sets,
that contain no X (their validation set is the validation set's molecules without X). Group
``study`` records each study structure's elements, from which held-in and held-out are read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import h5py
import numpy as np

from matteralign.io import atomic_h5, read_strings, set_attrs, sha256_arrays, strings
from matteralign.training.ladder import held_out_element, training_sizes

SETS = ("test", "validation", "train")
SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O"}
NUMBERS = {s: z for z, s in SYMBOLS.items()}


def pool_rows(table: Any, study_ids: Iterable[str]) -> np.ndarray:
    """Rows of the QM9 table that may be trained on: H/C/N/O only, not a study structure."""
    excluded = [int(i.split("gdb_", 1)[1]) for i in study_ids]
    index = table["Index"].to_numpy()
    hcno = ~table["Elements"].str.contains("'F'", regex=False).to_numpy()
    return np.flatnonzero(hcno & ~np.isin(index, excluded))


def has_element(table: Any, rows: np.ndarray, element: str) -> np.ndarray:
    return table["Elements"].str.contains(repr(element), regex=False).to_numpy()[rows]


def split(table: Any, study_ids: Sequence[str], ladder: Mapping[str, Any]
          ) -> dict[str, np.ndarray]:
    """set name -> QM9 rows: ``test``, ``validation``, ``train`` (the training order) and,
    with the held-out design, ``train_no{X}``."""
    rows = pool_rows(table, study_ids)
    order = rows[np.random.default_rng(int(ladder["split_seed"])).permutation(len(rows))]
    n_test, n_val = int(ladder["test"]), int(ladder["validation"])
    largest = max(training_sizes(ladder))
    if n_test + n_val + largest > len(order):
        raise ValueError(f"ladder needs {n_test + n_val + largest} molecules, the pool has "
                         f"{len(order)}")
    out = {"test": order[:n_test], "validation": order[n_test:n_test + n_val],
           "train": order[n_test + n_val:n_test + n_val + largest]}
    element = held_out_element(ladder)
    if element:
        rest = order[n_test + n_val:]
        free = rest[~has_element(table, rest, element)]
        wanted = max(training_sizes(ladder, element))
        if wanted > len(free):
            raise ValueError(f"ladder.held_out.sizes: {wanted} molecules without {element} "
                             f"asked, the pool has {len(free)}")
        out[f"train_no{element}"] = free[:wanted]
    return out


def molecules(table: Any, rows: Sequence[int]) -> dict[str, np.ndarray]:
    """The padded arrays of the molecules ``rows`` of the QM9 table."""
    from matteralign.datasets.qm9 import parse_coordinates, parse_elements

    counts = table["N_atoms"].to_numpy()[rows].astype(int)
    width = int(counts.max())
    numbers = np.zeros((len(rows), width), dtype=np.int8)
    coords = np.zeros((len(rows), width, 3), dtype=np.float32)
    elements, xyz = table["Elements"].to_numpy(), table["XYZ_Ang"].to_numpy()
    for i, (row, n) in enumerate(zip(rows, counts, strict=True)):
        numbers[i, :n] = [NUMBERS[s] for s in parse_elements(elements[row], n)]
        coords[i, :n] = parse_coordinates(xyz[row], n)
    ids = [f"qm9:gdb_{int(i)}" for i in table["Index"].to_numpy()[rows]]
    return {"ids": np.asarray(ids), "numbers": numbers, "coordinates": coords,
            "energies": table["InternalEnergy_0K_au"].to_numpy()[rows].astype(np.float64)}


def write_sets(ladder: Mapping[str, Any], study_ids: Sequence[str],
               path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """The ladder's sets into ``path`` (with the split seed and the hash of the study ids
    they exclude); returns set name -> ids."""
    from matteralign.datasets.qm9 import _table, data_dir

    table = _table(str(data_dir()))
    sets = split(table, study_ids, ladder)
    out: dict[str, list[str]] = {}
    with atomic_h5(path) as handle:
        for name in sets:
            arrays = molecules(table, sets[name])
            group = handle.create_group(name)
            group["ids"] = strings(list(arrays.pop("ids")))
            for key, value in arrays.items():
                group[key] = value
            out[name] = read_strings(group["ids"])
        overlap = set(study_ids) & {i for ids in out.values() for i in ids}
        if overlap:  # pool_rows excludes them: a failure here is a bug, never a result
            raise AssertionError(f"study structures in a ladder set: {sorted(overlap)[:5]}")
        handle["study/ids"] = strings(list(study_ids))
        handle["study/elements"] = strings(study_elements(table, study_ids))
        set_attrs(handle, {"split_seed": int(ladder["split_seed"]),
                           "n_study_ids": len(study_ids),
                           "study_ids_sha256": sha256_arrays(strings(sorted(study_ids)))})
    return out


def study_elements(table: Any, study_ids: Sequence[str]) -> list[str]:
    """Each study structure's elements, as one string of sorted symbols (e.g. "CHNO")."""
    index = {int(i): row for row, i in enumerate(table["Index"].to_numpy())}
    elements = table["Elements"].to_numpy()
    out = []
    for mol_id in study_ids:
        row = index[int(mol_id.split("gdb_", 1)[1])]
        out.append("".join(sorted({s.strip(" '") for s in elements[row].strip("[]").split(",")})))
    return out


def read_study_elements(path: str | os.PathLike[str]) -> dict[str, str]:
    """study structure id -> its elements (see :func:`study_elements`)."""
    with h5py.File(path, "r") as handle:
        return dict(zip(read_strings(handle["study/ids"]),
                        read_strings(handle["study/elements"]), strict=True))


def read_sets(path: str | os.PathLike[str], n_train: int | None = None, excluded: str = ""
              ) -> dict[str, list[dict[str, Any]]]:
    """set name -> molecules (``id``, ``species`` symbols, ``coordinates`` [n, 3] float32,
    ``energies`` Hartree); the training set cut to its first ``n_train``. ``excluded``: the
    sets of a rung trained without that element (its training order; validation without it;
    the whole test set, held-in and held-out molecules both)."""
    out: dict[str, list[dict[str, Any]]] = {}
    with h5py.File(path, "r") as handle:
        for name in SETS:
            source = f"train_no{excluded}" if name == "train" and excluded else name
            if source not in handle:
                raise ValueError(f"{path} has no {source!r}: it was built without "
                                 f"ladder.held_out.element {excluded}; rebuild the ladder's "
                                 "sets")
            group = handle[source]
            stop = n_train if name == "train" else None
            ids = read_strings(group["ids"])[:stop]
            numbers = group["numbers"][:stop]
            coords = group["coordinates"][:stop]
            energies = group["energies"][:stop]
            if name == "train" and n_train is not None and len(ids) < n_train:
                raise ValueError(f"{path}: {len(ids)} training molecules, a rung asks for "
                                 f"{n_train}; rebuild the ladder's sets")
            mols = []
            for i, mol_id in enumerate(ids):
                n = int((numbers[i] > 0).sum())
                species = [SYMBOLS[int(z)] for z in numbers[i, :n]]
                if name == "validation" and excluded in species:
                    continue
                mols.append({"id": mol_id, "species": species,
                             "coordinates": coords[i, :n], "energies": float(energies[i])})
            out[name] = mols
    return out
