"""Time matteralign.metrics.pairwise on the default study's shapes (synthetic, correlated)."""
import sys
import time

import numpy as np

from matteralign.analysis.preprocess import preprocess
from matteralign.metrics import pairwise

GRIDS = {"qm9": [64, 64, 128, 128, 64, 1008, 512, 256, 384, 2048, 100],
         "coremof": [64, 128, 64, 384, 100, 256]}
METRICS = ["cknna", "mutual_knn", "cka", "dcor", "information_imbalance", "intrinsic_dim"]
b, p = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
w = np.random.default_rng(1).normal(size=(200, 8)).astype(np.float32)
t0 = time.perf_counter()
pairwise({"a": w, "b": w[:, ::-1].copy()}, metrics=METRICS, k=5)
print(f"warm-up (numba cache load): {time.perf_counter() - t0:.1f} s")
chosen = sys.argv[3].split(",") if len(sys.argv) > 3 else list(GRIDS)
for name, dims in [(g, GRIDS[g]) for g in chosen]:
    z = rng.normal(size=(1000, 16))
    emb = {f"m{i}": preprocess((np.tanh(z @ rng.normal(size=(16, d)))
                                + 0.3 * rng.normal(size=(1000, d))).astype(np.float32), "l2")
           for i, d in enumerate(dims)}
    t = time.perf_counter()
    pairwise(emb, metrics=METRICS, k=25, bootstrap=b, permutations=p, seed=0)
    print(f"{name}: M={len(dims)} N=1000 B={b} P={p}: {time.perf_counter() - t:.1f} s", flush=True)
