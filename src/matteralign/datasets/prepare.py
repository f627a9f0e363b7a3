"""Subsample a registered dataset and write its structures file."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
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
    print(f"{name}: wrote {n} structures to {output} in {time.time() - started:.1f} s "
          f"(sha256 {digest[:12]})")
    return digest
