"""Heatmaps of probe R²: model x property (probes.png) and probe owner x mapped model
(probe_transfer.png). Colours span R² in [0, 1] (cividis, colour-blind safe); every cell
carries its value, so negative R² (worse than predicting the mean) reads as such."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from matteralign.io import atomic_path

if TYPE_CHECKING:
    from matteralign.analysis.probes import Probes
    from matteralign.analysis.transfer import Transfer


def model_labels(models: Sequence[str], control: Sequence[str]) -> list[str]:
    """Model names, with "(random-init)" or "(baseline)" appended for controls."""
    return [f"{m} ({c})" if c else m for m, c in zip(models, control, strict=True)]


def r2_heatmap(matrix: np.ndarray, rows: Sequence[str], columns: Sequence[str],
               output: str | os.PathLike[str], title: str, xlabel: str, ylabel: str) -> None:
    """One annotated R² heatmap, sized by its label counts, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix, np.float64)
    width = 3.0 + 0.75 * len(columns) + 0.07 * max(map(len, rows), default=0)
    height = 2.0 + 0.42 * len(rows) + 0.06 * max(map(len, columns), default=0)
    fig, ax = plt.subplots(figsize=(width, height))
    cmap = matplotlib.colormaps["cividis"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=0.0, vmax=1.0,
                      aspect="auto", interpolation="nearest")
    for (i, j), value in np.ndenumerate(matrix):
        text = "n/a" if not np.isfinite(value) else f"{value:.2f}"
        dark = not np.isfinite(value) or value > 0.6
        ax.text(j, i, text, ha="center", va="center", fontsize=8,
                color="black" if dark else "white")
    ax.set_xticks(range(len(columns)), labels=list(columns), rotation=40, ha="right")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    bar = fig.colorbar(image, ax=ax, extend="min", fraction=0.05, pad=0.02)
    bar.set_label("held-out R² (colour clipped to [0, 1])")
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_probes(result: Probes, output: str | os.PathLike[str]) -> None:
    attrs = result.attrs
    title = (f"Ridge probes on {attrs.get('dataset', '?')}: held-out R² "
             f"({attrs.get('folds', '?')}-fold nested CV)")
    r2_heatmap(result.r2, model_labels(result.models, result.control), result.properties,
               output, title, "property", "model")


def plot_transfer(result: Transfer, output: str | os.PathLike[str]) -> None:
    attrs = result.attrs
    title = (f"Probe transfer on {attrs.get('dataset', '?')}: {attrs.get('property', '?')}, "
             f"test R² (n_test ≥ {attrs.get('n_test', '?')})")
    labels = model_labels(result.models, result.control)
    r2_heatmap(result.r2, labels, labels, output, title,
               "model B (embeddings mapped linearly into A's space)",
               "model A (owner of the probe)")
