"""Probe transfer: does model A's frozen property probe still work on model B's embeddings once
B is mapped linearly into A's space by a map that never saw the property?

For each ordered pair (A, B), on the structures both embedded and with the property, repeated
K-fold CV (outer fold = rank mod K of each repeat's shuffle). On each outer training part:
A's ridge probe β (alpha by inner K-fold CV on y) is fitted on A's standardised embeddings
Z_A; the ridge map W: Z_B → Z_A is fitted to reconstruct all of Z_A, its alpha chosen by inner
K-fold CV of the reconstruction error summed over Z_A's columns (blind to y); the held-out
part is predicted by ŷ = ȳ + Z_B W β. The entry is the pooled held-out R², averaged over the
repeats, with a corrected resampled-t interval. Beside it: B's own probe on the same rows and
folds (what a supervised probe of B achieves), and the old read-out regression (the ridge of
A's fitted read-out Z_A β onto Z_B with alpha chosen to predict that read-out), which is a
probe of ≈ y from B and is kept only for comparison.

Z_B W β is computed as the ridge of the read-out t = Z_A β onto Z_B at the map's alpha (map and
probe are linear), and the map's CV uses Z_A's principal coordinates (same errors, at most
min(n, D_A) columns). The diagonal is A's own probe.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matteralign.analysis.probes import named_values, transfer_properties
from matteralign.analysis.ridge import (
    DEFAULT_ALPHAS,
    DEFAULT_FOLDS,
    DEFAULT_REPEATS,
    MAP_ALPHAS,
    RidgeBasis,
    choose_alpha,
    fold_scores,
    map_cv_errors_many,
    min_rows,
    principal_coordinates,
    r2_score,
    repeat_ranks,
    repeated_cv_interval,
    ridge_basis,
    ridge_predict,
)
from matteralign.analysis.study_inputs import StudyInputs, load_inputs, progress
from matteralign.errors import InputError
from matteralign.io import read_columns, write_columns
from matteralign.provenance import provenance

#: what is scored per pair: the transfer, B's own probe on the pair's rows, the old read-out fit
KINDS = ("r2", "r2_mapped_own", "r2_readout")
#: per-pair fields of the first (primary) property; each is also written for every property
#: with the suffix ``_all`` and a leading property axis
PAIR_FIELDS = ("r2", "r2_lo", "r2_hi", "r2_mapped_own", "r2_mapped_own_lo",
               "r2_mapped_own_hi", "r2_readout", "n", "n_train", "n_test", "alpha_probe",
               "alpha_map")


@dataclass
class Transfer:
    """The content of ``transfer.h5`` (see docs/formats.md)."""

    models: list[str]
    control: list[str]
    properties: list[str]  # the first is the primary one (attribute ``property``)
    r2: np.ndarray  # [M, M] row A = probe owner, column B = mapped model; diagonal: own probe
    r2_direct: np.ndarray  # [M] each model's own probe (the diagonal)
    r2_lo: np.ndarray  # [M, M] 95% interval of r2
    r2_hi: np.ndarray
    r2_mapped_own: np.ndarray  # [M, M] B's own probe on the pair's rows and folds
    r2_mapped_own_lo: np.ndarray
    r2_mapped_own_hi: np.ndarray
    r2_readout: np.ndarray  # [M, M] the supervised read-out regression (comparison only)
    r2_from_controls: np.ndarray  # [M] the best control's transfer into A's probe
    n: np.ndarray  # [M, M] rows of the pair
    n_train: np.ndarray  # [M, M] the smallest outer training part
    n_test: np.ndarray  # [M, M] held-out predictions per repeat (every row once)
    alpha_probe: np.ndarray  # [M, M] median alpha of A's probe over folds and repeats
    alpha_map: np.ndarray  # [M, M] median alpha of the B -> A map (NaN on the diagonal)
    stacks: dict[str, np.ndarray] = field(default_factory=dict)  # "<field>_all": [P, M, M]
    attrs: dict[str, Any] = field(default_factory=dict)

    TEXT = ("models", "control", "properties")
    ARRAYS = (*PAIR_FIELDS, "r2_direct", "r2_from_controls")
    STACKS = (*(f"{name}_all" for name in PAIR_FIELDS), "r2_from_controls_all",
              "r2_repeats_all")


def linear_map(basis_b: RidgeBasis, z_a: np.ndarray, x_b_new: np.ndarray,
               alpha: float) -> np.ndarray:
    """B's raw rows ``x_b_new`` mapped into A's standardised space by the ridge map fitted on
    the basis' rows to A's standardised embeddings ``z_a`` (explicit; for checks)."""
    return ridge_predict(basis_b, z_a, x_b_new, alpha)


def _pair_rows(usable: Sequence[np.ndarray], finite: np.ndarray, a: int,
               b: int) -> dict[bytes, list[int]]:
    """The pair's row sets, each with the properties that have values on exactly those rows."""
    groups: dict[bytes, list[int]] = {}
    for p in range(finite.shape[1]):
        groups.setdefault((usable[a] & usable[b] & finite[:, p]).tobytes(), []).append(p)
    return groups


def _check_rows(usable: Sequence[np.ndarray], finite: np.ndarray, folds: int,
                names: Sequence[str]) -> None:
    for a in range(len(usable)):
        for b in range(len(usable)):
            for key in _pair_rows(usable, finite, a, b):
                count = int(np.frombuffer(key, bool).sum())
                if count < min_rows(folds):
                    pair = names[a] if a == b else f"{names[a]} and {names[b]}"
                    raise InputError(
                        f"{pair}: only {count} structures with the property are embedded by "
                        f"both; a {folds}-fold transfer needs at least {min_rows(folds)}. Drop "
                        "the model or choose another --property")


def probe_transfer(embeddings: Sequence[np.ndarray], usable: Sequence[np.ndarray],
                   y: np.ndarray, seed: int, folds: int = DEFAULT_FOLDS,
                   repeats: int = DEFAULT_REPEATS, alphas: np.ndarray = DEFAULT_ALPHAS,
                   map_alphas: np.ndarray = MAP_ALPHAS, names: Sequence[str] | None = None,
                   control: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Transfer R² of every ordered model pair (see the module docstring).

    ``embeddings`` are [N, D_m] raw features, ``usable`` [N] masks of the rows each model
    embedded, ``y`` [N] or [N, P] the properties (NaN where missing). Arrays are [M, M] for a
    1-D ``y`` and [P, M, M] otherwise; ``*_folds`` hold each repeat's and fold's alphas and
    ``*_repeats`` each repeat's pooled R². ``control`` labels (non-empty: a control) give
    ``r2_from_controls``, the best control's transfer into each owner's probe.
    """
    values = np.asarray(y, np.float64)
    single = values.ndim == 1
    values = values[:, None] if single else values
    m, p_count, n_rows = len(embeddings), values.shape[1], len(values)
    names = list(names) if names is not None else [f"model {i}" for i in range(m)]
    control = list(control) if control is not None else [""] * m
    finite = np.isfinite(values)
    _check_rows(usable, finite, folds, names)
    shape = (p_count, m, m)
    predictions = {kind: np.full((*shape, n_rows), np.nan) for kind in KINDS}
    scores = {kind: np.full((*shape, repeats, folds), np.nan) for kind in KINDS}
    pooled = {kind: np.full((*shape, repeats), np.nan) for kind in KINDS}
    alpha_probe = np.full((*shape, repeats, folds), np.nan)
    alpha_map = np.full((*shape, repeats, folds), np.nan)
    ranks = repeat_ranks(n_rows, seed, repeats)
    for j, rank in enumerate(progress(ranks, "transfer repeats")):
        outer, inner = rank % folds, (rank // folds) % folds
        for kind in KINDS:
            predictions[kind].fill(np.nan)
        for k in range(folds):
            _transfer_fold(embeddings, usable, values, finite, outer != k, inner, alphas,
                           map_alphas, predictions, alpha_probe[..., j, k],
                           alpha_map[..., j, k])
        for kind in KINDS:
            _score_repeat(predictions[kind], values, finite, usable, outer, folds,
                          scores[kind][..., j, :], pooled[kind][..., j])
    out = _summarise(pooled, scores, folds, alpha_probe, alpha_map, control)
    rows = np.zeros(shape, np.int64)
    smallest_train = np.zeros(shape, np.int64)
    first = ranks[0] % folds
    for a in range(m):
        for b in range(m):
            for key, props in _pair_rows(usable, finite, a, b).items():
                pair = np.frombuffer(key, bool)
                rows[props, a, b] = pair.sum()
                smallest_train[props, a, b] = min(int((pair & (first != k)).sum())
                                                  for k in range(folds))
    out.update(n=rows, n_train=smallest_train, n_test=rows.copy(),
               alpha_probe_folds=alpha_probe, alpha_map_folds=alpha_map)
    if single:
        out = {key: value[0] for key, value in out.items()}
    return out


def _transfer_fold(embeddings: Sequence[np.ndarray], usable: Sequence[np.ndarray],
                   values: np.ndarray, finite: np.ndarray, training: np.ndarray,
                   inner: np.ndarray, alphas: np.ndarray, map_alphas: np.ndarray,
                   predictions: dict[str, np.ndarray], alpha_probe: np.ndarray,
                   alpha_map: np.ndarray) -> None:
    """Every pair's held-out predictions of one outer fold, written into ``predictions``.

    Decompositions and probes are cached per (model, training rows); the map's CV refits of B
    are shared by every owner A with the same rows.
    """
    m = len(embeddings)
    bases: dict[tuple[int, bytes], RidgeBasis] = {}
    fits: dict[tuple[int, bytes, tuple[int, ...]], tuple[np.ndarray, np.ndarray]] = {}

    def basis(i: int, train: np.ndarray) -> RidgeBasis:
        key = (i, train.tobytes())
        if key not in bases:
            bases[key] = ridge_basis(embeddings[i][train])
        return bases[key]

    def probe(i: int, train: np.ndarray, props: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Model i's alphas and centred fitted read-outs [n_train, len(props)]."""
        key = (i, train.tobytes(), tuple(props))
        if key not in fits:
            fitted = basis(i, train)
            target = values[train][:, props]
            chosen = choose_alpha(fitted, target, inner[train], alphas)
            centred = target - target.mean(axis=0)
            readout = fitted.u @ ((fitted.u.T @ centred) * fitted.shrinkage(chosen).T)
            fits[key] = (chosen, readout)
        return fits[key]

    for b in range(m):
        groups: dict[bytes, list[tuple[int, list[int]]]] = {}
        for a in range(m):
            for key, props in _pair_rows(usable, finite, a, b).items():
                groups.setdefault(key, []).append((a, props))
        for key, entries in groups.items():
            rows = np.frombuffer(key, bool)
            train, test = rows & training, rows & ~training
            basis_b, x_test = basis(b, train), embeddings[b][test]
            owners = sorted({a for a, _ in entries if a != b})
            targets = [principal_coordinates(basis(a, train)) for a in owners]
            errors = map_cv_errors_many(embeddings[b][train], targets, inner[train], map_alphas)
            best = len(map_alphas) - 1 - np.argmin(errors[:, ::-1], axis=1)
            chosen_map = dict(zip(owners, np.asarray(map_alphas, np.float64)[best],
                                  strict=True))
            others = [(a, props) for a, props in entries if a != b]
            readouts = [probe(a, train, props)[1] for a, props in others]
            # the old read-out regression: one multi-target CV for every owner at once
            fitted_alpha = choose_alpha(basis_b, np.column_stack(readouts), inner[train],
                                        alphas) if others else np.zeros(0)
            offsets = np.cumsum([0] + [len(props) for _, props in others])
            for a, props in entries:
                mean = values[train][:, props].mean(axis=0)
                alpha_b, _ = probe(b, train, props)
                own = ridge_predict(basis_b, values[train][:, props], x_test, alpha_b)
                alpha_a, readout = probe(a, train, props)
                alpha_probe[props, a, b] = alpha_a
                if a == b:
                    scored = dict.fromkeys(KINDS, own)
                else:
                    alpha_map[props, a, b] = chosen_map[a]
                    at = others.index((a, props))
                    supervised = fitted_alpha[offsets[at]:offsets[at + 1]]
                    scored = {
                        "r2": mean + ridge_predict(basis_b, readout, x_test, chosen_map[a]),
                        "r2_mapped_own": own,
                        "r2_readout": mean + ridge_predict(basis_b, readout, x_test,
                                                           supervised)}
                for kind, guess in scored.items():
                    for column, p in enumerate(props):
                        predictions[kind][p, a, b, test] = guess[:, column]


def _score_repeat(prediction: np.ndarray, values: np.ndarray, finite: np.ndarray,
                  usable: Sequence[np.ndarray], outer: np.ndarray, folds: int,
                  scores: np.ndarray, pooled: np.ndarray) -> None:
    """Per-fold and pooled R² of one repeat's predictions [P, M, M, N], in place."""
    m = len(usable)
    for a in range(m):
        for b in range(m):
            for key, props in _pair_rows(usable, finite, a, b).items():
                rows = np.frombuffer(key, bool)
                for p in props:
                    target, guess = values[rows, p], prediction[p, a, b, rows]
                    scores[p, a, b] = fold_scores(target, guess, outer[rows], folds)
                    pooled[p, a, b] = r2_score(target, guess)


def _summarise(pooled: dict[str, np.ndarray], scores: dict[str, np.ndarray], folds: int,
               alpha_probe: np.ndarray, alpha_map: np.ndarray,
               control: Sequence[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for kind in KINDS:
        out[kind] = pooled[kind].mean(axis=-1)
        out[f"{kind}_repeats"] = pooled[kind]
        if kind == "r2_readout":
            continue
        lo, hi = np.full(out[kind].shape, np.nan), np.full(out[kind].shape, np.nan)
        for index in np.ndindex(out[kind].shape):
            lo[index], hi[index] = repeated_cv_interval(scores[kind][index], folds,
                                                        centre=out[kind][index])
        out[f"{kind}_lo"], out[f"{kind}_hi"] = lo, hi
    out["r2_direct"] = np.diagonal(out["r2"], axis1=1, axis2=2).copy()
    with warnings.catch_warnings():  # all-NaN medians (the map's diagonal) stay NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, folds_alpha in (("alpha_probe", alpha_probe), ("alpha_map", alpha_map)):
            out[name] = np.nanmedian(folds_alpha.reshape(*folds_alpha.shape[:3], -1), axis=-1)
    controls = [i for i, label in enumerate(control) if label]
    best = np.full(out["r2_direct"].shape, np.nan)
    for a in range(best.shape[1]):
        sources = [c for c in controls if c != a]
        if sources:
            best[:, a] = out["r2"][:, a, sources].max(axis=-1)
    out["r2_from_controls"] = best
    return out


def default_property(inputs: StudyInputs) -> str:
    """The dataset's reference energy, else its first property with values."""
    if inputs.reference_energy is not None:
        return inputs.reference_energy
    for name, values in inputs.properties.items():
        if np.isfinite(values).any() and np.ptp(values[np.isfinite(values)]) > 0:
            return name
    raise InputError(f"dataset {inputs.dataset!r} has no property with values to probe")


def transfer(inputs: StudyInputs, prop: str | None, seed: int, folds: int = DEFAULT_FOLDS,
             repeats: int = DEFAULT_REPEATS, alphas: np.ndarray = DEFAULT_ALPHAS,
             map_alphas: np.ndarray = MAP_ALPHAS) -> Transfer:
    """:func:`probe_transfer` over every model of one dataset: the primary property (``prop``,
    default :func:`default_property`) first, then the intensive and extensive companions of
    :func:`~matteralign.analysis.probes.transfer_properties`."""
    primary = prop or default_property(inputs)
    available = named_values(inputs)
    if primary not in available:
        inputs.values(primary)  # the one-line error naming --property and the choices
    names = transfer_properties(inputs, primary)
    y = np.column_stack([available[name][0] for name in names])
    usable = [inputs.usable(i) for i in range(len(inputs.files))]
    raw = [f.embeddings for f in inputs.files]
    out = probe_transfer(raw, usable, y, seed, folds, repeats, alphas, map_alphas,
                         names=inputs.models, control=inputs.controls)
    attrs = {
        "dataset": inputs.dataset, "dataset_sha256": inputs.dataset_sha256, "seed": seed,
        "property": primary, "units": available[primary][1],
        "units_all": "; ".join(f"{name}: {available[name][1]}" for name in names),
        "folds": folds, "repeats": repeats, "alphas": np.asarray(alphas, np.float64),
        "map_alphas": np.asarray(map_alphas, np.float64),
        "interval": "95% corrected resampled t over repeats x folds (Nadeau-Bengio)",
        "map": "ridge Z_B -> Z_A, alpha by K-fold CV of the reconstruction of Z_A (blind to "
               "the property); A's probe frozen",
        # the smallest over pairs; each pair's own counts are datasets n_train / n_test
        "n_train": int(out["n_train"][0].min()), "n_test": int(out["n_test"][0].min()),
    }
    primary_fields = {name: out[name][0] for name in (*PAIR_FIELDS, "r2_direct",
                                                      "r2_from_controls")}
    stacks = {f"{name}_all": out[name] for name in (*PAIR_FIELDS, "r2_from_controls")}
    stacks["r2_repeats_all"] = out["r2_repeats"]
    return Transfer(models=inputs.models, control=inputs.controls, properties=names,
                    **primary_fields, stacks=stacks, attrs=attrs)


def write_transfer(structures_path: str | os.PathLike[str],
                   embedding_paths: Sequence[str | os.PathLike[str]],
                   out: str | os.PathLike[str],
                   prop: str | None = None, seed: int = 0, folds: int = DEFAULT_FOLDS,
                   repeats: int = DEFAULT_REPEATS,
                   alphas: np.ndarray = DEFAULT_ALPHAS) -> Transfer:
    """Compute :func:`transfer` from the files and write ``transfer.h5`` (its figure is
    :func:`~matteralign.plots.probes.plot_transfer`)."""
    result = transfer(load_inputs(structures_path, embedding_paths), prop, seed, folds,
                      repeats, alphas)
    write_columns(out, {name: getattr(result, name) for name in Transfer.TEXT},
                  {**{name: getattr(result, name) for name in Transfer.ARRAYS},
                   **result.stacks},
                  {**result.attrs, **provenance(("scipy",))})
    return result


def read_transfer(path: str | os.PathLike[str]) -> Transfer:
    """transfer.h5 after checking its content hash (a damaged file raises
    :class:`~matteralign.io.CorruptFileError`)."""
    columns, attrs = read_columns(path, Transfer.TEXT, (*Transfer.ARRAYS, *Transfer.STACKS))
    stacks = {name: columns.pop(name) for name in Transfer.STACKS}
    return Transfer(**columns, stacks=stacks, attrs=attrs)
