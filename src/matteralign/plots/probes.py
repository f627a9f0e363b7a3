"""Probe figures. probes.png: model x property heatmap of the repeated-CV R², each cell with
its 95% interval, controls below a rule and the best control's R² as the last row.
probe_transfer.png: owner x mapped model heatmap of the transfer R² (with intervals) beside a
scatter of every pair's transfer against the mapped model's own probe, per property.
Colours span R² in [0, 1] (cividis, colour-blind safe); every cell carries its value, so
negative R² (worse than predicting the mean) reads as such."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from matteralign.io import atomic_path

if TYPE_CHECKING:
    from matteralign.analysis.probes import Probes
    from matteralign.analysis.transfer import Transfer


def model_labels(models: Sequence[str], control: Sequence[str]) -> list[str]:
    """Model names, with "(random-init)" or "(baseline)" appended for controls."""
    return [f"{m} ({c})" if c else m for m, c in zip(models, control, strict=True)]


def interval_notes(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Cell notes "[lo, hi]" (empty where the interval is undefined)."""
    notes = np.full(np.shape(lo), "", dtype=object)
    for index, low in np.ndenumerate(np.asarray(lo, np.float64)):
        high = float(np.asarray(hi)[index])
        if np.isfinite(low) and np.isfinite(high):
            notes[index] = f"[{low:.2f}, {high:.2f}]"
    return notes


def draw_r2_heatmap(ax: Any, matrix: np.ndarray, rows: Sequence[str], columns: Sequence[str],
                    notes: np.ndarray | None = None) -> Any:
    """An annotated R² heatmap on ``ax`` (value, then the cell's note below it)."""
    import matplotlib

    matrix = np.asarray(matrix, np.float64)
    cmap = matplotlib.colormaps["cividis"].with_extremes(bad="#d9d9d9")
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=0.0, vmax=1.0,
                      aspect="auto", interpolation="nearest")
    for (i, j), value in np.ndenumerate(matrix):
        text = "n/a" if not np.isfinite(value) else f"{value:.2f}"
        if notes is not None and notes[i, j]:
            text += f"\n{notes[i, j]}"
        dark = not np.isfinite(value) or value > 0.6
        ax.text(j, i, text, ha="center", va="center", fontsize=7 if notes is not None else 8,
                color="black" if dark else "white")
    ax.set_xticks(range(len(columns)), labels=list(columns), rotation=40, ha="right")
    ax.set_yticks(range(len(rows)), labels=list(rows))
    return image


def r2_heatmap(matrix: np.ndarray, rows: Sequence[str], columns: Sequence[str],
               output: str | os.PathLike[str], title: str, xlabel: str, ylabel: str,
               notes: np.ndarray | None = None, rule_after: int | None = None) -> None:
    """One annotated R² heatmap, sized by its label counts, written atomically as PNG; a
    horizontal rule below row ``rule_after`` (e.g. between models and controls)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cell = 1.1 if notes is not None else 0.75
    width = 3.0 + cell * len(columns) + 0.07 * max(map(len, rows), default=0)
    height = 2.0 + (0.55 if notes is not None else 0.42) * len(rows) + \
        0.06 * max(map(len, columns), default=0)
    fig, ax = plt.subplots(figsize=(width, height))
    image = draw_r2_heatmap(ax, matrix, rows, columns, notes)
    if rule_after is not None:
        ax.axhline(rule_after + 0.5, color="black", linewidth=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    bar = fig.colorbar(image, ax=ax, extend="min", fraction=0.05, pad=0.02)
    bar.set_label("held-out R² (colour clipped to [0, 1])")
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)


def plot_probes(result: Probes, output: str | os.PathLike[str]) -> None:
    """Models first, then the controls, then the best control's R² per property."""
    attrs = result.attrs
    labels = model_labels(result.models, result.control)
    order = [i for i, c in enumerate(result.control) if not c] + \
        [i for i, c in enumerate(result.control) if c]
    trained = sum(1 for c in result.control if not c)
    matrix = np.asarray(result.r2)[order]
    notes = interval_notes(np.asarray(result.r2_lo)[order], np.asarray(result.r2_hi)[order])
    rows = [labels[i] for i in order]
    if trained < len(order):
        matrix = np.vstack([matrix, np.asarray(result.r2_control)[None]])
        notes = np.vstack([notes, np.full((1, matrix.shape[1]), "", dtype=object)])
        rows.append("best control")
    title = (f"Ridge probes on {attrs.get('dataset', '?')}: held-out R², mean of "
             f"{attrs.get('repeats', '?')} seeded {attrs.get('folds', '?')}-fold nested CVs "
             f"[95% interval]")
    r2_heatmap(matrix, rows, result.properties, output, title, "property", "model", notes,
               rule_after=trained - 1 if 0 < trained < len(order) else None)


def plot_transfer(result: Transfer, output: str | os.PathLike[str]) -> None:
    """Left: transfer R² of the primary property; right: every pair's transfer against the
    mapped model's own probe (a supervised probe of B would lie on the diagonal)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attrs = result.attrs
    labels = model_labels(result.models, result.control)
    m = len(labels)
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(6.0 + 2.1 * m, 3.2 + 0.7 * m), width_ratios=[max(m, 2), 4],
        layout="constrained")
    image = draw_r2_heatmap(left, result.r2, labels, labels,
                            interval_notes(result.r2_lo, result.r2_hi))
    left.set_xlabel("model B (embeddings mapped into A's space, map blind to the property)")
    left.set_ylabel("model A (owner of the frozen probe)")
    left.set_title(f"{attrs.get('property', '?')}: transfer R² (diagonal: own probe)")
    fig.colorbar(image, ax=left, extend="min", fraction=0.05, pad=0.02).set_label(
        "held-out R² (colour clipped to [0, 1])")
    stacks = result.stacks
    transfer = np.asarray(stacks.get("r2_all", result.r2[None]))
    own = np.asarray(stacks.get("r2_mapped_own_all", result.r2_mapped_own[None]))
    lo = np.asarray(stacks.get("r2_lo_all", result.r2_lo[None]))
    hi = np.asarray(stacks.get("r2_hi_all", result.r2_hi[None]))
    pairs = [(a, b) for a in range(m) for b in range(m) if a != b]
    colours = matplotlib.colormaps["tab10"]
    for p, name in enumerate(result.properties):
        for is_control, marker in ((False, "o"), (True, "x")):
            chosen = [(a, b) for a, b in pairs if bool(result.control[b]) == is_control]
            if not chosen:
                continue
            a_idx, b_idx = np.array(chosen).T
            y = transfer[p, a_idx, b_idx]
            err = np.abs(np.vstack([y - lo[p, a_idx, b_idx], hi[p, a_idx, b_idx] - y]))
            right.errorbar(own[p, a_idx, b_idx], y, yerr=np.nan_to_num(err), fmt=marker,
                           color=colours(p % 10), markersize=4, elinewidth=0.6, alpha=0.8,
                           label=f"{name}{' (B a control)' if is_control else ''}")
    right.axline((0, 0), slope=1, color="grey", linestyle="--", linewidth=0.8)
    right.axhline(0, color="grey", linewidth=0.6)
    right.set_xlim(-0.1, 1.02)
    right.set_ylim(-0.3, 1.02)
    right.set_xlabel("B's own probe R² (same rows and folds)")
    right.set_ylabel("transfer R² of A's probe on B mapped into A")
    right.set_title("transfer beside own probe")
    right.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Probe transfer on {attrs.get('dataset', '?')}: mean of "
                 f"{attrs.get('repeats', '?')} seeded {attrs.get('folds', '?')}-fold CVs "
                 "[95% interval]")
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
