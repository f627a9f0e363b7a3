"""Probe transfer: does model A's property probe work on model B's embeddings once B is mapped
linearly into A's space?

For each ordered pair (A, B), on the structures both embedded, a seeded split (the first
``train_fraction`` of a shuffle of all rows trains): A's ridge probe β is fitted on A's
standardised training embeddings Z_A (alpha by K-fold CV), a ridge map W from B's standardised
embeddings Z_B to Z_A is fitted on the same rows, and R² is scored on the test rows of
ŷ = ȳ + Z_B,test W β. Because map and probe are linear, Z_B W β is the ridge regression of
A's fitted probe read-out t = Z_A β onto Z_B: that is how it is computed (one vector instead of
D_A outputs), and the map's alpha is the one of lowest K-fold CV error in predicting t, i.e.
the error the transfer is scored on. The diagonal is A's own probe on A's test rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matteralign.analysis.ridge import (
    DEFAULT_ALPHAS,
    DEFAULT_FOLDS,
    RidgeBasis,
    choose_alpha,
    min_rows,
    r2_score,
    ridge_basis,
    ridge_predict,
    shuffle_rank,
)
from matteralign.analysis.study_inputs import StudyInputs, load_inputs, progress
from matteralign.errors import InputError
from matteralign.io import read_columns, write_columns
from matteralign.provenance import provenance

DEFAULT_TRAIN_FRACTION = 0.5


@dataclass
class Transfer:
    """The content of ``transfer.h5`` (see docs/formats.md)."""

    models: list[str]
    control: list[str]
    r2: np.ndarray  # [M, M] row A = probe owner, column B = mapped model
    r2_direct: np.ndarray  # [M] each model's own probe on its test rows (the diagonal)
    n_train: np.ndarray  # [M, M] training rows of the pair
    n_test: np.ndarray  # [M, M]
    alpha_probe: np.ndarray  # [M, M] alpha of A's probe on the pair's training rows
    alpha_map: np.ndarray  # [M, M] alpha of the B -> A map (NaN on the diagonal)
    attrs: dict[str, Any] = field(default_factory=dict)

    ARRAYS = ("r2", "r2_direct", "n_train", "n_test", "alpha_probe", "alpha_map")


def linear_map(basis_b: RidgeBasis, z_a: np.ndarray, x_b_new: np.ndarray,
               alpha: float) -> np.ndarray:
    """B's raw rows ``x_b_new`` mapped into A's standardised space by the ridge map fitted on
    the basis' rows to A's standardised embeddings ``z_a`` (explicit; for checks)."""
    return ridge_predict(basis_b, z_a, x_b_new, alpha)


def probe_transfer(embeddings: Sequence[np.ndarray], usable: Sequence[np.ndarray],
                   y: np.ndarray, seed: int, train_fraction: float = DEFAULT_TRAIN_FRACTION,
                   folds: int = DEFAULT_FOLDS, alphas: np.ndarray = DEFAULT_ALPHAS,
                   names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Transfer R² of every ordered model pair (see the module docstring).

    ``embeddings`` are [N, D_m] raw features, ``usable`` [N] masks of the rows each model
    embedded, ``y`` [N] the property (NaN where missing). Decompositions are cached per
    (model, training rows), so pairs that share their rows share the work.
    """
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    m = len(embeddings)
    names = list(names) if names is not None else [f"model {i}" for i in range(m)]
    y = np.asarray(y, np.float64)
    rank = shuffle_rank(len(y), seed)
    training = rank < round(train_fraction * len(y))
    bases: dict[tuple[int, bytes], RidgeBasis] = {}
    fits: dict[tuple[int, bytes], tuple[float, np.ndarray]] = {}

    def basis(i: int, train: np.ndarray) -> RidgeBasis:
        key = (i, train.tobytes())
        if key not in bases:
            bases[key] = ridge_basis(embeddings[i][train])
        return bases[key]

    def probe(i: int, train: np.ndarray) -> tuple[float, np.ndarray]:
        """A's alpha and centred fitted read-out t on the training rows."""
        key = (i, train.tobytes())
        if key not in fits:
            b = basis(i, train)
            alpha = float(choose_alpha(b, y[train], rank[train] % folds, alphas)[0])
            centred = y[train] - y[train].mean()
            fits[key] = (alpha, b.u @ ((b.u.T @ centred) * b.shrinkage([alpha])[0]))
        return fits[key]

    shape = (m, m)
    out = {"r2": np.full(shape, np.nan), "n_train": np.zeros(shape, np.int64),
           "n_test": np.zeros(shape, np.int64), "alpha_probe": np.full(shape, np.nan),
           "alpha_map": np.full(shape, np.nan)}
    for b in progress(range(m), "transfer"):
        # the probe owners whose pair with b trains and tests on the same rows share b's
        # decomposition and one multi-target CV of the map
        groups: dict[tuple[bytes, bytes], list[int]] = {}
        for a in range(m):
            rows = usable[a] & usable[b] & np.isfinite(y)
            train, test = rows & training, rows & ~training
            if train.sum() < min_rows(folds) or test.sum() < 2:
                pair = names[a] if a == b else f"{names[a]} and {names[b]}"
                raise InputError(
                    f"{pair}: only {int(train.sum())} training and {int(test.sum())} test "
                    f"structures with the property are embedded by both; the transfer needs "
                    f"at least {min_rows(folds)} and 2. Drop the model or choose another "
                    "--property")
            groups.setdefault((train.tobytes(), test.tobytes()), []).append(a)
        for (train_key, test_key), owners in groups.items():
            train, test = np.frombuffer(train_key, bool), np.frombuffer(test_key, bool)
            basis_b, x_test = basis(b, train), embeddings[b][test]
            for a in owners:
                out["alpha_probe"][a, b] = probe(a, train)[0]
                out["n_train"][a, b], out["n_test"][a, b] = train.sum(), test.sum()
            if b in owners:  # the diagonal: b's own probe
                direct = ridge_predict(basis_b, y[train], x_test, out["alpha_probe"][b, b])
                out["r2"][b, b] = r2_score(y[test], direct)
            others = [a for a in owners if a != b]
            if not others:
                continue
            readouts = np.column_stack([probe(a, train)[1] for a in others])
            alpha_map = choose_alpha(basis_b, readouts, rank[train] % folds, alphas)
            mapped = y[train].mean() + ridge_predict(basis_b, readouts, x_test, alpha_map)
            for column, a in enumerate(others):
                out["r2"][a, b] = r2_score(y[test], mapped[:, column])
                out["alpha_map"][a, b] = alpha_map[column]
    out["r2_direct"] = np.diag(out["r2"]).copy()
    return out


def default_property(inputs: StudyInputs) -> str:
    """The dataset's reference energy, else its first property with values."""
    if inputs.reference_energy is not None:
        return inputs.reference_energy
    for name, values in inputs.properties.items():
        if np.isfinite(values).any() and np.ptp(values[np.isfinite(values)]) > 0:
            return name
    raise InputError(f"dataset {inputs.dataset!r} has no property with values to probe")


def transfer(inputs: StudyInputs, prop: str | None, seed: int,
             train_fraction: float = DEFAULT_TRAIN_FRACTION, folds: int = DEFAULT_FOLDS,
             alphas: np.ndarray = DEFAULT_ALPHAS) -> Transfer:
    """:func:`probe_transfer` over every model of one dataset for one property."""
    name = prop or default_property(inputs)
    y = inputs.values(name)
    usable = [inputs.usable(i) for i in range(len(inputs.files))]
    raw = [f.embeddings for f in inputs.files]
    out = probe_transfer(raw, usable, y, seed, train_fraction, folds, alphas,
                         names=inputs.models)
    attrs = {
        "dataset": inputs.dataset, "dataset_sha256": inputs.dataset_sha256, "seed": seed,
        "property": name, "units": inputs.units.get(name, ""),
        "train_fraction": train_fraction, "folds": folds,
        "alphas": np.asarray(alphas, np.float64),
        # the smallest over pairs; each pair's own counts are datasets n_train / n_test
        "n_train": int(out["n_train"].min()), "n_test": int(out["n_test"].min()),
    }
    return Transfer(models=inputs.models, control=inputs.controls,
                    **{k: out[k] for k in Transfer.ARRAYS}, attrs=attrs)


def write_transfer(structures_path: str | os.PathLike[str],
                   embedding_paths: Sequence[str | os.PathLike[str]],
                   out: str | os.PathLike[str], figure: str | os.PathLike[str] | None,
                   prop: str | None = None, seed: int = 0,
                   train_fraction: float = DEFAULT_TRAIN_FRACTION, folds: int = DEFAULT_FOLDS,
                   alphas: np.ndarray = DEFAULT_ALPHAS) -> Transfer:
    """Compute :func:`transfer` from the files; write ``transfer.h5`` and its heatmap."""
    from matteralign.plots.probes import plot_transfer

    result = transfer(load_inputs(structures_path, embedding_paths), prop, seed,
                      train_fraction, folds, alphas)
    write_columns(out, {"models": result.models, "control": result.control},
                  {name: getattr(result, name) for name in Transfer.ARRAYS},
                  {**result.attrs, **provenance(("scipy",))})
    if figure is not None:
        plot_transfer(result, figure)
    return result


def read_transfer(path: str | os.PathLike[str]) -> Transfer:
    """transfer.h5 after checking its content hash (a damaged file raises
    :class:`~matteralign.io.CorruptFileError`)."""
    columns, attrs = read_columns(path, ("models", "control"), Transfer.ARRAYS)
    return Transfer(**columns, attrs=attrs)
