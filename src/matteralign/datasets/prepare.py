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
                    options: Mapping[str, Any] | None = None,
                    checks: Mapping[str, Any] | None = None) -> str:
    """Write ``n`` structures of dataset ``name`` (seeded subsample); return its hash.

    ``checks`` (the study's :func:`~matteralign.config.prepare_checks` entry for ``name``):
    first refuse a subsample whose valid rows or atoms cannot feed the metrics, before
    anything is written (so before any embedding)."""
    started = time.time()
    dataset = get_dataset(name, **dict(options or {}))
    records = dataset.load(n, seed)
    if len(records) != n:
        raise ValueError(f"dataset {name!r} returned {len(records)} structures, expected {n}")
    if checks:
        from matteralign.datasets.checks import StudyCheckError, study_problem

        if (problem := study_problem(name, records, checks)) is not None:
            raise StudyCheckError(problem)
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
    """(ids, header fields) of an ids.txt: lines starting with ``#`` are comments (the first
    one, as :func:`write_ids` writes it, holds the ``key=value`` header), blank lines are
    skipped, so a plain list of ids reads too (with an empty header)."""
    lines = [line.strip() for line in Path(path).read_text().splitlines()]
    header: dict[str, str] = {}
    if lines and lines[0].startswith("#"):
        header = dict(item.split("=", 1) for item in lines[0].lstrip("# ").split() if "=" in item)
    return [line for line in lines if line and not line.startswith("#")], header
