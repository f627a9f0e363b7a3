"""Time the atom-level alignment of a stored study, next to the pooled one, in one run.

For each dataset with per-atom files (results/{dataset}/atoms/{model}.h5): the atoms and
structures compared, the embedding jobs' times (each wrote both the pooled and the
per-atom file; from Snakemake's benchmark files, when the study ran through the workflow),
and, each in a fresh interpreter so that its peak memory is its own, `matteralign
align-atoms` over all atoms (B, P as given) and by element, and `matteralign align` over the
pooled files of the same models with the same B and P.

    PYTHONPATH=src .venv/bin/python benchmarks/atom_level.py --results results \
        --datasets qm9 coremof --bootstrap 5 --permutations 5
"""
import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from matteralign.io import read_atom_embeddings
from matteralign.metrics import SPECS

parser = argparse.ArgumentParser()
parser.add_argument("--results", default="results")
parser.add_argument("--datasets", nargs="+", default=["qm9", "coremof"])
parser.add_argument("--metrics", nargs="+", default=["cknna", "mutual_knn", "cka", "dcor",
                                                      "information_imbalance", "intrinsic_dim"])
parser.add_argument("--k", type=int, default=25)
parser.add_argument("--bootstrap", type=int, default=5)
parser.add_argument("--permutations", type=int, default=5)
args = parser.parse_args()
results = Path(args.results)


#: runs the CLI, then prints the interpreter's own peak RSS (KiB) as its last line
RUN = ("import resource, sys; from matteralign.cli import main; code = main(sys.argv[1:]); "
       "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (GiB) of one fresh interpreter running ``command``."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUN, *command], check=True,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    return wall, int(proc.stdout.strip().splitlines()[-1]) / 2**20


def job_seconds(dataset: str, rule: str, model: str) -> float | None:
    path = results / "benchmarks" / rule / dataset / f"{model}.tsv"
    if not path.exists():
        return None
    with path.open() as handle:
        return float(next(csv.DictReader(handle, delimiter="\t"))["s"])


settings = f"k = {args.k}, B = {args.bootstrap}, P = {args.permutations}"
print(f"atom-level alignment ({settings}, metrics: {', '.join(args.metrics)})")
for dataset in args.datasets:
    files = sorted((results / dataset / "atoms").glob("*.h5"))
    files = [f for f in files if f.stem not in SPECS]  # the metric files sit beside them
    if len(files) < 2:
        print(f"{dataset}: fewer than two per-atom files under {results / dataset / 'atoms'}")
        continue
    atoms = {f.stem: read_atom_embeddings(f) for f in files}
    first = atoms[files[0].stem]
    dims = {model: a.embeddings.shape[1] for model, a in atoms.items()}
    widths = ", ".join(f"{m} D={d}" for m, d in dims.items())
    print(f"\n{dataset}: {len(files)} potentials ({widths}); {len(first.structure_ids)} "
          f"atoms of {int(first.attrs['n_structures'])} structures "
          f"(max_atoms_total {first.attrs['max_atoms_total']})")
    for f in files:
        with_atoms = job_seconds(dataset, "embed", f.stem)
        if with_atoms is not None:
            print(f"  embed {f.stem} with per-atom output: {with_atoms:.0f} s")
    with tempfile.TemporaryDirectory() as tmp:
        outs = [f"{m}={tmp}/{m}.h5" for m in args.metrics]
        common = ["--k", str(args.k), "--bootstrap", str(args.bootstrap),
                  "--permutations", str(args.permutations)]
        wall, peak = timed(["align-atoms", "--atoms", *map(str, files), "--out", *outs,
                            *common])
        print(f"  align-atoms, all atoms:  {wall:7.1f} s, peak RSS {peak:.2f} GiB")
        by = [f"{m}={tmp}/by-{m}.h5" for m in args.metrics]
        wall, peak = timed(["align-atoms", "--atoms", *map(str, files), "--by-element", *by,
                            *common])
        print(f"  align-atoms, by element: {wall:7.1f} s, peak RSS {peak:.2f} GiB")
        pooled = [str(results / dataset / "embeddings" / f"{f.stem}.h5") for f in files]
        wall, peak = timed(["align", "--embeddings", *pooled,
                            "--out", *[f"{m}={tmp}/pooled-{m}.h5" for m in args.metrics],
                            *common])
        print(f"  align, pooled (same models, every valid structure): {wall:7.1f} s, "
              f"peak RSS {peak:.2f} GiB")
