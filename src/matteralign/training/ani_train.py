"""Train one ladder rung with torchani's own NeuroChem trainer (runs in the ``ani`` env).

``torchani.neurochem.Trainer`` builds the ANI-1x architecture from the rung's training input
(:mod:`.ani_input`), trains with its AdamW/SGD schedule, evaluates the validation RMSE every
epoch and keeps the checkpoint of the best one. This module prepares what it reads: the
self-atomic energies by torchani's own least-squares fit on the training set, and the
training and validation sets through the same torchani transformations its ``load_data``
applies (self energies subtracted, species to indices, seeded shuffle, batches), from the
ladder's set file instead of ANI-layout files. The AEVs are a fixed function of geometry,
so each batch's AEV is computed once and reused in later epochs (:func:`memo_aev`): the
numbers are those of recomputing it, the time is not. The learning curve is the trainer's
own per-epoch validation RMSE; the best checkpoint is then scored on the test set. The
rung's folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from matteralign.datasets.qm9 import HARTREE_EV
from matteralign.io import sha256_file
from matteralign.training.ani_input import (
    AEV_CONSTANTS,
    CHECKPOINT,
    SAE_FILE,
    SPECIES,
    trainer_input,
    write_input,
    write_sae,
)

METRICS_FILE = "training.json"
CURVE_FILE = "learning_curve.tsv"
#: every test molecule's absolute energy error (the held-out design splits the test MAE)
TEST_ERRORS_FILE = "test_errors.tsv"


def shipped_constants() -> Path:
    """ANI-1x's AEV constants file, from the torchani 2.2.4 wheel."""
    import torchani

    path = Path(torchani.__file__).parent / "resources" / "ani-1x_8x" / AEV_CONSTANTS
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: the ani environment needs torchani==2.2.4")
    return path


def torch_compat() -> None:
    """torch >= 2.2 renamed ``ReduceLROnPlateau.is_better`` (which torchani 2.2.4's trainer
    calls) to ``_is_better``; the old name is given back as an alias of the same method."""
    from torch.optim.lr_scheduler import ReduceLROnPlateau

    if not hasattr(ReduceLROnPlateau, "is_better"):
        ReduceLROnPlateau.is_better = ReduceLROnPlateau._is_better  # type: ignore[attr-defined]


def seed_everything(seed: int) -> None:
    """torch (network initialisation), random (the trainer's shuffle) and numpy."""
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def as_iterable(molecules: Sequence[Mapping[str, Any]]) -> Any:
    """torchani's transformable iterable over fresh copies of ``molecules`` (its
    transformations modify the dicts they pass on)."""
    from torchani.data import IterableAdapterWithLength, TransformableIterable

    def factory() -> Any:
        for mol in molecules:
            yield {"species": list(mol["species"]), "coordinates": mol["coordinates"],
                   "energies": float(mol["energies"])}

    return TransformableIterable(IterableAdapterWithLength(factory, len(molecules)))


def fit_self_energies(molecules: Sequence[Mapping[str, Any]], excluded: str = ""
                      ) -> dict[str, float]:
    """Per-element energies (Hartree) by torchani's least-squares fit on the training set
    (``subtract_self_energies`` with an unfitted ``EnergyShifter``): the networks learn the
    rest. The ``excluded`` element, which no training molecule has, gets QM9's free-atom U0
    (a physical constant, not a fit to molecules the rung must not see)."""
    import torchani

    from matteralign.datasets.qm9 import ATOM_U0_HARTREE

    present = {s for mol in molecules for s in mol["species"]}
    wanted = [s for s in SPECIES if s != excluded]
    if excluded and excluded in present:
        raise ValueError(f"a training molecule has the excluded element {excluded}")
    if not present >= set(wanted):
        raise ValueError(f"no training molecule has {sorted(set(wanted) - present)}: the "
                         "training set is too small to fit every element's energy")
    shifter = torchani.utils.EnergyShifter(None)
    as_iterable(molecules).subtract_self_energies(shifter, wanted)
    fitted = dict(zip(wanted, map(float, shifter.self_energies.tolist()), strict=True))
    return {s: fitted[s] if s in fitted else ATOM_U0_HARTREE[s] for s in SPECIES}


def memo_aev(computer: Any) -> Any:
    """``computer`` wrapped to compute each batch's AEVs once: the trainer's batches are
    fixed tensors, reused every epoch, so a batch is recognised by its coordinate tensor
    (its storage and shape). ``hits`` counts the reuses."""
    import torch

    class MemoAEV(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.computer = computer
            self.cache: dict[tuple[int, tuple[int, ...]], Any] = {}
            self.hits = 0

        def forward(self, species_coordinates: Any, cell: Any = None, pbc: Any = None) -> Any:
            _, coordinates = species_coordinates
            if coordinates.requires_grad or cell is not None:  # forces, periodic: no memo
                return self.computer(species_coordinates, cell=cell, pbc=pbc)
            key = (coordinates.data_ptr(), tuple(coordinates.shape))
            if key in self.cache:
                self.hits += 1
                return self.cache[key]
            with torch.no_grad():
                out = self.computer(species_coordinates)
            self.cache[key] = out
            return out

    return MemoAEV()


def predict(model: Any, molecules: Sequence[Mapping[str, Any]], sae: Mapping[str, float],
            batch: int = 256) -> np.ndarray:
    """Total energies (Hartree) of ``molecules``: the network's output plus the SAE."""
    import torch

    index = {s: i for i, s in enumerate(SPECIES)}
    out: list[float] = []
    with torch.no_grad():
        for start in range(0, len(molecules), batch):
            chunk = molecules[start:start + batch]
            width = max(len(m["species"]) for m in chunk)
            species = torch.full((len(chunk), width), -1, dtype=torch.long)
            coords = torch.zeros((len(chunk), width, 3), dtype=torch.float32)
            for i, mol in enumerate(chunk):
                n = len(mol["species"])
                species[i, :n] = torch.tensor([index[s] for s in mol["species"]])
                coords[i, :n] = torch.as_tensor(mol["coordinates"], dtype=torch.float32)
            _, energy = model((species, coords))
            out += energy.double().tolist()
    return np.array(out) + [sum(sae[s] for s in m["species"]) for m in molecules]


def score(model: Any, sets: Mapping[str, Sequence[Mapping[str, Any]]],
          sae: Mapping[str, float]) -> tuple[dict[str, Any], np.ndarray]:
    """MAE (eV; total and per atom) of ``model`` on each set, and every test molecule's
    absolute error (eV)."""
    record: dict[str, Any] = {"n": {}, "mae_ev": {}, "mae_ev_per_atom": {}}
    errors: dict[str, np.ndarray] = {}
    for label, molecules in sets.items():
        truth = np.array([m["energies"] for m in molecules])
        atoms = np.array([len(m["species"]) for m in molecules])
        error = np.abs(predict(model, molecules, sae) - truth) * HARTREE_EV
        errors[label] = error
        record["n"][label] = len(molecules)
        record["mae_ev"][label] = float(error.mean())
        record["mae_ev_per_atom"][label] = float((error / atoms).mean())
    return record, errors["test"]


def write_test_errors(path: Path, molecules: Sequence[Mapping[str, Any]],
                      errors: np.ndarray) -> None:
    lines = ["id\tatoms\telements\tabs_error_ev"]
    lines += [f"{m['id']}\t{len(m['species'])}\t{''.join(sorted(set(m['species'])))}\t{e:.8f}"
              for m, e in zip(molecules, errors, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def read_test_errors(folder: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A rung's test errors: ``ids``, ``atoms``, ``elements`` and ``abs_error_ev``."""
    rows = [line.split("\t") for line in
            (Path(folder) / TEST_ERRORS_FILE).read_text().splitlines()[1:]]
    return {"ids": np.array([r[0] for r in rows]), "atoms": np.array([int(r[1]) for r in rows]),
            "elements": np.array([r[2] for r in rows]),
            "abs_error_ev": np.array([float(r[3]) for r in rows])}


def train_rung(name: str, size: int, seed: int, sets_path: str | os.PathLike[str],
               out: str | os.PathLike[str], training: Mapping[str, Any],
               hidden: Mapping[str, Sequence[int]], threads: int = 1,
               device: str = "cpu", excluded: str = "") -> dict[str, Any]:
    """Train the rung into ``out`` (checkpoint, inputs, learning curve, ``training.json``
    with the test MAE and provenance, every test molecule's error) on ``device``; returns
    the record. ``excluded``: train (and validate) on molecules without that element."""
    import torch
    import torchani
    from torchani.neurochem import Trainer
    from torchani.nn import Sequential

    from matteralign.provenance import provenance
    from matteralign.training.qm9_sets import read_sets

    torch.set_num_threads(threads)
    torch_compat()
    sets = read_sets(sets_path, n_train=size, excluded=excluded)
    final = Path(out)
    tmp = final.parent / f".{final.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        shutil.copyfile(shipped_constants(), tmp / AEV_CONSTANTS)
        sae = fit_self_energies(sets["train"], excluded)
        write_sae(tmp / SAE_FILE, sae)
        ipt = write_input(tmp, trainer_input(training, hidden, size))
        seed_everything(seed)
        # tqdm: the trainer's epoch loop needs a progress bar (it calls it unconditionally)
        where = torch.device(device)
        trainer = Trainer(str(ipt), device=where, tqdm=True, checkpoint_name=CHECKPOINT)
        # what Trainer.load_data does to the files it reads, on the ladder's own sets
        batches = int(training["batch_size"])
        trainer.training_set = (as_iterable(sets["train"]).subtract_self_energies(trainer.sae)
                                .species_to_indices().shuffle().collate(batches).cache())
        trainer.validation_set = (as_iterable(sets["validation"])
                                  .subtract_self_energies(trainer.sae).species_to_indices()
                                  .shuffle().collate(trainer.validation_batch_size).cache())
        # batches on the device already: the trainer's .to(device) then returns the same
        # tensors every epoch, which is what lets memo_aev recognise them
        trainer.training_set = [{k: v.to(where) for k, v in b.items()}
                                for b in trainer.training_set]
        trainer.validation_set = [{k: v.to(where) for k, v in b.items()}
                                  for b in trainer.validation_set]
        memo = memo_aev(trainer.aev_computer)
        trainer.model = Sequential(memo, trainer.nn)
        curve: list[tuple[int, float, float]] = []
        start = time.perf_counter()
        evaluate = trainer.evaluate

        def recorded(dataset: Any) -> float:  # the trainer evaluates validation once an epoch
            rmse = evaluate(dataset)
            curve.append((len(curve), rmse, time.perf_counter() - start))
            print(f"epoch {len(curve) - 1}: validation RMSE {rmse:.3f} kcal/mol "
                  f"({curve[-1][2]:.1f} s)", file=sys.stderr, flush=True)
            return rmse

        trainer.evaluate = recorded
        trainer.run()
        seconds = time.perf_counter() - start
        trainer.nn.load_state_dict(torch.load(tmp / CHECKPOINT, map_location=where,
                                              weights_only=True))
        model = Sequential(trainer.aev_computer, trainer.nn).cpu()
        record, test_errors = score(model, sets, sae)
        write_test_errors(tmp / TEST_ERRORS_FILE, sets["test"], test_errors)
        best = int(np.argmin([c[1] for c in curve]))
        if best == 0:  # the checkpoint kept would be the untrained initial network
            raise ValueError(f"{name}: no epoch improved on the initial network's validation "
                             f"RMSE ({curve[0][1]:.3g} kcal/mol); raise ladder.training.steps "
                             "or ladder.training.learning_rate")
        record.update({
            "name": name, "size": size, "seed": seed, "excluded_element": excluded,
            "test_mae_ev": record["mae_ev"]["test"],
            "test_mae_ev_per_atom": record["mae_ev_per_atom"]["test"],
            "epochs": len(curve) - 1, "best_epoch": best, "train_seconds": seconds,
            "validation_rmse_kcal_mol_best": curve[best][1], "aev_cache_hits": memo.hits,
            "threads": threads, "device": device, "trainer": "torchani.neurochem.Trainer",
            "training": dict(training), "hidden": {k: list(v) for k, v in hidden.items()},
            "self_energies_hartree": sae, "sets_sha256": sha256_file(sets_path),
            "train_ids_first_last": [sets["train"][0]["id"], sets["train"][-1]["id"]],
            "checkpoint_sha256": sha256_file(tmp / CHECKPOINT),
            "torchani_version": torchani.__version__,
            **provenance(("torchani", "torch", "numpy", "h5py")),
        })
        lines = ["epoch\tvalidation_rmse_kcal_mol\tseconds"]
        lines += [f"{e}\t{r:.6f}\t{t:.3f}" for e, r, t in curve]
        (tmp / CURVE_FILE).write_text("\n".join(lines) + "\n")
        (tmp / METRICS_FILE).write_text(json.dumps(record, indent=1, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        tmp.replace(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return record
