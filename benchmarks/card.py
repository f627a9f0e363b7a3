"""Time `matteralign card` on a stored study, and the alternative it replaces, in one run.

The new model is a stored model's embeddings plus small noise, under another name, so the
zoo is the dataset's whole grid. Printed: the command's wall time (a fresh interpreter, as a
user runs it), the card's own step times, its peak memory, and, with --compare, the time of
`pairwise` over the new model and the zoo with the same B and P (what re-running the align step
with the new model added would cost), side by side.

    PYTHONPATH=src .venv/bin/python benchmarks/card.py --results results --dataset qm9 \
        --model minimol --compare
"""
import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from matteralign.io import EmbeddingFile, read_embeddings, write_embeddings

parser = argparse.ArgumentParser()
parser.add_argument("--results", default="results")
parser.add_argument("--dataset", default="qm9")
parser.add_argument("--model", default="minimol", help="stored model the new one copies")
parser.add_argument("--compare", action="store_true", help="also time pairwise over all")
args = parser.parse_args()

stored = read_embeddings(Path(args.results) / args.dataset / "embeddings" / f"{args.model}.h5")
x = np.asarray(stored.embeddings, np.float64)
x = x + 0.05 * np.nanstd(x) * np.random.default_rng(0).normal(size=x.shape)
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "bench-new.h5"
    write_embeddings(path, EmbeddingFile(ids=stored.ids, embeddings=x.astype(np.float32),
                                         valid=stored.valid, errors=stored.errors,
                                         attrs={"model": "bench-new", "weights": "benchmark"}))
    out = Path(tmp) / "card"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "matteralign", "card", str(path), "--dataset",
                    args.dataset, "--results", args.results, "--out", str(out)], check=True)
    wall = time.perf_counter() - t0
    import json

    card = json.loads((out / "card.json").read_text())
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    m = len(card["zoo"]["models"])
    s = card["settings"]
    print(f"card: {args.dataset}, N used = {card['dataset']['n_used']}, zoo M = {m}, "
          f"k = {s['k']}, B = {s['bootstrap']}, P = {s['permutations']}, "
          f"metrics = {len(card['metrics'])} pairwise + intrinsic_dim, engine = {s['engine']}")
    print(f"  matteralign card wall time: {wall:.1f} s (steps: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in card["timing_s"].items())
          + f"); peak RSS {peak:.2f} GiB")

    if args.compare:
        from matteralign.analysis.card_inputs import read_zoo
        from matteralign.analysis.preprocess import preprocess
        from matteralign.analysis.study import load_study
        from matteralign.metrics import pairwise

        zoo = read_zoo(args.results, args.dataset)
        study = load_study(zoo.embedding_paths, s["preprocessing"])
        arrays = {"bench-new": preprocess(x[study.mask], s["preprocessing"]), **study.arrays}
        t1 = time.perf_counter()
        pairwise(arrays, list(zoo.metric_files), k=s["k"], bootstrap=s["bootstrap"],
                 permutations=s["permutations"], seed=s["seed"])
        full = time.perf_counter() - t1
        print(f"  pairwise over all {m + 1} models, same B and P: {full:.1f} s "
              f"(card metrics step {card['timing_s']['metrics']:.1f} s: "
              f"{full / card['timing_s']['metrics']:.1f}x; whole card {wall:.1f} s: "
              f"{full / wall:.1f}x)")
