"""Study checks that need the subsample itself, run when the dataset is prepared.

The metrics need k + 2 rows valid in every model of a dataset, and the atom-level ones k + 2
atoms in every potential's per-atom file. Both depend on which structures the models'
own input filters (modality, elements, ``max_atoms``, geometry) refuse, which is known from
the structures alone: the prepare step counts them, so a too-large ``metrics.k`` or a tiny
``max_atoms_total`` stops before any embedding job instead of after all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from matteralign.errors import MatterAlignError
from matteralign.records import Record


class StudyCheckError(MatterAlignError, ValueError):
    """The subsample cannot feed the configured metrics; the message names the config key."""


def _refusals(name: str, options: Mapping[str, Any], records: Sequence[Record],
              geometry: dict[int, str | None]) -> list[str]:
    """Why model ``name`` refuses each record ("" where it takes it, or cannot tell here)."""
    from matteralign.models import registered_models
    from matteralign.models.base import adapter_options
    from matteralign.models.geometry import geometry_problem

    cls = registered_models()[name]
    adapter = cls(weights=None, **{k: v for k, v in options.items()
                                   if k in adapter_options(cls)})
    reasons = []
    for i, record in enumerate(records):
        reason: str | None = None
        try:  # a check that needs the loaded model (or a package absent here) tells nothing
            if adapter.modality == "atoms" and record.atoms is not None:
                picked = adapter.geometry_atoms(record.atoms)
                if picked is None:
                    if i not in geometry:
                        geometry[i] = geometry_problem(record.atoms)
                    reason = geometry[i]
                else:
                    reason = geometry_problem(record.atoms, picked)
            reason = reason or adapter.check(record)
        except Exception:  # noqa: BLE001 - unknown here: counted as taken
            reason = None
        reasons.append(reason or "")
    return reasons


def study_problem(dataset: str, records: Sequence[Record], checks: Mapping[str, Any]
                  ) -> str | None:
    """Why the prepared ``records`` cannot feed the metrics ``checks`` describes (see
    :func:`matteralign.config.prepare_checks`), or None. Only refusals the models' input
    checks are sure of count: a failure inside a model can still mask more rows later."""
    from matteralign.embed import atom_structures

    k = int(checks["k"])
    need = max(k + 2, 4)
    geometry: dict[int, str | None] = {}
    refused = {name: _refusals(name, options, records, geometry)
               for name, options in checks["models"].items()}
    valid = np.ones(len(records), dtype=bool)
    for reasons in refused.values():
        valid &= np.array([not r for r in reasons], dtype=bool)
    if int(valid.sum()) < need:
        worst = max(refused, key=lambda m: sum(1 for r in refused[m] if r))
        example = next((r for r in refused[worst] if r), "")
        return (f"config key metrics.k: k={k} neighbours need {need} structures valid in every "
                f"model of {dataset}, but the models' input checks leave {int(valid.sum())} of "
                f"its {len(records)} (most refused by {worst}: "
                f"{sum(1 for r in refused[worst] if r)}, e.g. {example!r}); lower metrics.k, "
                f"raise datasets.{dataset}.n, or leave {worst} out of {dataset} "
                f"(models.{worst}.datasets) or relax its options")
    potentials = list(checks.get("atom_models") or [])
    if potentials:
        total = int(checks["max_atoms_total"])
        chosen = atom_structures(records, total)
        for name in potentials:
            chosen &= np.array([not r for r in refused[name]], dtype=bool)
        atoms = sum(len(records[i].atoms) for i in np.flatnonzero(chosen))  # type: ignore[arg-type]
        if atoms < need:
            return (f"config key datasets.{dataset}.max_atoms_total: within {total} atoms the "
                    f"atom-level study keeps {int(chosen.sum())} structure(s) that every "
                    f"potential takes, {atoms} atoms in all, but k={k} neighbours need {need} "
                    "atoms; raise max_atoms_total (or lower metrics.k)")
    return None
