"""Alignment matrices as labelled heatmaps; per-model values as bar charts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from matteralign.io import MetricFile, atomic_path, attr_flag, attr_flags, read_metric
from matteralign.metrics.spec import METRICS, SPECS

#: Okabe–Ito colours: distinguishable with the common colour-vision deficiencies
MODALITY_COLOURS = {
    "atoms": "#0072B2",
    "smiles": "#009E73",
    "sequence": "#CC79A7",
    "text": "#E69F00",
    "": "#999999",
}
#: how entries not above chance are marked on heatmaps
NOT_ABOVE_CHANCE_HATCH = "////"

#: metric -> its name in figure titles (the metric table's ``title``)
TITLES = {spec.name: spec.title for spec in METRICS}


def _labels(result: MetricFile) -> list[str]:
    """Model names, with the controls marked: "(random-init)" or "(baseline)"."""
    from matteralign.models.domains import TRAINING_DOMAINS

    random_init = attr_flags(result.attrs.get("random_init"), len(result.models))
    labels = []
    for i, m in enumerate(result.models):
        domain = TRAINING_DOMAINS.get(m)
        if random_init[i]:
            labels.append(f"{m} (random-init)")
        elif domain is not None and domain.baseline:
            labels.append(f"{m} (baseline)")
        else:
            labels.append(m)
    return labels


def _title(result: MetricFile) -> str:
    attrs = result.attrs
    spec = SPECS.get(result.metric)
    params = f"k={attrs['k']}, " if spec is not None and spec.uses_k else ""
    rows = (f"{attrs.get('n_atoms', '?')} atoms of {attrs.get('n_structures', '?')} structures"
            if attrs.get("level") == "atoms" else f"N={attrs.get('n_used', '?')}")
    level = ", atom level" if attrs.get("level") == "atoms" else ""
    return (f"{TITLES.get(result.metric, result.metric)} on {attrs.get('dataset', '?')}{level} "
            f"({params}{rows}, {attrs.get('preprocessing', '?')})")


def _linkage(matrix: np.ndarray, lower_is_aligned: bool) -> np.ndarray | None:
    """Average-linkage tree on the symmetrised dissimilarity, shared by rows and columns so an
    asymmetric matrix keeps the same model order on both axes."""
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    if not np.all(np.isfinite(matrix)):
        return None
    sym = (matrix + matrix.T) / 2
    dissimilarity = sym if lower_is_aligned else sym.max() - sym
    np.fill_diagonal(dissimilarity, 0.0)
    return linkage(squareform(np.clip(dissimilarity, 0, None), checks=False), method="average")


def _hatch_not_above_chance(ax: Any, above: np.ndarray, order: list[int]) -> int:
    """Hatch the heatmap cells whose entry is not above chance (above_chance == 0); ``order``
    is the displayed model order (the same on both axes). Returns how many were hatched."""
    from matplotlib.patches import Rectangle

    above = np.asarray(above, dtype=np.float64)[np.ix_(order, order)]
    marked = 0
    for row, col in zip(*np.nonzero(above == 0.0), strict=True):
        ax.add_patch(Rectangle((col, row), 1, 1, fill=False, hatch=NOT_ABOVE_CHANCE_HATCH,
                               edgecolor="0.35", linewidth=0))
        marked += 1
    return marked


def plot_metric(path: str | os.PathLike[str], output: str | os.PathLike[str],
                cluster: bool = True) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns
    from matplotlib.patches import Patch

    result = read_metric(path)
    labels = _labels(result)
    modalities = list(result.attrs.get("modalities", [""] * len(labels)))
    colours = [MODALITY_COLOURS.get(m, "#7f7f7f") for m in modalities]
    legend = [Patch(color=MODALITY_COLOURS.get(m, "#7f7f7f"), label=m or "unknown")
              for m in dict.fromkeys(modalities)]
    size = max(5.0, 0.55 * len(labels) + 3.5)
    with atomic_path(Path(output)) as tmp:
        if result.values is not None:
            fig, ax = plt.subplots(figsize=(size, 4))
            ax.bar(labels, result.values, color=colours)
            ax.set_ylabel(TITLES.get(result.metric, result.metric))
            ax.set_title(_title(result))
            ax.tick_params(axis="x", rotation=45)
            for tick in ax.get_xticklabels():
                tick.set_horizontalalignment("right")
            ax.legend(handles=legend, title="modality", loc="best")
            fig.tight_layout()
            fig.savefig(tmp, format="png", dpi=120)
            plt.close(fig)
            return
        matrix = np.asarray(result.matrix, dtype=np.float64)
        frame = pd.DataFrame(matrix, index=labels, columns=labels)
        symmetric = attr_flag(result.attrs.get("symmetric")) is not False
        lower_is_aligned = attr_flag(result.attrs.get("higher_is_aligned")) is False
        linkage = _linkage(matrix, lower_is_aligned) if cluster and len(labels) > 2 else None
        off = matrix[~np.eye(len(labels), dtype=bool)]
        off = off[np.isfinite(off)]
        # colour range from the off-diagonal entries: the trivial diagonal would flatten them
        limits = (None, None)
        if off.size and np.ptp(off) > 0:
            limits = (float(off.min()), float(off.max()))
        grid = sns.clustermap(
            frame, row_cluster=linkage is not None, col_cluster=linkage is not None,
            row_linkage=linkage, col_linkage=linkage,
            row_colors=colours, col_colors=colours,
            # bright = aligned for every metric (information imbalance is low when aligned)
            cmap="viridis_r" if lower_is_aligned else "viridis", vmin=limits[0], vmax=limits[1],
            annot=len(labels) <= 12, fmt=".2f", figsize=(size, size),
            cbar_kws={"label": ""},  # the metric is named in the title
            # the dendrogram space is kept without clustering too: the colour bar lives there
            dendrogram_ratio=0.12, linewidths=0.5,
        )
        # seaborn's default colour bar spot runs down into the row dendrogram and colour
        # strip; the empty top-left corner (beside the column dendrogram) is free
        row_d = grid.ax_row_dendrogram.get_position()
        col_d = grid.ax_col_dendrogram.get_position()
        grid.ax_cbar.set_position((row_d.x0, col_d.y0, 0.2 * row_d.width, col_d.height))
        grid.ax_heatmap.set_xlabel("target model" if not symmetric else "")
        grid.ax_heatmap.set_ylabel("source model" if not symmetric else "")
        title = _title(result)
        if "above_chance" in result.extra:
            order = (grid.dendrogram_row.reordered_ind if linkage is not None
                     else list(range(len(labels))))
            n_marked = _hatch_not_above_chance(grid.ax_heatmap, result.extra["above_chance"],
                                               order)
            legend.append(Patch(facecolor="white", edgecolor="0.35",
                                hatch=NOT_ABOVE_CHANCE_HATCH, label="not above chance"))
            title += (f"\nhatched: {n_marked} entries not above the permutation null's "
                      f"{'5th' if lower_is_aligned else '95th'} percentile "
                      f"(P={result.attrs.get('permutations', '?')})")
        grid.figure.suptitle(title, y=1.03 if "\n" not in title else 1.06)
        grid.ax_col_dendrogram.legend(handles=legend, title="modality", loc="center left",
                                      bbox_to_anchor=(1.0, 0.5), frameon=False)
        grid.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        plt.close(grid.figure)
