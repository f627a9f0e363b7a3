"""Tiny numpy/torch shim so that one implementation of every kernel runs on both.

Torch is optional: it is imported lazily, only when a tensor is passed or a ``device`` is
requested.  Every helper accepts and returns arrays of the backend in use; all floating
point work is done in float64 (see docs/metrics.md, "Float precision").
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor; kept loose so torch stays optional


def _torch() -> Any:
    import torch  # lazy: the package must import and run with numpy alone

    return torch


def is_torch(x: object) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch")


#: per-slot upper size of the CPU scratch buffers kept between engine calls
WORKSPACE_CACHE_BYTES = 128 * 2**20
_LOCAL = threading.local()


def _workspace_cache() -> dict[int, np.ndarray]:
    if not hasattr(_LOCAL, "buffers"):
        _LOCAL.buffers = {}
    return _LOCAL.buffers


def clear_workspace() -> None:
    """Release the CPU scratch buffers this thread keeps between metric calls."""
    _workspace_cache().clear()


class Backend:
    """Array operations for one library (numpy or torch) on one device."""

    def __init__(self, kind: str = "numpy", device: str | None = None) -> None:
        self.kind = kind
        self.device = device
        self.xp: Any = np if kind == "numpy" else _torch()

    # ------------------------------------------------------------------ creation / transfer
    def asarray(self, x: Array) -> Array:
        """float64 copy on this backend (inputs of any float dtype are upcast first)."""
        if self.kind == "numpy":
            if is_torch(x):
                x = x.detach().cpu().numpy()
            return np.ascontiguousarray(np.asarray(x, dtype=np.float64))
        torch = self.xp
        if not is_torch(x):
            x = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float64)))
        return x.detach().to(device=self.device, dtype=torch.float64).contiguous()

    def check_finite(self, x: Array, name: str) -> None:
        """A clear error for NaN/inf rows: neighbour selection and distances have no
        meaning there, and the compiled and torch selections would treat them differently."""
        ok = np.isfinite(x).all(1) if self.kind == "numpy" else self.xp.isfinite(x).all(1)
        bad = np.flatnonzero(~self.to_numpy(ok))
        if len(bad):
            raise ValueError(
                f"{name}: {len(bad)} row(s) contain NaN or inf (first: {bad[:5].tolist()}); "
                "drop them, e.g. keep the rows whose `valid` flag is set in every embedding "
                "file, before computing alignment"
            )

    def index(self, x: Array) -> Array:
        """int64 index array on this backend."""
        if self.kind == "numpy":
            if is_torch(x):
                x = x.detach().cpu().numpy()
            return np.asarray(x, dtype=np.int64)
        torch = self.xp
        if not is_torch(x):
            x = torch.from_numpy(np.asarray(x, dtype=np.int64))
        return x.to(device=self.device, dtype=torch.int64)

    def to_numpy(self, x: Array) -> np.ndarray:
        if self.kind == "numpy":
            return np.asarray(x)
        return x.detach().cpu().numpy()

    def arange(self, start: int, stop: int | None = None) -> Array:
        if stop is None:
            start, stop = 0, start
        if self.kind == "numpy":
            return np.arange(start, stop, dtype=np.int64)
        return self.xp.arange(start, stop, dtype=self.xp.int64, device=self.device)

    def zeros(self, shape: tuple[int, ...], integer: bool = False) -> Array:
        if self.kind == "numpy":
            return np.zeros(shape, dtype=np.int64 if integer else np.float64)
        torch = self.xp
        dt = torch.int64 if integer else torch.float64
        return torch.zeros(shape, dtype=dt, device=self.device)

    def empty(self, shape: tuple[int, ...]) -> Array:
        """Uninitialised float64 array."""
        if self.kind == "numpy":
            return np.empty(shape, dtype=np.float64)
        return self.xp.empty(shape, dtype=self.xp.float64, device=self.device)

    def workspace(self, shape: tuple[int, ...], slot: int = 0) -> Array:
        """Uninitialised float64 scratch array, reused across calls on CPU.

        Writing a GEMM into freshly mapped pages costs as much as the GEMM (page faults;
        measured 20 of 45 ms at N = 2,500), and the engine is called many times in a row
        (bootstrap, permutations, one pair after another).  Up to WORKSPACE_CACHE_BYTES per
        slot stay allocated between calls in each thread; larger requests are not kept.
        """
        if self.kind != "numpy":
            return self.empty(shape)
        size = int(np.prod(shape))
        cache = _workspace_cache()
        buf = cache.get(slot)
        if buf is None or buf.size < size:
            buf = np.empty(size, dtype=np.float64)
            if 8 * size <= WORKSPACE_CACHE_BYTES:
                cache[slot] = buf
        return buf[:size].reshape(shape)

    def gram_into(self, a: Array, b: Array, out: Array) -> Array:
        """out = a @ bᵀ, written into a reused workspace: a fresh N-column block costs a
        page-faulting allocation as long as the GEMM itself (measured 20 of 45 ms at N=2,500)."""
        if self.kind == "numpy":
            return np.matmul(a, b.T, out=out)
        return self.xp.mm(a, b.T, out=out)

    def contiguous(self, a: Array) -> Array:
        return np.ascontiguousarray(a) if self.kind == "numpy" else a.contiguous()

    def stack(self, arrays: list[Array]) -> Array:
        return np.stack(arrays) if self.kind == "numpy" else self.xp.stack(arrays)

    def concat(self, arrays: list[Array]) -> Array:
        return np.concatenate(arrays) if self.kind == "numpy" else self.xp.cat(arrays)

    # ------------------------------------------------------------------ reductions
    def count_rows(self, mask: Array) -> Array:
        """Number of True entries per row, as int64."""
        if self.kind == "numpy":
            return np.count_nonzero(mask, axis=1).astype(np.int64)
        return self.xp.count_nonzero(mask, dim=1)

    def take_rows(self, a: Array, idx: Array) -> Array:
        """a[r, idx[r, c]] for every row r (idx is 2-D) or a[r, idx[r]] (idx is 1-D)."""
        if idx.ndim == 1:
            idx2 = idx[:, None]
            out = np.take_along_axis(a, idx2, 1) if self.kind == "numpy" else a.gather(1, idx2)
            return out[:, 0]
        return np.take_along_axis(a, idx, 1) if self.kind == "numpy" else a.gather(1, idx)

    def argmin_rows(self, a: Array) -> Array:
        # both libraries return the first (lowest-index) minimum: our documented tie rule
        return np.argmin(a, axis=1) if self.kind == "numpy" else self.xp.argmin(a, dim=1)

    def two_smallest(self, a: Array) -> Array:
        """The two smallest values of every row, ascending, shape (rows, 2)."""
        if self.kind == "numpy":
            return np.partition(a, 1, axis=1)[:, :2]
        return self.xp.topk(a, 2, dim=1, largest=False, sorted=True).values

    def topk_sorted(self, a: Array, k: int) -> tuple[Array, Array]:
        """Values and indices of *some* k largest entries per row, largest first (ties at
        the k-th place are resolved by the caller)."""
        if self.kind == "numpy":
            n = a.shape[1]
            idx = np.argpartition(a, n - k, axis=1)[:, n - k :]
            vals = np.take_along_axis(a, idx, 1)
            order = np.argsort(-vals, axis=1, kind="stable")
            return np.take_along_axis(vals, order, 1), np.take_along_axis(idx, order, 1)
        v, i = self.xp.topk(a, k, dim=1, largest=True, sorted=True)
        return v, i

    def sort_rows(self, a: Array) -> tuple[Array, Array]:
        if self.kind == "numpy":
            order = np.argsort(a, axis=1, kind="stable")
            return np.take_along_axis(a, order, 1), order
        v, o = self.xp.sort(a, dim=1, stable=True)
        return v, o

    def searchsorted(self, sorted_seq: Array, values: Array) -> Array:
        if self.kind == "numpy":
            return np.searchsorted(sorted_seq, values)
        return self.xp.searchsorted(sorted_seq, values)

    def bincount(self, idx: Array, weights: Array, n: int) -> Array:
        if self.kind == "numpy":
            return np.bincount(idx, weights=weights, minlength=n)
        return self.xp.bincount(idx, weights=weights, minlength=n)

    def nonzero(self, mask: Array) -> Array:
        """1-D int64 positions of True entries of a 1-D mask."""
        if self.kind == "numpy":
            return np.flatnonzero(mask)
        return self.xp.nonzero(mask).flatten()

    def sqrt_clamped(self, a: Array) -> Array:
        """sqrt(max(a, 0)) in place: Gram-trick squared distances can be slightly negative."""
        if self.kind == "numpy":
            np.maximum(a, 0.0, out=a)
            return np.sqrt(a, out=a)
        return a.clamp_(min=0.0).sqrt_()

    def fill_where(self, a: Array, mask: Array, value: float) -> Array:
        a[mask] = value
        return a

    def item(self, x: Array) -> float:
        return float(x)


def backend_for(arrays: list[Array], device: str | None) -> Backend:
    """numpy unless a device is requested or any input is a torch tensor.

    With tensors and no explicit device we stay on the tensors' device.
    """
    if device is None and not any(is_torch(a) for a in arrays):
        return Backend("numpy")
    if device is None:
        device = str(next(a for a in arrays if is_torch(a)).device)
    if device == "cpu" and not any(is_torch(a) for a in arrays):
        return Backend("numpy")
    return Backend("torch", device)
