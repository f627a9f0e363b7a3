"""CPU benchmark: torchani 2.2.4's NeuroChem trainer against mace-torch's own trainer.

Both train a small interatomic potential on QM9 energies only (U0, no forces) on the same
training, validation and test molecules (the ladder's set file, written here with
:func:`matteralign.training.qm9_sets.write_sets`), at batch size 32, for a fixed budget of
about 300 gradient steps, one run after the other with the same number of CPU threads.

* ``ani``: :func:`matteralign.training.ani_train.train_rung` (the repository's ladder
  trainer: ANI-1x networks, torchani's ``neurochem.Trainer``), in ``.envs/ani``.
* ``mace-ef``: ``mace.cli.run_train`` as shipped (mace-torch 0.3.x), in ``.envs/mace``:
  its losses all need forces, so forces are computed and weighted 0 (``--forces_weight 0``).
* ``mace-e``: the same entry point with ``--compute_forces False``; the forces term of the
  loss, which would fail on the missing forces, is replaced by zero in the launcher (the
  installed package is not modified). This is the energy-only cost.

Every run's gradient steps are timed the same way, by a global ``torch.optim`` step hook
(the time between consecutive optimiser steps: forward, backward, step and data loading);
s/step is the median of those intervals after the first epoch (the warm-up). The test MAE
is the mean over test molecules of |E_pred - E_ref| / n_atoms (eV/atom), as ``train_rung``
scores it; for MACE it is recomputed here from the saved model with ``MACECalculator``.

Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/ladder_library.py [--threads 1,2]

The parent process needs only the standard library plus the driver venv (for the sets and
ase); each run is this file executed by the other environment's python (``child-*``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANI_PYTHON = ROOT / ".envs" / "ani" / "bin" / "python"
MACE_PYTHON = ROOT / ".envs" / "mace" / "bin" / "python"
HARTREE_EV = 27.211386246
BATCH = 32
SETS = ("train", "validation", "test")
MACE_MODEL = ["--model", "MACE", "--num_channels", "32", "--max_L", "0",
              "--num_interactions", "2", "--r_max", "5.0", "--correlation", "2"]


# ---------------------------------------------------------------- shared (any python)

def step_clock(only: str | None = None) -> list[float]:
    """perf_counter() after each optimiser step (of optimisers of class ``only``, or all),
    through torch's global step hook."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    stamps: list[float] = []

    def hook(optimizer, args, kwargs) -> None:  # noqa: ARG001
        if only is None or type(optimizer).__name__ == only:
            stamps.append(time.perf_counter())

    register_optimizer_step_post_hook(hook)
    return stamps


def step_stats(stamps: list[float], per_epoch: int) -> dict[str, float]:
    """Median and mean step interval after the first epoch (warm-up), and their count."""
    intervals = [b - a for a, b in zip(stamps, stamps[1:], strict=False)][per_epoch:]
    if not intervals:
        return {"s_per_step": math.nan, "s_per_step_mean": math.nan, "timed_steps": 0}
    return {"s_per_step": statistics.median(intervals),
            "s_per_step_mean": statistics.fmean(intervals), "timed_steps": len(intervals)}


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


# ---------------------------------------------------------------- children

def child_ani(args: argparse.Namespace) -> None:
    """In .envs/ani: the repository's train_rung, its optimiser steps timed."""
    from matteralign.training.ani_train import train_rung
    from matteralign.training.ladder import ANI1X_HIDDEN

    training = {"steps": args.steps, "batch_size": BATCH, "patience": 1000,
                "learning_rate": 0.002, "min_learning_rate": 1e-5, "weight_decay": 1e-4}
    stamps = step_clock("AdamW")  # the trainer steps AdamW (weights) then SGD (biases)
    set_threads(args.threads)
    start = time.perf_counter()
    record = train_rung(f"bench-ani-t{args.threads}", args.n_train, 0, args.sets, args.out,
                        training, ANI1X_HIDDEN, threads=args.threads)
    result = {"train_seconds": record["train_seconds"], "epochs": record["epochs"],
              "steps": len(stamps), "test_mae_ev_per_atom": record["test_mae_ev_per_atom"],
              "in_process_seconds": time.perf_counter() - start,
              **step_stats(stamps, math.ceil(args.n_train / BATCH))}
    Path(args.result).write_text(json.dumps(result, indent=1))


def energy_only_loss() -> None:
    """mace's weighted loss with its forces term 0 where the model computed no forces."""
    import torch
    from mace.modules import loss

    forces_term = loss.mean_squared_error_forces

    def mse_forces(ref, pred, ddp=None):
        if pred.get("forces") is None:
            return torch.zeros((), dtype=ref["energy"].dtype, device=ref["energy"].device)
        return forces_term(ref, pred, ddp)

    loss.mean_squared_error_forces = mse_forces


def mace_test_mae(model: Path, test_xyz: Path) -> float:
    """MAE (eV/atom) of the saved MACE model on the test configurations."""
    import numpy as np
    from ase.io import read
    from mace.calculators import MACECalculator

    calc = MACECalculator(model_paths=str(model), device="cpu", default_dtype="float32")
    errors = []
    for atoms in read(test_xyz, index=":"):
        ref = atoms.info["REF_energy"]
        atoms.calc = calc
        errors.append(abs(atoms.get_potential_energy() - ref) / len(atoms))
    return float(np.mean(errors))


def child_mace(args: argparse.Namespace) -> None:
    """In .envs/mace: mace.cli.run_train with the given arguments, its steps timed."""
    from mace import tools
    from mace.cli import run_train

    if args.energy_only:
        energy_only_loss()
    stamps = step_clock()
    set_threads(args.threads)
    train_fn, window = tools.train, {}

    def timed_train(*a, **kw):
        window["start"] = time.perf_counter()
        try:
            return train_fn(*a, **kw)
        finally:
            window["end"] = time.perf_counter()

    tools.train = timed_train
    start = time.perf_counter()
    sys.argv = ["mace_run_train", *args.mace_args]
    run_train.main()
    in_process = time.perf_counter() - start
    work = Path(args.out)
    name = args.mace_args[args.mace_args.index("--name") + 1]
    result = {"train_seconds": window["end"] - window["start"], "steps": len(stamps),
              "epochs": len(stamps) // (args.n_train // BATCH),
              "test_mae_ev_per_atom": mace_test_mae(work / f"{name}.model",
                                                    work.parent / "xyz" / "test.xyz"),
              "in_process_seconds": in_process,
              **step_stats(stamps, args.n_train // BATCH)}  # mace drops the last batch
    Path(args.result).write_text(json.dumps(result, indent=1))


# ---------------------------------------------------------------- parent (driver venv)

def write_data(work: Path, n_train: int) -> Path:
    """The ladder's sets (h5) and their extxyz copies (energy in eV as REF_energy)."""
    from ase import Atoms
    from ase.io import write

    from matteralign.training.qm9_sets import read_sets, write_sets

    sets_path = work / "sets.h5"
    if not sets_path.exists():
        ladder = {"split_seed": 0, "test": 500, "validation": 250, "sizes": [n_train],
                  "seed": 0, "replicate_sizes": [], "replicate_seeds": []}
        write_sets(ladder, [], sets_path)
    sets = read_sets(sets_path, n_train=n_train)
    (work / "xyz").mkdir(exist_ok=True)
    for name in SETS:
        frames = []
        for mol in sets[name]:
            atoms = Atoms(mol["species"], positions=mol["coordinates"], pbc=False)
            atoms.info["REF_energy"] = mol["energies"] * HARTREE_EV
            frames.append(atoms)
        write(work / "xyz" / f"{name}.xyz", frames, format="extxyz")
    print(f"sets: {', '.join(f'{k} {len(v)}' for k, v in sets.items())} -> {sets_path}")
    return sets_path


def mace_args(work: Path, out: Path, name: str, epochs: int, energy_only: bool) -> list[str]:
    xyz = work / "xyz"
    return ["--name", name, "--seed", "0", "--work_dir", str(out),
            "--train_file", str(xyz / "train.xyz"), "--valid_file", str(xyz / "validation.xyz"),
            "--test_file", str(xyz / "test.xyz"), "--energy_key", "REF_energy",
            "--forces_weight", "0", "--compute_forces", str(not energy_only),
            "--E0s", "average", "--scaling", "std_scaling", *MACE_MODEL,
            "--default_dtype", "float32", "--device", "cpu", "--batch_size", str(BATCH),
            "--valid_batch_size", "256", "--max_num_epochs", str(epochs),
            "--error_table", "PerAtomMAE"]


def run_child(python: Path, child: list[str], threads: int, log: Path, result: Path
              ) -> dict[str, object]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": str(ROOT / "src"), "PYTHONWARNINGS": "ignore"}
    load_before = os.getloadavg()
    start = time.perf_counter()
    with log.open("w") as handle:
        proc = subprocess.run([str(python), str(Path(__file__).resolve()), *child],
                              stdout=handle, stderr=subprocess.STDOUT, env=env, check=False)
    wall = time.perf_counter() - start
    record: dict[str, object] = {"process_seconds": wall, "load_before": load_before,
                                 "load_after": os.getloadavg(), "rc": proc.returncode}
    if proc.returncode == 0 and result.exists():
        record.update(json.loads(result.read_text()))
    else:
        record["error"] = log.read_text()[-3000:]
    return record


def parent(args: argparse.Namespace) -> None:
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    sets_path = write_data(work, args.n_train)
    epochs = max(1, round(args.steps / (args.n_train // BATCH)))  # mace: drop_last batches
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for label in args.runs.split(","):
            out = work / f"{label}-t{threads}"
            result = work / f"{label}-t{threads}.json"
            result.unlink(missing_ok=True)
            common = ["--threads", str(threads), "--n-train", str(args.n_train),
                      "--steps", str(args.steps), "--out", str(out), "--result", str(result)]
            if label == "ani":
                child = ["child-ani", *common, "--sets", str(sets_path)]
                python = ANI_PYTHON
            elif label in ("mace-ef", "mace-e"):
                energy_only = label == "mace-e"
                child = ["child-mace", *common, *(["--energy-only"] if energy_only else []),
                         "--", *mace_args(work, out, label, epochs, energy_only)]
                python = MACE_PYTHON
                out.mkdir(parents=True, exist_ok=True)
            else:
                raise SystemExit(f"unknown run {label!r} (ani, mace-ef, mace-e)")
            print(f"running {label} with {threads} thread(s) ...", flush=True)
            record = run_child(python, child, threads, work / f"{label}-t{threads}.log", result)
            record.update({"run": label, "threads": threads})
            rows.append(record)
            if "error" in record:
                print(f"  FAILED (rc {record['rc']}):\n{record['error']}", flush=True)
            else:
                print(f"  {record['steps']} steps, {record['s_per_step']:.4f} s/step, "
                      f"train {record['train_seconds']:.1f} s, test MAE "
                      f"{1000 * record['test_mae_ev_per_atom']:.2f} meV/atom", flush=True)
    (work / "results.json").write_text(json.dumps(rows, indent=1))
    print_table(rows)


def print_table(rows: list[dict[str, object]]) -> None:
    head = (f"{'run':<8} {'thr':>3} {'steps':>5} {'s/step':>8} {'train s':>8} "
            f"{'s/300 st':>8} {'proc s':>7} {'test MAE meV/at':>15} {'load 1m before/after':>21}")
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        load = f"{r['load_before'][0]:.2f}/{r['load_after'][0]:.2f}"
        if "error" in r:
            print(f"{r['run']:<8} {r['threads']:>3} FAILED rc={r['rc']} {load:>21}")
            continue
        per300 = r["train_seconds"] * 300 / r["steps"]
        print(f"{r['run']:<8} {r['threads']:>3} {r['steps']:>5} {r['s_per_step']:>8.4f} "
              f"{r['train_seconds']:>8.1f} {per300:>8.1f} {r['process_seconds']:>7.1f} "
              f"{1000 * r['test_mae_ev_per_atom']:>15.2f} {load:>21}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode")
    p.add_argument("--work", default="/tmp/ladder_library", help="folder for sets and runs")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--runs", default="ani,mace-e,mace-ef", help="ani, mace-e, mace-ef")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--n-train", type=int, default=1000)
    for mode in ("child-ani", "child-mace"):
        c = sub.add_parser(mode)
        for flag in ("--threads", "--n-train", "--steps"):
            c.add_argument(flag, type=int, required=True)
        for flag in ("--out", "--result"):
            c.add_argument(flag, required=True)
        c.add_argument("--sets")
        c.add_argument("--energy-only", action="store_true")
        c.add_argument("mace_args", nargs=argparse.REMAINDER)
    args = p.parse_args()
    if args.mode == "child-ani":
        child_ani(args)
    elif args.mode == "child-mace":
        args.mace_args = [a for a in args.mace_args if a != "--"]
        child_mace(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
