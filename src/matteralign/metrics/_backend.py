"""Tiny numpy/torch shim so that one implementation of every kernel runs on both.

Torch is optional: it is imported lazily, only when a tensor is passed or a ``device`` is
requested.  Every helper accepts and returns arrays of the backend in use; all floating
point work is done in float64 (see docs/metrics.md, "Float precision").
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = Any  # numpy.ndarray or torch.Tensor; kept loose so torch stays optional


def _torch() -> Any:
    import torch  # lazy: the package must import and run with numpy alone

    return torch


def is_torch(x: object) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch")


_CPU_TOPK: list[Any] = []


def _cpu_topk() -> Any:
    """``f(array, k) -> indices`` with torch.topk on numpy buffers, or None without torch."""
    if not _CPU_TOPK:
        try:
            import torch
        except ImportError:
            _CPU_TOPK.append(None)
        else:
            def topk(a: np.ndarray, k: int) -> np.ndarray:
                t = torch.from_numpy(a)
                return torch.topk(t, k, dim=1, largest=True, sorted=False).indices.numpy()

            _CPU_TOPK.append(topk)
    return _CPU_TOPK[0]


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

    def topk_candidates(self, a: Array, k: int) -> Array:
        """Indices of *some* k largest entries per row (ties resolved later)."""
        if self.kind == "numpy":
            fast = _cpu_topk()
            if fast is not None and a.flags.c_contiguous:
                # torch's partial selection is ~6x numpy's argpartition for k << N; it reads
                # the numpy buffer in place (no copy) and returns the same set up to ties
                return fast(a, k)
            return np.argpartition(a, a.shape[1] - k, axis=1)[:, a.shape[1] - k :]
        return self.xp.topk(a, k, dim=1, largest=True, sorted=False).indices

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
