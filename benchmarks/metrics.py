"""Benchmark of matteralign.metrics against the dense anchors (issue 4).

Prints, for each N, our time, the anchor's time, the ratio and max |difference| on the same
data, then the all-pairs driver against a loop of the fastest dense per-pair formulas, and
the 10-model suite.  Usage::

    PYTHONPATH=src python benchmarks/metrics.py                  # N = 1k, 2k, 4k, 8k
    PYTHONPATH=src python benchmarks/metrics.py --n 1000 2000 --suite-n 3000   # quick run
    # the GPU goals (issue 4), on a machine with CUDA:
    PYTHONPATH=src python benchmarks/metrics.py --skip pair all --device cuda \
        --suite-models 60 --suite-n 50000 --suite-dims 128 1024 --cknna-large 1000000
"""

# The timing closures below are called immediately, inside the loop iteration that
# defines them, so late binding of loop variables (B023) cannot bite.
# ruff: noqa: B023
from __future__ import annotations

import argparse
import importlib.util
import platform
import sys
import time
import types
from collections.abc import Callable

import numpy as np
from scipy.spatial.distance import cdist

from matteralign import metrics as M


def timed(f: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t0)
    return best, out


def lowrank(rng: np.random.Generator, n: int, d: int, rank: int = 16, z=None) -> np.ndarray:
    """Correlated low-rank embeddings: a shared latent z through a random map, plus noise."""
    z = rng.normal(size=(n, rank)) if z is None else z
    return (
        np.tanh(z @ rng.normal(size=(z.shape[1], d)) / 3) + 0.3 * rng.normal(size=(n, d))
    ).astype(np.float32)


# ------------------------------------------------------------------------ dense anchors
def platonic_cknna(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """CKNNA as platonic-rep writes it (dense kernels and masks, torch.mm(K̃, L̃): O(N³)),
    re-implemented here in float64, without its 1e-6 epsilon."""
    import torch

    a = torch.from_numpy(x.astype(np.float64))
    b = torch.from_numpy(y.astype(np.float64))
    n = a.shape[0]
    K, L = a @ a.T, b @ b.T

    def hsic_u(Kt: torch.Tensor, Lt: torch.Tensor) -> torch.Tensor:
        Kt = Kt.clone().fill_diagonal_(0)
        Lt = Lt.clone().fill_diagonal_(0)
        v = (
            (Kt * Lt.T).sum()
            + Kt.sum() * Lt.sum() / ((n - 1) * (n - 2))
            - 2 * torch.mm(Kt, Lt).sum() / (n - 2)
        )
        return v / (n * (n - 3))

    def sim(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
        Kh = K.clone().fill_diagonal_(float("-inf"))
        Lh = L.clone().fill_diagonal_(float("-inf"))
        mk = torch.zeros(n, n, dtype=K.dtype).scatter_(1, torch.topk(Kh, k, dim=1)[1], 1)
        ml = torch.zeros(n, n, dtype=K.dtype).scatter_(1, torch.topk(Lh, k, dim=1)[1], 1)
        m = mk * ml
        return hsic_u(m * K, m * L)

    return float(sim(K, L) / torch.sqrt(sim(K, K) * sim(L, L)))


def dense_pair_suite(x: np.ndarray, y: np.ndarray, k: int) -> dict[str, float]:
    """The fastest dense per-pair formulas we know: O(N²) memory, one pair at a time."""
    x = x.astype(np.float64)
    y = y.astype(np.float64)
    n = x.shape[0]
    out = {}
    K, L = x @ x.T, y @ y.T
    for G in (K, L):
        np.fill_diagonal(G, -np.inf)
    mk = np.zeros((n, n), bool)
    ml = np.zeros((n, n), bool)
    np.put_along_axis(mk, np.argpartition(-K, k - 1, axis=1)[:, :k], True, axis=1)
    np.put_along_axis(ml, np.argpartition(-L, k - 1, axis=1)[:, :k], True, axis=1)
    for G in (K, L):
        np.fill_diagonal(G, 0.0)

    def hsic(m: np.ndarray, A: np.ndarray, B: np.ndarray) -> float:
        At, Bt = np.where(m, A, 0.0), np.where(m, B, 0.0)
        t3 = At.sum(0) @ Bt.sum(1)  # Σ(ÃB̃) in O(N²)
        v = (At * Bt.T).sum() + At.sum() * Bt.sum() / ((n - 1) * (n - 2)) - 2 * t3 / (n - 2)
        return v / (n * (n - 3))

    both = mk & ml
    out["cknna"] = hsic(both, K, L) / np.sqrt(hsic(mk, K, K) * hsic(ml, L, L))
    out["mutual_knn"] = both.sum() / (n * k)
    xc, yc = x - x.mean(0), y - y.mean(0)
    out["cka"] = np.linalg.norm(xc.T @ yc) ** 2 / (
        np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc)
    )
    a, b = cdist(x, x), cdist(y, y)
    A = a - a.mean(0) - a.mean(1)[:, None] + a.mean()
    B = b - b.mean(0) - b.mean(1)[:, None] + b.mean()
    out["dcor"] = np.sqrt((A * B).mean() / np.sqrt((A * A).mean() * (B * B).mean()))
    np.fill_diagonal(a, np.inf)
    np.fill_diagonal(b, np.inf)
    nn = a.argmin(1)
    thr = b[np.arange(n), nn]
    out["information_imbalance"] = 2 * ((b < thr[:, None]).sum(1) + 1).mean() / n
    return out


def dadapy_parts():
    spec = importlib.util.find_spec("dadapy")
    if spec is None:
        return None
    try:
        import dadapy  # noqa: F401
    except ImportError:  # NumPy-2 / compiled-extension mismatch: load the pure parts
        stub = types.ModuleType("dadapy")
        stub.__path__ = list(spec.submodule_search_locations)
        sys.modules["dadapy"] = stub
    from dadapy._utils.metric_comparisons import _return_imbalance
    from dadapy._utils.utils import compute_nn_distances
    from dadapy.id_estimation import IdEstimation

    return _return_imbalance, compute_nn_distances, IdEstimation


def row(name: str, n: int, ours: float, anchor: float | None, diff: float | None) -> None:
    ratio = f"{anchor / ours:8.1f}x" if anchor else "       -"
    at = f"{anchor:9.3f}" if anchor else "        -"
    df = f"{diff:9.1e}" if diff is not None else "        -"
    print(f"| {name:<22} | {n:>6} | {ours:9.3f} | {at} | {ratio} | {df} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    ap.add_argument("--k", type=int, default=25)
    ap.add_argument("--dims", type=int, nargs=2, default=[128, 256])
    ap.add_argument("--models", type=int, default=6, help="models for pairwise vs dense loop")
    ap.add_argument("--suite-models", type=int, default=10)
    ap.add_argument("--suite-n", type=int, default=10000)
    ap.add_argument(
        "--dcor-max-n",
        type=int,
        default=8000,
        help="largest N for the dcor-package anchor (it is O(N^2) memory, slow)",
    )
    ap.add_argument("--suite-dims", type=int, nargs=2, default=[128, 512],
                    help="embedding widths of the suite's models (evenly spaced)")
    ap.add_argument("--device", default=None,
                    help="torch device for the suite and --cknna-large (e.g. cuda); "
                    "default: numpy on CPU")
    ap.add_argument("--cknna-large", type=int, nargs="*", default=[],
                    help="also time one CKNNA pair at these N on --device (no anchor)")
    ap.add_argument("--skip", nargs="*", default=[], help="sections to skip: pair all suite")
    ap.add_argument("--repeat", type=int, default=3,
                    help="one-pair CKNNA timings: best of this many runs, ours and anchor alike")
    args = ap.parse_args()

    import torch

    print(
        f"# matteralign.metrics benchmark — {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, numpy {np.__version__}, torch {torch.__version__}"
    )
    rng = np.random.default_rng(0)
    dpy = dadapy_parts()
    import dcor as dcor_pkg

    warm = rng.normal(size=(50, 3))
    dcor_pkg.distance_correlation(warm, warm)  # numba compilation is not part of the timing
    M.pairwise({"a": warm, "b": warm}, k=3)  # nor is loading our compiled kernels
    if args.device:  # nor the device's start-up
        M.pairwise({"a": warm, "b": warm}, k=3, device=args.device)

    if "pair" not in args.skip:
        d0, d1 = args.dims
        print(f"\n## One pair (float32 inputs, d = {d0} / {d1}), seconds\n")
        print("| metric                 |      N |      ours |    anchor |    ratio |  max|diff| |")
        print("|---|---:|---:|---:|---:|---:|")
        for n in args.n:
            z = rng.normal(size=(n, 16))
            x, y = lowrank(rng, n, args.dims[0], z=z), lowrank(rng, n, args.dims[1], z=z)
            # best of --repeat: single sub-second runs on 2 shared cores scatter by ±30 %
            t_o, v_o = timed(lambda: M.cknna(x, y, k=args.k), args.repeat)
            t_a, v_a = timed(lambda: platonic_cknna(x, y, args.k), args.repeat)
            row("cknna vs platonic-rep", n, t_o, t_a, abs(v_o - v_a))
            t_o, v_o = timed(lambda: M.dcor(x, y))
            if n <= args.dcor_max_n:
                x64, y64 = x.astype(np.float64), y.astype(np.float64)
                try:
                    t_a, v_a = timed(lambda: dcor_pkg.distance_correlation(x64, y64))
                    row("dcor vs dcor pkg", n, t_o, t_a, abs(v_o - v_a))
                except MemoryError as err:  # its naive path allocates N×N×D
                    row("dcor vs dcor pkg", n, t_o, None, None)
                    print(f"|  (dcor package: {err})  |||||", flush=True)
            else:
                row("dcor vs dcor pkg", n, t_o, None, None)
            if dpy is not None:
                ret_imb, nn_dist, IdEst = dpy

                def dadapy_ii() -> float:
                    _, ix = nn_dist(x, maxk=n - 1, metric="euclidean")
                    _, iy = nn_dist(y, maxk=n - 1, metric="euclidean")
                    return ret_imb(ix, iy, np.random.default_rng(0))

                t_o, v_o = timed(lambda: M.information_imbalance(x, y))
                t_a, v_a = timed(dadapy_ii)
                row("II vs dadapy", n, t_o, t_a, abs(v_o - v_a))
                x64 = x.astype(np.float64)
                t_o, v_o = timed(lambda: M.twonn_id(x64, "fit"))
                t_a, v_a = timed(
                    lambda: IdEst(coordinates=x64, maxk=3, verbose=False).compute_id_2NN(
                        algorithm="base", mu_fraction=0.9
                    )[0]
                )
                row("TwoNN(fit) vs dadapy", n, t_o, t_a, abs(v_o - v_a))

    if "all" not in args.skip:
        mm = args.models
        print(
            f"\n## All pairs, {mm} models, all five pairwise metrics + TwoNN: pairwise() vs a "
            "loop of dense per-pair formulas, seconds\n"
        )
        print("| metric                 |      N |      ours |    anchor |    ratio |  max|diff| |")
        print("|---|---:|---:|---:|---:|---:|")
        for n in args.n:
            z = rng.normal(size=(n, 16))
            dims = np.linspace(args.dims[0], args.dims[1], mm).astype(int)
            emb = {f"m{i}": lowrank(rng, n, int(d), z=z) for i, d in enumerate(dims)}
            t_o, res = timed(lambda: M.pairwise(emb, k=args.k))

            def loop() -> dict[str, np.ndarray]:
                names = list(emb)
                out = {m: np.eye(mm) for m in M.PAIRWISE_METRICS}
                for i in range(mm):
                    for j in range(mm):
                        if i != j:
                            for m, v in dense_pair_suite(
                                emb[names[i]], emb[names[j]], args.k
                            ).items():
                                out[m][i, j] = v
                return out

            t_a, dense = timed(loop)
            diff = max(
                np.nanmax(np.abs(res[m][0] - dense[m] - np.diag(np.diag(res[m][0] - dense[m]))))
                for m in M.PAIRWISE_METRICS
            )
            row(f"pairwise ({mm} models)", n, t_o, t_a, diff)

    if "suite" not in args.skip:
        n, mm = args.suite_n, args.suite_models
        lo, hi = args.suite_dims
        z = rng.normal(size=(n, 16))
        dims = np.linspace(lo, hi, mm).astype(int)
        emb = {f"m{i}": lowrank(rng, n, int(d), z=z) for i, d in enumerate(dims)}
        reset_peak(args.device)
        t_o, _ = timed(lambda: M.pairwise(emb, k=args.k, device=args.device))
        print(f"\n## Suite: {mm} models (d = {lo}…{hi}), N = {n}, all metrics, device "
              f"{args.device or 'cpu (numpy)'}: {t_o:.1f} s{peak_note(args.device)}")

    for n in args.cknna_large:
        z = rng.normal(size=(n, 16))
        x, y = lowrank(rng, n, args.dims[0], z=z), lowrank(rng, n, args.dims[1], z=z)
        reset_peak(args.device)
        t_o, v = timed(lambda: M.cknna(x, y, k=args.k, device=args.device))
        print(f"\n## CKNNA, one pair, N = {n}, device {args.device or 'cpu (numpy)'}: "
              f"{t_o:.1f} s (value {v:.6f}){peak_note(args.device)}")


def reset_peak(device: str | None) -> None:
    if device and device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_note(device: str | None) -> str:
    """Peak GPU memory of the last timing (torch's allocator), for CUDA devices."""
    if not (device and device.startswith("cuda")):
        return ""
    import torch

    return f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"


if __name__ == "__main__":
    main()
