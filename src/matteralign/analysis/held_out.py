"""In vs out of distribution within one model: rungs trained without one element against
their twins trained on all of QM9's chemistry, on the study's held-in and held-out molecules.

For each pair (a rung trained without element X, and its twin of the same size and seed
trained with it) and each quantity q (TwoNN intrinsic dimension, CKNNA to the reference,
the information imbalances to and from it), the difference in differences

    DiD = [q(restricted, out) − q(restricted, in)] − [q(twin, out) − q(twin, in)]

removes what held-out molecules change for any model (they differ in size and diversity) and
keeps what the restriction changes. Held-in and held-out molecules are subsampled to the same
number (neighbour metrics move with N). Intervals come from the study's half-samples (the
same draws for every model of a subset, so the DiD of every pair is paired), the model-level
test is the exact sign-flip test over the pairs, each an independent pair of training runs.
The test energy error is split the same way (the design works only if the restricted rung is
worse on held-out molecules than its twin is).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from matteralign.io import atomic_h5, read_strings, set_attrs, strings
from matteralign.metrics.resampling import half_samples, paired_interval

#: quantity -> (metric of pairwise, what it is); the reference is the column (or row) model
QUANTITIES = {
    "intrinsic_dim": "TwoNN intrinsic dimension",
    "cknna_to_reference": "CKNNA to the reference",
    "ii_to_reference": "Δ(model → reference)",
    "ii_from_reference": "Δ(reference → model)",
}
SUBSETS = ("held_in", "held_out")


@dataclass
class HeldOut:
    """The held-out design's numbers: per pair and quantity the DiD and its half-sample
    replicates, and per model and subset each quantity's value."""

    element: str
    reference: str
    pairs: list[tuple[str, str]]  # (restricted rung, twin)
    n_per_subset: int
    #: quantity -> model -> subset -> value
    values: dict[str, dict[str, dict[str, float]]]
    #: quantity -> [pairs] DiD, and [B, pairs] replicates
    did: dict[str, np.ndarray]
    did_replicates: dict[str, np.ndarray]
    #: per pair: test MAE (meV/atom) of each model on held-in and held-out test molecules
    mae: dict[str, dict[str, float]] = field(default_factory=dict)
    mae_did: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mae_did_replicates: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    attrs: dict[str, Any] = field(default_factory=dict)

    def mean_did(self, quantity: str) -> tuple[float, float, float]:
        """The mean DiD over pairs with its paired half-sample 95% interval."""
        value = float(np.mean(self.did[quantity]))
        return (value, *paired_interval(value, self.did_replicates[quantity].mean(axis=1)))

    def mean_mae_did(self) -> tuple[float, float, float]:
        value = float(np.mean(self.mae_did))
        return (value, *paired_interval(value, self.mae_did_replicates.mean(axis=1)))


def subsets(ids: Sequence[str], elements: Mapping[str, str], element: str, seed: int
            ) -> tuple[dict[str, np.ndarray], int]:
    """Row indices of held-in (no ``element``) and held-out molecules among ``ids``, each
    subsampled (seeded) to the smaller one's size."""
    held_out = np.array([element in elements[i] for i in ids], dtype=bool)
    rows = {"held_in": np.flatnonzero(~held_out), "held_out": np.flatnonzero(held_out)}
    n = min(len(r) for r in rows.values())
    rng = np.random.default_rng(seed)
    return {k: np.sort(rng.choice(r, size=n, replace=False)) for k, r in rows.items()}, n


def _quantities(results: Mapping[str, tuple[np.ndarray, list[str]]], names: Sequence[str],
                reference: str, key: str) -> dict[str, np.ndarray]:
    """quantity -> per-model values (``key`` "" = full sample, else e.g. "/replicates")."""
    ref = list(names).index(reference)
    cknna, ii = results[f"cknna{key}"][0], results[f"information_imbalance{key}"][0]
    return {"intrinsic_dim": results[f"intrinsic_dim{key}"][0],
            "cknna_to_reference": cknna[..., :, ref],
            "ii_to_reference": ii[..., :, ref],
            "ii_from_reference": ii[..., ref, :]}


def held_out_study(arrays: Mapping[str, np.ndarray], ids: Sequence[str],
                   elements: Mapping[str, str], element: str,
                   pairs: Sequence[tuple[str, str]], reference: str,
                   test_errors: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                   k: int = 25, bootstrap: int = 20, seed: int = 0) -> HeldOut:
    """The design's numbers from preprocessed embeddings (rows = ``ids``) of the pairs'
    models and the reference; ``test_errors``: rung -> its test errors
    (:func:`~matteralign.training.ani_train.read_test_errors`)."""
    from matteralign.metrics import pairwise

    if bootstrap < 2:
        raise ValueError("the held-out design needs metrics.bootstrap >= 2 for its intervals")
    names = sorted({m for pair in pairs for m in pair} | {reference})
    missing = [m for m in names if m not in arrays]
    if missing:
        raise ValueError(f"no embeddings of {missing}")
    rows, n = subsets(ids, elements, element, seed)
    if n < k + 2:
        raise ValueError(f"only {n} held-in or held-out study molecules (element {element}); "
                         f"k = {k} needs {k + 2}: raise datasets.qm9.n")
    values: dict[str, dict[str, dict[str, float]]] = {q: {m: {} for m in names}
                                                      for q in QUANTITIES}
    full: dict[str, dict[str, np.ndarray]] = {}
    reps: dict[str, dict[str, np.ndarray]] = {}
    for subset in SUBSETS:
        part = {m: arrays[m][rows[subset]] for m in names}
        results = pairwise(part, metrics=["cknna", "information_imbalance", "intrinsic_dim"],
                           k=k, bootstrap=bootstrap, seed=seed)
        full[subset] = _quantities(results, names, reference, "")
        reps[subset] = _quantities(results, names, reference, "/replicates")
        for q in QUANTITIES:
            for i, m in enumerate(names):
                values[q][m][subset] = float(full[subset][q][i])
    index = {m: i for i, m in enumerate(names)}
    did, did_reps = {}, {}
    for q in QUANTITIES:
        def change(source: Mapping[str, Mapping[str, np.ndarray]], model: str,
                   q: str = q) -> np.ndarray:
            i = index[model]
            return source["held_out"][q][..., i] - source["held_in"][q][..., i]

        did[q] = np.array([change(full, r) - change(full, t) for r, t in pairs])
        did_reps[q] = np.stack([change(reps, r) - change(reps, t) for r, t in pairs], axis=-1)
    out = HeldOut(element, reference, [tuple(p) for p in pairs], n, values, did,  # type: ignore[misc]
                  did_reps)
    if test_errors is not None:
        out.mae, out.mae_did, out.mae_did_replicates = _mae_did(test_errors, pairs, element,
                                                                bootstrap, seed)
    return out


def _mae_did(test_errors: Mapping[str, Mapping[str, np.ndarray]],
             pairs: Sequence[tuple[str, str]], element: str, bootstrap: int, seed: int
             ) -> tuple[dict[str, dict[str, float]], np.ndarray, np.ndarray]:
    """Test MAE per atom (meV) on held-in and held-out test molecules, and the DiD per pair
    with its half-sample replicates over test molecules (the same draws for every rung)."""
    first = test_errors[pairs[0][0]]
    out_mask = np.array([element in e for e in first["elements"]])
    draws = half_samples(np.random.default_rng(seed), len(out_mask), bootstrap)

    def mae_change(model: str, rows: np.ndarray | None = None) -> float:
        errors = test_errors[model]
        if list(errors["ids"]) != list(first["ids"]):
            raise ValueError(f"{model}: its test set differs from {pairs[0][0]}'s")
        per_atom = 1000 * errors["abs_error_ev"] / errors["atoms"]
        keep = np.ones(len(per_atom), bool) if rows is None else np.isin(
            np.arange(len(per_atom)), rows)
        return float(per_atom[keep & out_mask].mean() - per_atom[keep & ~out_mask].mean())

    mae: dict[str, dict[str, float]] = {}
    for model in {m for pair in pairs for m in pair}:
        per_atom = 1000 * test_errors[model]["abs_error_ev"] / test_errors[model]["atoms"]
        mae[model] = {"held_in": float(per_atom[~out_mask].mean()),
                      "held_out": float(per_atom[out_mask].mean())}
    did = np.array([mae_change(r) - mae_change(t) for r, t in pairs])
    reps = np.array([[mae_change(r, d) - mae_change(t, d) for r, t in pairs] for d in draws])
    return mae, did, reps


def write_held_out(path: str | os.PathLike[str], result: HeldOut,
                   provenance: Mapping[str, Any] | None = None) -> None:
    with atomic_h5(path) as handle:
        handle["restricted"] = strings([r for r, _ in result.pairs])
        handle["twins"] = strings([t for _, t in result.pairs])
        for q in QUANTITIES:
            handle[f"did/{q}"] = result.did[q]
            handle[f"did_replicates/{q}"] = result.did_replicates[q]
        handle["mae_did"] = result.mae_did
        handle["mae_did_replicates"] = result.mae_did_replicates
        set_attrs(handle, {"element": result.element, "reference": result.reference,
                           "n_per_subset": result.n_per_subset,
                           "values": json.dumps(result.values, sort_keys=True),
                           "mae": json.dumps(result.mae, sort_keys=True),
                           **result.attrs, **(provenance or {})})


def read_held_out(path: str | os.PathLike[str]) -> HeldOut:
    with h5py.File(path, "r") as handle:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in handle.attrs.items()}
        pairs = list(zip(read_strings(handle["restricted"]), read_strings(handle["twins"]),
                         strict=True))
        did = {q: handle[f"did/{q}"][()] for q in QUANTITIES}
        reps = {q: handle[f"did_replicates/{q}"][()] for q in QUANTITIES}
        mae_did, mae_reps = handle["mae_did"][()], handle["mae_did_replicates"][()]
    values = json.loads(str(attrs.pop("values")))
    mae = json.loads(str(attrs.pop("mae")))
    return HeldOut(str(attrs.pop("element")), str(attrs.pop("reference")), pairs,
                   int(attrs.pop("n_per_subset")), values, did, reps, mae, mae_did, mae_reps,
                   attrs)
