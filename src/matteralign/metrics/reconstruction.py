"""Feature reconstruction errors: how well a linear map of one embedding reproduces another.

GFRE(X → Y) fits one ridge map from the source's features to the target's on a training part
and measures the held-out error; LFRE(X → Y) fits a ridge map in each held-out point's
neighbourhood in X (Goscinski, Fraux, Imbalzano & Ceriotti, Mach. Learn.: Sci. Technol. 2,
025028 (2021)). Both standardise X and Y globally on the training part (centred columns, mean
squared row norm 1), so 0 = the source reconstructs the target and ≈ 1 = it carries no
information about it. Definitions and the differences from scikit-matter: docs/metrics.md.

The source-side work of a fold (standardisation, SVDs, neighbour lists, local eigenbases) does
not depend on the target and is done once per source for all targets (``*_matrix``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from matteralign.analysis.ridge import shuffle_rank

DEFAULT_FOLDS = 2
#: neighbours of each held-out point in LFRE (scikit-matter's tests use 15; it has no default)
DEFAULT_K_LOCAL = 15
#: ridge penalties relative to the largest eigenvalue of the fitted features' Gram matrix
RELATIVE_ALPHAS = np.logspace(-8, 2, 21)


@dataclass(frozen=True)
class Reconstruction:
    """One reconstruction error with what produced it (for inspection and tests)."""

    value: float
    #: outer fold of each row (rank mod folds, ``shuffle_rank``)
    outer: np.ndarray
    #: [folds] the chosen relative penalty of each outer fold
    relative_alpha: np.ndarray
    #: [folds, len(RELATIVE_ALPHAS)] the selection criterion (sum of squared CV errors)
    cv_error: np.ndarray


def _as_float(x: object, name: str) -> np.ndarray:
    a = np.asarray(x, np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (N, D) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or inf")
    return a


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre on the training rows' column means and divide by their root mean squared norm."""
    mean = train.mean(axis=0)
    centred = train - mean
    scale = float(np.sqrt((centred**2).sum() / len(train)))
    if scale <= 1e-12 * max(1.0, float(np.abs(mean).max(initial=0.0))):
        raise ValueError("reconstruction errors need features that vary over the training rows")
    return centred / scale, (test - mean) / scale


def _folds(n: int, folds: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Outer fold (rank mod K) and inner half ((rank div K) mod 2) of each row; N >= 2K puts
    rows in every fold and in both halves of every training part."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    if n < 2 * folds:
        raise ValueError(f"{folds}-fold reconstruction errors need N >= {2 * folds}, got {n}")
    rank = shuffle_rank(n, seed)
    return rank % folds, (rank // folds) % 2


def _svd(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD without the numerically zero singular values (pinv's cutoff)."""
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    keep = s > (s[0] if s.size else 0.0) * max(z.shape) * np.finfo(float).eps
    return u[:, keep], s[keep], vt[keep].T


def _best(errors: np.ndarray) -> int:
    """Index of the lowest error (ties: the larger penalty)."""
    return len(errors) - 1 - int(np.argmin(errors[::-1]))


class _Target:
    """A target's standardised training and held-out parts of each outer fold, and the
    training Gram matrix LFRE reads, computed once and shared by every source (the folds
    depend only on N, ``folds`` and ``seed``)."""

    def __init__(self, y: np.ndarray) -> None:
        self.y = y
        self._parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._grams: dict[int, np.ndarray] = {}

    def parts(self, f: int, train: np.ndarray,
              test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if f not in self._parts:
            self._parts[f] = _standardise(self.y[train], self.y[test])
        return self._parts[f]

    def gram(self, f: int, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        if f not in self._grams:
            y_train = self.parts(f, train, test)[0]
            self._grams[f] = y_train @ y_train.T
        return self._grams[f]


# --- GFRE ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GlobalFold:
    """One outer fold of a source: its ridge bases on the training part and on each half."""

    train: np.ndarray  # row indices
    test: np.ndarray
    u: np.ndarray  # [n_train, r] of the standardised training features
    s: np.ndarray  # [r]
    test_v: np.ndarray  # [n_test, r] standardised test features times V
    #: per inner half h: (rows of train in h, U_h, s_h, other half's features times V_h, its Gram)
    halves: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]


def _global_folds(x: np.ndarray, folds: int, seed: int) -> list[_GlobalFold]:
    outer, inner = _folds(len(x), folds, seed)
    out = []
    for f in range(folds):
        train, test = np.flatnonzero(outer != f), np.flatnonzero(outer == f)
        z_train, z_test = _standardise(x[train], x[test])
        u, s, v = _svd(z_train)
        halves = []
        for h in (0, 1):
            rows, other = inner[train] == h, inner[train] != h
            u_h, s_h, v_h = _svd(z_train[rows])
            a = z_train[other] @ v_h
            halves.append((rows, u_h, s_h, a, a.T @ a))
        out.append(_GlobalFold(train, test, u, s, z_test @ v, tuple(halves)))
    return out


def _filters(s: np.ndarray, relative: np.ndarray) -> np.ndarray:
    """[len(relative), r] ridge filters s / (s² + a·s_max²) (coefficients on Uᵀy)."""
    if not s.size:  # an inner half with no variation predicts 0 (the training mean)
        return np.zeros((len(relative), 0))
    return s[None, :] / (s[None, :] ** 2 + relative[:, None] * s[0] ** 2)


def _over_folds(source: Sequence[Any], target: _Target,
                fit: Callable[[int, Any, np.ndarray], tuple[np.ndarray, np.ndarray, int]]
                ) -> Reconstruction:
    """Pool the held-out squared errors over the outer folds: ``fit(f, fold, y_train)`` gives
    the fold's selection curve over RELATIVE_ALPHAS, its held-out prediction and the chosen
    penalty's index."""
    n = len(target.y)
    outer = np.empty(n, dtype=np.int64)
    squared, chosen = 0.0, np.empty(len(source))
    cv = np.zeros((len(source), len(RELATIVE_ALPHAS)))
    for f, fold in enumerate(source):
        outer[fold.test] = f
        y_train, y_test = target.parts(f, fold.train, fold.test)
        cv[f], prediction, best = fit(f, fold, y_train)
        chosen[f] = RELATIVE_ALPHAS[best]
        squared += float(((y_test - prediction) ** 2).sum())
    return Reconstruction(float(np.sqrt(squared / n)), outer, chosen, cv)


def _gfre_fold(_f: int, fold: _GlobalFold,
               y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    cv = np.zeros(len(RELATIVE_ALPHAS))
    for rows, u_h, s_h, a, gram in fold.halves:
        # ‖y_o − A g B‖² for every penalty at once, with B = U_hᵀ y_h and g the filters
        fit, held = y_train[rows], y_train[~rows]
        b = u_h.T @ fit
        c = ((a.T @ held) * b).sum(axis=1)
        g = _filters(s_h, RELATIVE_ALPHAS)
        cv += (float((held**2).sum()) - 2.0 * g @ c
               + np.einsum("ar,rs,as->a", g, gram * (b @ b.T), g))
    best = _best(cv)
    g = _filters(fold.s, RELATIVE_ALPHAS[best : best + 1])[0]
    return cv, (fold.test_v * g) @ (fold.u.T @ y_train), best


def _gfre_target(source: list[_GlobalFold], target: _Target) -> Reconstruction:
    return _over_folds(source, target, _gfre_fold)


def gfre_fit(x: np.ndarray, y: np.ndarray, folds: int = DEFAULT_FOLDS,
             seed: int = 0) -> Reconstruction:
    """GFRE(X → Y) with its folds, chosen penalties and selection curves."""
    x, y = _as_float(x, "X"), _as_float(y, "Y")
    if len(x) != len(y):
        raise ValueError(f"X has {len(x)} rows but Y has {len(y)}")
    return _gfre_target(_global_folds(x, folds, seed), _Target(y))


def gfre(x: np.ndarray, y: np.ndarray, folds: int = DEFAULT_FOLDS, seed: int = 0) -> float:
    """Global feature reconstruction error of Y from X (0 = linearly reconstructed, ≈1 = not)."""
    return gfre_fit(x, y, folds, seed).value


def gfre_matrix(arrays: Sequence[np.ndarray], folds: int = DEFAULT_FOLDS,
                seed: int = 0) -> np.ndarray:
    """(M, M) GFRE(model_i → model_j); the diagonal is 0 (a model reconstructs itself)."""
    data = [_as_float(a, f"array {i}") for i, a in enumerate(arrays)]
    # one source's bases at a time (≈ its features' size); the targets' standardised parts
    targets = [_Target(y) for y in data]
    out = np.zeros((len(data), len(data)))
    for i, x in enumerate(data):
        source = _global_folds(x, folds, seed)
        for j, target in enumerate(targets):
            if i != j:
                out[i, j] = _gfre_target(source, target).value
    return out


# --- LFRE ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LocalFold:
    """One outer fold of a source: each held-out point's neighbours and their local eigenbasis."""

    train: np.ndarray
    test: np.ndarray
    neighbours: np.ndarray  # [n_test, k] training-row positions (into ``train``)
    lam: np.ndarray  # [n_test, k] eigenvalues of the centred local Gram matrix (≥ 0)
    vec: np.ndarray  # [n_test, k, k] its eigenvectors (columns)
    kappa: np.ndarray  # [n_test, k] Vᵀ Xc (x_i − x̄): the held-out point in that basis
    alpha_unit: np.ndarray  # [n_test] largest local eigenvalue (penalties are relative to it)


def _local_folds(x: np.ndarray, k_local: int, folds: int, seed: int) -> list[_LocalFold]:
    if k_local < 2:
        raise ValueError(f"k_local must be >= 2, got {k_local}")
    outer, _ = _folds(len(x), folds, seed)
    out = []
    for f in range(folds):
        train, test = np.flatnonzero(outer != f), np.flatnonzero(outer == f)
        z_train, z_test = _standardise(x[train], x[test])
        squared = ((z_test**2).sum(1)[:, None] + (z_train**2).sum(1)[None, :]
                   - 2.0 * z_test @ z_train.T)
        # a training part smaller than k_local is used whole (small studies, half-samples)
        nb = np.argsort(squared, axis=1, kind="stable")[:, :k_local]
        local = z_train[nb]  # [n_test, k, D]
        mean = local.mean(axis=1, keepdims=True)
        centred = local - mean
        lam, vec = np.linalg.eigh(centred @ centred.transpose(0, 2, 1))
        lam = np.clip(lam, 0.0, None)
        point = centred @ (z_test - mean[:, 0])[:, :, None]  # [n_test, k, 1]
        kappa = (vec.transpose(0, 2, 1) @ point)[:, :, 0]
        unit = np.where(lam[:, -1] > 0, lam[:, -1], 1.0)  # all neighbours equal: predict their mean
        out.append(_LocalFold(train, test, nb, lam, vec, kappa, unit))
    return out


def _lfre_target(source: list[_LocalFold], target: _Target) -> Reconstruction:
    def fit(f: int, fold: _LocalFold, y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        nb = fold.neighbours
        n_test, k = nb.shape
        # the target enters the selection only through its centred local Gram matrices
        local = target.gram(f, fold.train, fold.test)[nb[:, :, None], nb[:, None, :]]
        means = local.mean(axis=2, keepdims=True)
        local = local - means - means.transpose(0, 2, 1) + means.mean(axis=1, keepdims=True)
        vt = fold.vec.transpose(0, 2, 1)
        moments = vt @ local @ fold.vec  # Vᵀ Yc Ycᵀ V
        # exact leave-one-out residuals of local ridge with an unpenalised intercept, every
        # penalty at once: r = V (1 − h) Vᵀ Yc, e_j = r_j / (1 − 1/k − Σ_m V_jm² h_m)
        alpha = RELATIVE_ALPHAS[:, None, None] * fold.alpha_unit[None, :, None]
        h = fold.lam[None] / (fold.lam[None] + alpha)  # [A, n_test, k]
        keep = (1.0 - h).transpose(1, 2, 0)  # [n_test, k, A]
        pairs = (keep[:, :, None, :] * keep[:, None, :, :]).reshape(n_test, k * k, -1)
        # ‖r_j‖² = Σ_mn V_jm V_jn M_mn (1 − h_m)(1 − h_n): one batched product for all α
        terms = (fold.vec[:, :, :, None] * fold.vec[:, :, None, :] * moments[:, None])
        residual = terms.reshape(n_test, k, k * k) @ pairs  # [n_test, k, A]
        leverage = 1.0 - 1.0 / k - fold.vec**2 @ h.transpose(1, 2, 0)
        cv = (residual / np.maximum(leverage, 1e-12) ** 2).sum(axis=(0, 1))
        best = _best(cv)
        # ŷ_i = ȳ + Ycᵀ β = Σ_j c_j y_(nb_j), β = V κ / (λ + α), c = β + (1 − Σβ)/k
        beta = (fold.vec @ (fold.kappa / (fold.lam + alpha[best]))[:, :, None])[:, :, 0]
        weights = beta + (1.0 - beta.sum(1, keepdims=True)) / k
        return cv, (weights[:, None, :] @ y_train[nb])[:, 0], best

    return _over_folds(source, target, fit)


def lfre_fit(x: np.ndarray, y: np.ndarray, k_local: int = DEFAULT_K_LOCAL,
             folds: int = DEFAULT_FOLDS, seed: int = 0) -> Reconstruction:
    """LFRE(X → Y) with its folds, chosen penalties and selection curves."""
    x, y = _as_float(x, "X"), _as_float(y, "Y")
    if len(x) != len(y):
        raise ValueError(f"X has {len(x)} rows but Y has {len(y)}")
    return _lfre_target(_local_folds(x, k_local, folds, seed), _Target(y))


def lfre(x: np.ndarray, y: np.ndarray, k_local: int = DEFAULT_K_LOCAL,
         folds: int = DEFAULT_FOLDS, seed: int = 0) -> float:
    """Local feature reconstruction error of Y from X: ridge maps fitted in X-neighbourhoods."""
    return lfre_fit(x, y, k_local, folds, seed).value


def lfre_matrix(arrays: Sequence[np.ndarray], k_local: int = DEFAULT_K_LOCAL,
                folds: int = DEFAULT_FOLDS, seed: int = 0) -> np.ndarray:
    """(M, M) LFRE(model_i → model_j); the diagonal is 0 (a model reconstructs itself)."""
    data = [_as_float(a, f"array {i}") for i, a in enumerate(arrays)]
    # every source's neighbourhoods are small (N·k² per fold); one target's training Gram
    # matrices (N²/K² per fold) are held at a time
    sources = [_local_folds(x, k_local, folds, seed) for x in data]
    out = np.zeros((len(data), len(data)))
    for j, y in enumerate(data):
        target = _Target(y)
        for i, source in enumerate(sources):
            if i != j:
                out[i, j] = _lfre_target(source, target).value
    return out
