"""Alignment matrices as labelled heatmaps; per-model values as bar charts."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from matteralign.io import MetricFile, atomic_path, read_metric

MODALITY_COLOURS = {
    "atoms": "#1f77b4",
    "smiles": "#2ca02c",
    "sequence": "#9467bd",
    "text": "#ff7f0e",
    "": "#7f7f7f",
}

TITLES = {
    "cknna": "CKNNA",
    "mutual_knn": "mutual k-NN",
    "cka": "linear CKA",
    "dcor": "distance correlation",
    "information_imbalance": "information imbalance Δ(row → column)",
    "intrinsic_dim": "TwoNN intrinsic dimension",
}


def _labels(result: MetricFile) -> list[str]:
    flags = result.attrs.get("random_init", [])
    return [f"{m} (random-init)" if i < len(flags) and flags[i] == "True" else m
            for i, m in enumerate(result.models)]


def _title(result: MetricFile) -> str:
    attrs = result.attrs
    params = f"k={attrs['k']}, " if result.metric in ("cknna", "mutual_knn") else ""
    return (f"{TITLES.get(result.metric, result.metric)} on {attrs.get('dataset', '?')} "
            f"({params}N={attrs.get('n_used', '?')}, {attrs.get('preprocessing', '?')})")


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
        frame = pd.DataFrame(result.matrix, index=labels, columns=labels)
        finite = np.isfinite(result.matrix)
        can_cluster = cluster and len(labels) > 2 and bool(finite.all())
        symmetric = result.attrs.get("symmetric", "True") == "True"
        cmap = "viridis" if symmetric else "viridis_r"
        grid = sns.clustermap(
            frame, row_cluster=can_cluster, col_cluster=can_cluster and symmetric,
            row_colors=colours, col_colors=colours, cmap=cmap, annot=len(labels) <= 12,
            fmt=".2f", figsize=(size, size), cbar_kws={"label": result.metric},
            dendrogram_ratio=0.12 if can_cluster else 0.02, linewidths=0.5,
        )
        grid.ax_heatmap.set_xlabel("target model" if not symmetric else "")
        grid.ax_heatmap.set_ylabel("source model" if not symmetric else "")
        grid.figure.suptitle(_title(result), y=1.0)
        grid.ax_heatmap.legend(handles=legend, title="modality", loc="upper left",
                               bbox_to_anchor=(1.02, 1.25), frameon=False)
        grid.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        plt.close(grid.figure)
