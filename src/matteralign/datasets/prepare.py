"""Subsample a registered dataset and write its structures file."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matteralign.datasets.base import get_dataset
from matteralign.datasets.store import write_structures
from matteralign.provenance import provenance


def prepare_dataset(name: str, n: int, seed: int, output: str | os.PathLike[str],
                    options: Mapping[str, Any] | None = None) -> str:
    """Write ``n`` structures of dataset ``name`` (seeded subsample); return its hash."""
    started = time.time()
    dataset = get_dataset(name, **dict(options or {}))
    records = dataset.load(n, seed)
    if len(records) != n:
        raise ValueError(f"dataset {name!r} returned {len(records)} structures, expected {n}")
    attrs = {
        "dataset": name,
        "description": dataset.description,
        "kind": dataset.kind,
        "source": dataset.source,
        "standin": dataset.standin,
        "modalities": list(dataset.modalities),
        "properties_description": json.dumps(dataset.properties, sort_keys=True),
        "options": json.dumps(dict(options or {}), sort_keys=True),
        "seed": seed,
        "size_available": dataset.size(),
        **provenance(("pandas", "rdkit", "ase")),
    }
    digest = write_structures(output, records, attrs)
    write_ids(Path(output).parent / "ids.txt", [r.id for r in records], name, seed, digest)
    print(f"{name}: wrote {n} structures to {output} in {time.time() - started:.1f} s "
          f"(sha256 {digest[:12]})")
    return digest


def write_ids(path: str | os.PathLike[str], ids: Sequence[str], dataset: str, seed: int,
              digest: str) -> None:
    """The sampled ids, one a line, under a header naming the dataset, seed and hash.

    A plain-text twin of structures.h5's ``ids``: diffable, and readable without h5py.
    """
    header = f"# dataset={dataset} n={len(ids)} seed={seed} dataset_sha256={digest}\n"
    tmp = Path(f"{path}.tmp")
    tmp.write_text(header + "".join(f"{i}\n" for i in ids))
    tmp.replace(path)  # atomic: a killed job never leaves a half-written list


def read_ids(path: str | os.PathLike[str]) -> tuple[list[str], dict[str, str]]:
    """(ids, header fields) of an ids.txt."""
    lines = Path(path).read_text().splitlines()
    header = dict(item.split("=", 1) for item in lines[0].lstrip("# ").split())
    return [line for line in lines[1:] if line], header
