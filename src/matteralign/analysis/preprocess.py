"""Embedding preprocessing applied before every metric (named in each matrix file)."""

from __future__ import annotations

import numpy as np

PREPROCESSING = ("none", "l2", "center-l2", "standardize")


def preprocess(x: np.ndarray, method: str) -> np.ndarray:
    """Return a float64 copy of ``x`` [N, D] after ``method``.

    - ``l2``: each row scaled to unit norm (platonic-rep's default); zero rows stay zero.
    - ``center-l2``: subtract the mean row first, then ``l2``.
    - ``standardize``: each feature to zero mean, unit variance (constant features -> 0).
    """
    x = np.asarray(x, dtype=np.float64)
    if method == "none":
        return x.copy()
    if method == "standardize":
        std = x.std(axis=0)
        return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    if method == "center-l2":
        x = x - x.mean(axis=0)
    elif method != "l2":
        raise ValueError(f"unknown preprocessing {method!r}; choose one of {PREPROCESSING}")
    # scale by the largest entry first so tiny rows do not underflow when squared
    peak = np.abs(x).max(axis=1, keepdims=True)
    x = x / np.where(peak > 0, peak, 1.0)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
