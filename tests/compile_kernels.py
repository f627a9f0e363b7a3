"""Compile the numba kernels (the engine's and dcor's) once, before parallel test workers start.

In a fresh checkout every numba cache is empty; two workers compiling the same kernels at
once crashed one of them (SIGABRT inside dcor's import). `make test` runs this first, so
that no test, serial or parallel, pays or races for the compile."""

import dcor  # noqa: F401  (compiles its kernels at import)
import numpy as np

from matteralign.metrics import pairwise

x = np.random.default_rng(0).normal(size=(60, 4))
for dtype in (np.float64, np.float32):
    a = x.astype(dtype)
    pairwise({"a": a, "b": a[:, ::-1].copy()}, k=5)
