"""Ridge regression on standardised features, in spectral form, and the cross-validated probe.

A :class:`RidgeBasis` holds the eigen-decomposition of one training set's standardised
features Z (n x D, centred and scaled with that set's own mean and standard deviation). With
Z = U S Vᵀ and w = s², ridge with an unpenalised intercept predicts, for every alpha at once,

    ŷ(α) = ȳ + Q diag(w / (w + α)) Uᵀ (y − ȳ),    Q = U on the training rows, Z_new V S⁻¹ else,

so choosing alpha costs no refit. The decomposition is of the smaller Gram matrix (ZᵀZ when
D ≤ n, ZZᵀ when D > n), so D = 1900 features on n = 800 rows is as cheap as the reverse.

Also here: the multi-output ridge map between two models' spaces with its alpha chosen by
cross-validated reconstruction error, and the interval of a repeated K-fold score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

#: the default ridge penalties (on the sum of squares, as scikit-learn's ``Ridge``)
DEFAULT_ALPHAS = np.logspace(-6, 3, 10)
#: the map's grid reaches far past any squared singular value of n ≲ 10⁴ standardised rows, so
#: "no linear relation" (W ≈ 0) is among its choices
MAP_ALPHAS = np.logspace(-6, 8, 15)
DEFAULT_FOLDS = 5
#: seeds of the split (seed, seed + 1, ...) of a repeated K-fold probe
DEFAULT_REPEATS = 5


def min_rows(folds: int) -> int:
    """Fewest rows a cross-validated probe with ``folds`` folds accepts."""
    return max(2 * folds, 10)


def shuffle_rank(n: int, seed: int) -> np.ndarray:
    """Each row's position in a seeded shuffle of ``range(n)``: the source of every split.

    Outer fold = rank mod K and inner fold = (rank div K) mod K, so the folds of a subset of
    rows (a model that masked some structures) are those rows' folds in the full set.
    """
    rank = np.empty(n, dtype=np.int64)
    rank[np.random.default_rng(seed).permutation(n)] = np.arange(n)
    return rank


def repeat_ranks(n: int, seed: int, repeats: int) -> list[np.ndarray]:
    """The shuffles of ``repeats`` seeded splits; the first is the study's (``seed``)."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    return [shuffle_rank(n, seed + j) for j in range(repeats)]


@dataclass(frozen=True)
class RidgeBasis:
    """Spectral form of standardised training features (see the module docstring)."""

    mean: np.ndarray  # [D] training mean of the raw features
    scale: np.ndarray  # [D] training standard deviation (1 where a feature is constant)
    u: np.ndarray  # [n, r] left singular vectors of Z
    w: np.ndarray  # [r] squared singular values of Z (> 0)
    #: V S⁻¹ [D, r] when D ≤ n; else (dual) Zᵀ [D, n], so V S⁻¹ = Zᵀ U S⁻² is never formed
    projection: np.ndarray
    dual: bool = False

    def standardise(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, np.float64) - self.mean) / self.scale

    def coordinates(self, x: np.ndarray) -> np.ndarray:
        """Q for new raw rows: their standardised features times V S⁻¹."""
        z = self.standardise(x)
        if not self.dual:
            return z @ self.projection
        return (z @ self.projection) @ (self.u / self.w)  # cross-Gram, then U S⁻²

    def shrinkage(self, alphas: np.ndarray) -> np.ndarray:
        """[len(alphas), r] filter factors w / (w + α)."""
        return self.w[None, :] / (self.w[None, :] + np.asarray(alphas, np.float64)[:, None])


def ridge_basis(x: np.ndarray) -> RidgeBasis:
    """Standardise ``x`` (n x D) on its own rows and decompose it."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"ridge needs a 2-D feature array with at least 2 rows, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("ridge features hold NaN or inf; drop the masked rows first")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale <= 1e-12 * max(1.0, float(np.abs(mean).max(initial=0.0)))] = 1.0
    z = (x - mean) / scale
    n, d = z.shape
    if d <= n:
        w, v = np.linalg.eigh(z.T @ z)
        keep = w > w.max(initial=0.0) * max(n, d) * np.finfo(float).eps
        w, v = w[keep], v[:, keep]
        s = np.sqrt(w)
        u = (z @ v) / s
        projection = v / s
    else:
        w, u = np.linalg.eigh(z @ z.T)
        keep = w > w.max(initial=0.0) * max(n, d) * np.finfo(float).eps
        w, u = w[keep], u[:, keep]
        projection = z.T
    return RidgeBasis(mean=mean, scale=scale, u=u, w=w, projection=projection, dual=d > n)


def _as_targets(y: np.ndarray) -> tuple[np.ndarray, bool]:
    y = np.asarray(y, np.float64)
    return (y[:, None], True) if y.ndim == 1 else (y, False)


def ridge_predict(basis: RidgeBasis, y: np.ndarray, x_new: np.ndarray,
                  alpha: float | np.ndarray) -> np.ndarray:
    """Predictions for raw rows ``x_new`` of ridge fitted on the basis' rows to ``y``.

    ``y`` is [n] or [n, T]; ``alpha`` a scalar or one per target.
    """
    targets, single = _as_targets(y)
    mean = targets.mean(axis=0)
    alphas = np.broadcast_to(np.asarray(alpha, np.float64), (targets.shape[1],))
    filters = basis.shrinkage(alphas)  # [T, r]
    coefficients = (basis.u.T @ (targets - mean)) * filters.T  # [r, T]
    prediction = mean + basis.coordinates(x_new) @ coefficients
    return prediction[:, 0] if single else prediction


def block_cv_errors(basis: RidgeBasis, y: np.ndarray, blocks: np.ndarray,
                    alphas: np.ndarray) -> np.ndarray:
    """[len(alphas), T] mean squared error of K-fold CV on the basis' rows, exactly.

    For ridge with an unpenalised intercept on fixed features the hat matrix is
    H = 11ᵀ/n + U diag(f) Uᵀ, and the residual of block B when B is left out of the fit is
    (I − H_BB)⁻¹ (y_B − ŷ_B) (block deletion by Woodbury), so no fold is refitted. The
    features keep the standardisation of all the basis' rows.
    """
    targets, _ = _as_targets(y)
    n = targets.shape[0]
    centred = targets - targets.mean(axis=0)
    projected = basis.u.T @ centred  # [r, T]
    filters = basis.shrinkage(alphas)  # [A, r]
    errors = np.zeros((len(filters), targets.shape[1]))
    for block in np.unique(blocks):
        rows = np.flatnonzero(blocks == block)
        u_b = basis.u[rows]
        scaled = u_b[None, :, :] * filters[:, None, :]  # [A, b, r]: every alpha at once
        residual = centred[rows][None] - scaled @ projected  # [A, b, T]
        hat = scaled @ u_b.T + 1.0 / n  # [A, b, b]
        left_out = np.linalg.solve(np.eye(len(rows))[None] - hat, residual)
        errors += (left_out**2).sum(axis=1)
    return errors / n


def choose_alpha(basis: RidgeBasis, y: np.ndarray, blocks: np.ndarray,
                 alphas: np.ndarray) -> np.ndarray:
    """The alpha of lowest K-fold CV error, per target (ties: the larger alpha)."""
    errors = block_cv_errors(basis, y, blocks, alphas)
    best = len(alphas) - 1 - np.argmin(errors[::-1], axis=0)
    return np.asarray(alphas, np.float64)[best]


def principal_coordinates(basis: RidgeBasis) -> np.ndarray:
    """[n, r] U S of the basis' standardised rows: Z up to a rotation of its columns.

    Squared reconstruction errors summed over Z's columns are the same for U S, which has at
    most min(n, D) columns.
    """
    return basis.u * np.sqrt(basis.w)


def map_cv_errors(x: np.ndarray, targets: np.ndarray, blocks: np.ndarray,
                  alphas: np.ndarray) -> np.ndarray:
    """[len(alphas)] K-fold CV error of the multi-output ridge map from raw features ``x``
    [n, D] to ``targets`` [n, T], summed over the T outputs and averaged over rows.

    Each block is predicted by a refit on the other blocks (features standardised on those
    rows, unpenalised intercept per output). With Q the held-out rows' coordinates and
    P = Uᵀ(targets − mean) the error at alpha is ‖C‖² − 2 Σ_j f_j (QᵀC Pᵀ)_jj + fᵀ(QᵀQ ∘ PPᵀ) f,
    so every alpha costs O(r²) once the block's products are formed. The same alpha serves
    every output: the map is judged on how well it reconstructs the whole target space.
    """
    return map_cv_errors_many(x, [targets], blocks, alphas)[0]


def map_cv_errors_many(x: np.ndarray, targets: Sequence[np.ndarray], blocks: np.ndarray,
                       alphas: np.ndarray) -> np.ndarray:
    """[len(targets), len(alphas)] :func:`map_cv_errors` of several target spaces from the
    same features, sharing the refits."""
    x = np.asarray(x, np.float64)
    alphas = np.asarray(alphas, np.float64)
    spaces = [np.asarray(t, np.float64) for t in targets]
    errors = np.zeros((len(spaces), len(alphas)))
    for block in np.unique(blocks):
        test = blocks == block
        if (~test).sum() < 2:
            continue
        basis = ridge_basis(x[~test])
        q = basis.coordinates(x[test])  # [b, r]
        gram = q.T @ q
        f = basis.shrinkage(alphas)  # [A, r]
        for i, space in enumerate(spaces):
            mean = space[~test].mean(axis=0)
            projected = basis.u.T @ (space[~test] - mean)  # P [r, T]
            held = space[test] - mean  # C [b, T]
            cross = np.einsum("ij,ij->j", q, held @ projected.T)  # (QᵀC Pᵀ)_jj
            quadratic = gram * (projected @ projected.T)
            errors[i] += (float((held**2).sum()) - 2.0 * f @ cross
                          + np.einsum("aj,jk,ak->a", f, quadratic, f))
    return errors / len(x)


def choose_map_alpha(x: np.ndarray, targets: np.ndarray, blocks: np.ndarray,
                     alphas: np.ndarray = MAP_ALPHAS) -> float:
    """The alpha of lowest :func:`map_cv_errors` (ties: the larger alpha)."""
    errors = map_cv_errors(x, targets, blocks, alphas)
    return float(np.asarray(alphas, np.float64)[len(alphas) - 1 - np.argmin(errors[::-1])])


def fold_scores(y: np.ndarray, prediction: np.ndarray, fold: np.ndarray,
                folds: int) -> np.ndarray:
    """[folds] each held-out fold's own R² (SS_tot about that fold's mean; NaN if empty).

    A ratio within the fold, so the fold's own spread of y cancels as it does in the pooled
    R²; scaling by the variance of all of y instead would add that spread to every score.
    """
    y, prediction = np.asarray(y, np.float64), np.asarray(prediction, np.float64)
    out = np.full(folds, np.nan)
    for k in range(folds):
        rows = fold == k
        if rows.sum() >= 2:
            out[k] = r2_score(y[rows], prediction[rows])
    return out


def repeated_cv_interval(scores: np.ndarray, folds: int, level: float = 0.95,
                         centre: float | None = None) -> tuple[float, float]:
    """Corrected resampled-t interval (Nadeau & Bengio 2003; Bouckaert & Frank 2004) of a
    repeated K-fold score from its per-fold values ``scores`` [repeats, folds].

    centre ± t_{rK−1} · sqrt((1/(rK) + 1/(K−1)) · s²), s² the variance of the rK fold scores;
    the 1/(K−1) = n_test/n_train term accounts for the folds' shared training rows, which the
    plain t interval ignores. ``centre`` defaults to the mean of the fold scores.
    """
    from scipy.stats import t

    values = np.asarray(scores, np.float64).ravel()
    values = values[np.isfinite(values)]
    if len(values) < 2 or folds < 2:
        return float("nan"), float("nan")
    middle = float(values.mean()) if centre is None else float(centre)
    half = float(t.ppf(0.5 + level / 2, len(values) - 1)) * np.sqrt(
        (1.0 / len(values) + 1.0 / (folds - 1)) * float(values.var(ddof=1)))
    return middle - half, middle + half


def r2_score(y: np.ndarray, prediction: np.ndarray) -> float:
    """1 − SS_res / SS_tot, with SS_tot about the mean of ``y`` (NaN when y is constant)."""
    y, prediction = np.asarray(y, np.float64), np.asarray(prediction, np.float64)
    total = float(((y - y.mean()) ** 2).sum())
    if total <= 0:
        return float("nan")
    return 1.0 - float(((y - prediction) ** 2).sum()) / total


@dataclass
class ProbeResult:
    """Held-out quality of a ridge probe: every row predicted once, by the fold leaving it out."""

    mae: float
    r2: float
    n: int
    alpha_per_fold: np.ndarray
    predictions: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))


def ridge_probes(x: np.ndarray, y: np.ndarray, seed: int, folds: int = DEFAULT_FOLDS,
                 alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                 rank: np.ndarray | None = None) -> list[ProbeResult]:
    """Nested K-fold ridge probes of every column of ``y`` [N, T] from features ``x`` [N, D].

    Outer folds (rank mod K) give the held-out predictions; on each outer training part the
    features are standardised on that part only, and alpha is chosen per target by inner K-fold
    CV ((rank div K) mod K) over ``alphas``. MAE and R² pool all outer predictions, with SS_tot
    about the overall mean of y. ``rank`` (see :func:`shuffle_rank`) defaults to a seeded
    shuffle of the N rows.
    """
    targets, _ = _as_targets(y)
    x = np.asarray(x, np.float64)
    n = len(targets)
    if x.shape[0] != n:
        raise ValueError(f"probe features have {x.shape[0]} rows but the target has {n}")
    if n < min_rows(folds):
        raise ValueError(f"a {folds}-fold probe needs at least {min_rows(folds)} rows, got {n}")
    if not np.isfinite(targets).all():
        raise ValueError("probe targets hold NaN or inf; drop those rows first")
    alphas = np.asarray(alphas, np.float64)
    rank = shuffle_rank(n, seed) if rank is None else np.asarray(rank)
    outer, inner = rank % folds, (rank // folds) % folds
    predictions = np.empty_like(targets)
    chosen = np.empty((folds, targets.shape[1]))
    for k in range(folds):
        test = outer == k
        if not test.any() or test.all():
            raise ValueError(f"outer fold {k} of {folds} is empty or holds every row (n={n})")
        basis = ridge_basis(x[~test])
        chosen[k] = choose_alpha(basis, targets[~test], inner[~test], alphas)
        predictions[test] = ridge_predict(basis, targets[~test], x[test], chosen[k])
    return [
        ProbeResult(mae=float(np.abs(targets[:, t] - predictions[:, t]).mean()),
                    r2=r2_score(targets[:, t], predictions[:, t]), n=n,
                    alpha_per_fold=chosen[:, t].copy(), predictions=predictions[:, t].copy())
        for t in range(targets.shape[1])
    ]


def ridge_probe(x: np.ndarray, y: np.ndarray, seed: int, folds: int = DEFAULT_FOLDS,
                alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
                rank: np.ndarray | None = None) -> ProbeResult:
    """The nested K-fold ridge probe of one target ``y`` [N] (see :func:`ridge_probes`)."""
    y = np.asarray(y, np.float64)
    if y.ndim != 1:
        raise ValueError(f"ridge_probe takes one target [N], got shape {y.shape}")
    return ridge_probes(x, y, seed, folds=folds, alphas=alphas, rank=rank)[0]
