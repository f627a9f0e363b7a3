"""The ladder's rungs side by side: each rung's training record (test MAE, epochs, time,
checkpoint hash) and learning curve, gathered from the rung folders into ``ladder.h5``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from matteralign.io import atomic_h5, read_strings, set_attrs, strings

#: the per-rung numbers of ladder.h5, by the key of the rung's training.json
NUMBERS = ("size", "seed", "test_mae_ev", "test_mae_ev_per_atom", "epochs", "best_epoch",
           "train_seconds", "validation_rmse_kcal_mol_best")


@dataclass
class Ladder:
    """Every rung: its name, numbers (:data:`NUMBERS`) and learning curve."""

    names: list[str]
    numbers: dict[str, np.ndarray]
    #: rung -> (epoch, validation RMSE in kcal/mol)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, str] = field(default_factory=dict)

    def value(self, name: str, key: str) -> float:
        return float(self.numbers[key][self.names.index(name)])

    def accuracy_ladder(self) -> list[str]:
        """The rungs of the ladder's seed (the most common seed) trained on all of the
        chemistry, by training-set size."""
        from matteralign.training.ladder import parse_rung_name

        full = [not parse_rung_name(n).excluded for n in self.names]  # type: ignore[union-attr]
        seeds = self.numbers["seed"].astype(int)
        seed = int(np.bincount(seeds[full]).argmax())
        rows = [i for i in np.argsort(self.numbers["size"], kind="stable")
                if seeds[i] == seed and full[i]]
        return [self.names[i] for i in rows]


def read_rung(folder: str | os.PathLike[str]) -> tuple[dict[str, object], np.ndarray]:
    """A rung folder's training record and its learning curve [epochs, 2]."""
    from matteralign.training.ani_train import CURVE_FILE, METRICS_FILE

    folder = Path(folder)
    record = json.loads((folder / METRICS_FILE).read_text())
    lines = (folder / CURVE_FILE).read_text().splitlines()[1:]
    curve = np.array([[float(v) for v in line.split("\t")[:2]] for line in lines])
    return record, curve


def gather(folders: Sequence[str | os.PathLike[str]]) -> Ladder:
    names, rows, curves = [], [], {}
    for folder in folders:
        record, curve = read_rung(folder)
        names.append(str(record["name"]))
        rows.append([float(record[k]) for k in NUMBERS])  # type: ignore[arg-type]
        curves[names[-1]] = curve
    table = np.array(rows, dtype=np.float64).reshape(len(names), len(NUMBERS))
    return Ladder(names, {k: table[:, j] for j, k in enumerate(NUMBERS)}, curves)


def write_ladder(path: str | os.PathLike[str], ladder: Ladder,
                 provenance: dict[str, str] | None = None) -> None:
    with atomic_h5(path) as handle:
        handle["names"] = strings(ladder.names)
        for key, values in ladder.numbers.items():
            handle[key] = values
        for name, curve in ladder.curves.items():
            handle[f"curves/{name}"] = curve
        set_attrs(handle, provenance or {})


def read_ladder(path: str | os.PathLike[str]) -> Ladder:
    with h5py.File(path, "r") as handle:
        names = read_strings(handle["names"])
        numbers = {k: handle[k][()] for k in NUMBERS}
        curves = {n: handle[f"curves/{n}"][()] for n in names}
        attrs = {k: str(v) for k, v in handle.attrs.items()}
    return Ladder(names, numbers, curves, attrs)
