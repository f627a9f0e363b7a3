"""Embedding throughput: matteralign's batched adapters vs the per-structure ASE-calculator
loop that study scripts usually run, on the same structures, side by side in one run.

For every model this prints structures/s of

* ours: ``adapter.embed_batch`` over batches of the adapter's batch size (one forward pass
  per batch of many structures: what ``matteralign embed`` runs), and
* loop: the package's own ASE calculator, ``atoms.get_potential_energy()`` one structure at a
  time (the calculator computes forces too, as the usual scripts get them whether they need
  them or not; features are read through a hook in those scripts, which costs nothing extra).

Each model runs in its family environment (.envs/{family}); the structures are a
deterministic subsample of a dataset prepared by the driver (``matteralign prepare``).

    PYTHONPATH=src .venv/bin/python benchmarks/embed.py --dataset qm9 --n 200
    ... --device cuda   # both sides on a GPU (the clock waits for the GPU's work)
    ... --ops 3         # and where our time goes: the three costliest torch ops
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ["chgnet-0.3.0", "sevennet-0", "mace-mp-0-medium",
                  "orb-v3-conservative-inf-omat", "ani-1x"]

#: code that builds the package's ASE calculator from a loaded adapter ``a`` (same weights)
CALCULATORS = {
    # CHGNet needs a cell: molecules get the same vacuum box as in the adapter
    "chgnet": ("from chgnet.model.dynamics import CHGNetCalculator\n"
               "from matteralign.models.chgnet import boxed as prepare\n"
               "calc = CHGNetCalculator(model=a._model, use_device=device)"),
    "sevenn": ("from sevenn.calculator import SevenNetCalculator\n"
               "calc = SevenNetCalculator(str(a._checkpoint_file()), device=device)"),
    "mace": ("import torch, tempfile\n"
             "from mace.calculators import MACECalculator\n"
             "path = tempfile.mktemp(suffix='.model'); torch.save(a._model, path)\n"
             "calc = MACECalculator(model_paths=path, device=device, default_dtype='float64')"),
    "orb": ("from orb_models.forcefield.calculator import ORBCalculator\n"
            "calc = ORBCalculator(a._model, system_config=a._system_config, device=device)"),
    "ani": "calc = a._model.ase()",  # the model is already on the adapter's device
}

WORKER = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np
from matteralign.datasets.store import read_structures
from matteralign.models import get_model
model, structures, repeat, ops = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
device = sys.argv[5]
a = get_model(model, device=device).load()
def sync():  # GPU work is asynchronous: wait for it before reading the clock
    if device.startswith("cuda"):
        import torch
        torch.cuda.synchronize()
records = [r for r in read_structures(structures) if not a.check(r)]
out = {"n": len(records), "weights": a.weights_label(), "batch": a.batch_size}
def ours():
    for i in range(0, len(records), a.batch_size):
        a.embed_batch(records[i:i + a.batch_size])
    sync()
ours()  # warm-up: lazy initialisation, allocator
best = float("inf")
for _ in range(repeat):
    t = time.perf_counter(); ours(); best = min(best, time.perf_counter() - t)
out["ours_s"] = best
if ops:  # where our time goes: the torch ops with the largest self CPU time
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter(); ours(); wall = time.perf_counter() - t
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    out["ops"] = [(e.key, e.self_cpu_time_total / 1e6 / wall) for e in events[:ops]]
    out["ops_torch"] = total / wall
def prepare(atoms):
    return atoms.copy()
try:
    exec(CALC)
    def loop():
        for r in records:
            atoms = prepare(r.atoms)
            atoms.calc = calc
            atoms.get_potential_energy()
        sync()
    loop()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter(); loop(); best = min(best, time.perf_counter() - t)
    out["loop_s"] = best
except Exception as err:  # a calculator that cannot be built is reported, not fatal
    out["loop_error"] = f"{type(err).__name__}: {err}"[:200]
print("RESULT " + json.dumps(out))
"""


def run_model(model: str, family: str, structures: Path, repeat: int, ops: int = 0,
              device: str = "cpu") -> dict:
    python = ROOT / ".envs" / family / "bin" / "python"
    if not python.exists():
        return {"error": f".envs/{family} not built"}
    calculator = CALCULATORS.get(
        family, f"raise LookupError('no ASE calculator recipe for family {family}')")
    code = WORKER.replace("    exec(CALC)\n", "".join(
        f"    {line}\n" for line in calculator.splitlines()))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([str(python), "-c", code, model, str(structures), str(repeat),
                           str(ops), device],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": proc.stderr.strip().splitlines()[-1][:200] if proc.stderr else "failed"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="qm9")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--repeat", type=int, default=1, help="best of this many timed runs")
    ap.add_argument("--device", default="cpu",
                    help="where both ours and the loop run (cuda: a GPU figure)")
    ap.add_argument("--ops", type=int, default=0, metavar="K",
                    help="also profile one pass of ours and print its K costliest torch ops "
                         "(share of the wall time, self CPU)")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT / "src"))
    from matteralign.datasets.prepare import prepare_dataset
    from matteralign.models import registered_models

    models = registered_models()
    with tempfile.TemporaryDirectory() as tmp:
        structures = Path(tmp) / "structures.h5"
        prepare_dataset(args.dataset, args.n, args.seed, structures, {})
        print(f"# embedding throughput, {args.dataset} n={args.n} (seed {args.seed}), "
              f"{args.device}, {os.cpu_count()} cores, best of {args.repeat}\n")
        print("| model | weights | structures | batch | ours (struct/s) | "
              "ASE loop (struct/s) | ratio |")
        print("|---|---|---:|---:|---:|---:|---:|")
        profiles: dict[str, dict] = {}
        for model in args.models:
            res = run_model(model, models[model].family, structures, args.repeat, args.ops,
                            args.device)
            if "error" in res:
                print(f"| {model} | - | - | - | - | - | {res['error']} |")
                continue
            ours = res["n"] / res["ours_s"]
            loop = res["n"] / res["loop_s"] if "loop_s" in res else None
            print(f"| {model} | {res['weights']} | {res['n']} | {res['batch']} | {ours:.1f} | "
                  + (f"{loop:.1f} | {ours / loop:.1f}x |" if loop else
                     f"- | {res.get('loop_error', '')} |"), flush=True)
            profiles[model] = res
        for model, res in profiles.items():
            if "ops" in res:
                top = ", ".join(f"{name} {share:.0%}" for name, share in res["ops"])
                print(f"\n{model}: torch ops {res['ops_torch']:.0%} of our wall time; "
                      f"costliest: {top}")


if __name__ == "__main__":
    main()
