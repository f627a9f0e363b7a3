"""2-D maps of each model's embedding space, coloured by a reference property.

PCA (an SVD of the centred embeddings), the linear view, always; UMAP beside it (umap-learn,
seeded with the study's seed, its parameters from plots.umap) unless turned off. Each model
is mapped from the rows it embedded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from matteralign.analysis.preprocess import preprocess
from matteralign.errors import InputError
from matteralign.io import read_embeddings


@dataclass
class ModelMap:
    model: str
    modality: str
    control: str  # "" | "random-init" | "baseline"
    pca: np.ndarray  # [n_valid, 2]
    explained: np.ndarray  # [2] fraction of variance of PC1, PC2
    umap: np.ndarray | None  # [n_valid, 2] when umap-learn is installed
    values: np.ndarray  # [n_valid] the property (NaN where the structure has none)


def pca(x: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Scores on the first principal axes and their explained-variance fractions.

    X_c = X − mean = U S Vᵀ; scores = U S (= X_c V); fraction_k = S_k² / Σ S². Each axis's
    sign is fixed so its largest-magnitude loading is positive (SVD signs are arbitrary).
    Components beyond rank(X_c) are returned as zeros.
    """
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(n_components, s.size)
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
    signs[signs == 0] = 1.0
    scores = np.zeros((x.shape[0], n_components))
    scores[:, :k] = u[:, :k] * (s[:k] * signs)
    total = float((s**2).sum())
    explained = np.zeros(n_components)
    if total > 0:
        explained[:k] = s[:k] ** 2 / total
    return scores, explained


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def read_property(structures: str | os.PathLike[str], name: str) -> tuple[list[str], np.ndarray]:
    """Structure ids and one property column of structures.h5 (NaN where absent), after
    checking the file's content hash."""
    from matteralign.io import load_verified, read_strings, require

    data, _ = load_verified(structures)
    prefix = "properties/"
    available = sorted(key[len(prefix):] for key in data if key.startswith(prefix))
    if name not in available:
        raise InputError(f"--property {name!r}: not in {structures}; choose one of "
                         f"{available}")
    ids = read_strings(require(data, "ids", structures))
    return ids, data[prefix + name].astype(np.float64)


@dataclass(frozen=True)
class UmapSettings:
    """UMAP's parameters (random_state is the study's seed)."""

    n_neighbors: int = 15
    min_dist: float = 0.1

    def describe(self, seed: int) -> str:
        return f"UMAP n_neighbors={self.n_neighbors}, min_dist={self.min_dist:g}, seed={seed}"


def umap_map(x: np.ndarray, settings: UmapSettings, seed: int) -> np.ndarray:
    """UMAP of ``x`` to 2-D; with a fixed random_state umap-learn runs single-threaded and
    gives the same coordinates on every run."""
    import umap

    reducer = umap.UMAP(n_components=2, random_state=seed, min_dist=settings.min_dist, n_jobs=1,
                        n_neighbors=min(settings.n_neighbors, x.shape[0] - 1))
    return np.asarray(reducer.fit_transform(x))


def model_maps(structures: str | os.PathLike[str],
               embedding_paths: Sequence[str | os.PathLike[str]], property_name: str,
               preprocessing: str = "l2", seed: int = 0,
               umap: UmapSettings | None = UmapSettings()) -> list[ModelMap]:
    """One map per embedding file, over the structures that model embedded (after the same
    preprocessing as the alignment metrics); UMAP beside PCA unless ``umap`` is None."""
    from matteralign.models.domains import control_of

    ids, prop = read_property(structures, property_name)
    row_of = {s: i for i, s in enumerate(ids)}
    if umap is not None and not umap_available():
        raise InputError("UMAP maps need umap-learn (`pip install umap-learn==0.5.12`, part "
                         "of the study environment); or turn them off (plots.umap.enabled: "
                         "false, --no-umap)")
    maps = []
    for path in embedding_paths:
        emb = read_embeddings(path)
        missing = [s for s in emb.ids if s not in row_of]
        if missing:
            raise InputError(f"{path}: {len(missing)} structures (e.g. {missing[0]!r}) are not "
                             f"in {structures}; rebuild the embedding from it")
        valid = emb.valid & np.isfinite(emb.embeddings).all(axis=1)
        x = preprocess(emb.embeddings[valid], preprocessing)
        values = prop[[row_of[s] for s, ok in zip(emb.ids, valid, strict=True) if ok]]
        scores, explained = pca(x)
        embedded = None
        if umap is not None and x.shape[0] > 3:
            embedded = umap_map(x, umap, seed)
        random_init = bool(emb.attrs.get("random_init", False))
        control = control_of(emb.model, random_init)
        maps.append(ModelMap(emb.model, str(emb.attrs.get("modality", "")), control, scores,
                             explained, embedded, values))
    return maps
