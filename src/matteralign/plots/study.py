"""Figures of the study's questions: convergence, regimes, embedding maps, the model tree.

Colours are from the Okabe–Ito palette (distinguishable with the common colour-vision
deficiencies) and continuous scales use viridis; controls always get a distinct marker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from matteralign.io import atomic_path

OKABE_ITO = {
    "blue": "#0072B2", "orange": "#E69F00", "grey": "#999999", "green": "#009E73",
    "vermillion": "#D55E00", "purple": "#CC79A7", "sky": "#56B4E9", "yellow": "#F0E442",
    "black": "#000000",
}
REGIME_COLOURS = {"ID": OKABE_ITO["blue"], "OOD": OKABE_ITO["orange"],
                  "control": OKABE_ITO["grey"]}
PAIR_COLOURS = {"ID-ID": OKABE_ITO["blue"], "ID-OOD": OKABE_ITO["green"],
                "OOD-OOD": OKABE_ITO["orange"], "control": OKABE_ITO["grey"]}
PAIR_MARKERS = {"ID-ID": "o", "ID-OOD": "s", "OOD-OOD": "^", "control": "x"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, output: str | os.PathLike[str], description: str = "") -> None:
    plt = _pyplot()
    with atomic_path(Path(output)) as tmp:
        fig.savefig(tmp, format="png", dpi=130, bbox_inches="tight",
                    metadata={"Description": description} if description else None)
    plt.close(fig)


def _fmt(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:+.2f}"


def _overlap(a: Any, b: Any) -> float:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(width, 0.0) * max(height, 0.0)


def _label_points(ax: Any, x: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> None:
    """Model names beside their points; adjustText when installed, else a greedy choice per
    point among eight offsets that overlaps least with the labels placed so far, the points
    and the axes frame. Call after the axes' scales and limits are final."""
    from matplotlib.transforms import Bbox

    keep = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    if keep.size == 0:
        return
    try:
        from adjustText import adjust_text
    except ImportError:
        adjust_text = None
    if adjust_text is not None:
        texts = [ax.text(x[i], y[i], labels[i], fontsize=7.5) for i in keep]
        adjust_text(texts, ax=ax, arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5})
        return
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    centres = ax.transData.transform(np.column_stack([x[keep], y[keep]]))
    radius = 5.0 * fig.dpi / 72.0
    obstacles = [Bbox.from_bounds(cx - radius, cy - radius, 2 * radius, 2 * radius)
                 for cx, cy in centres]
    candidates = [(5, 4, "left", "bottom"), (5, -4, "left", "top"), (-5, 4, "right", "bottom"),
                  (-5, -4, "right", "top"), (0, 7, "center", "bottom"),
                  (0, -7, "center", "top"), (8, 0, "left", "center"),
                  (-8, 0, "right", "center")]
    for i in keep[np.argsort(x[keep])]:
        best, best_cost = None, np.inf
        for dx, dy, ha, va in candidates:
            text = ax.annotate(labels[i], (x[i], y[i]), xytext=(dx, dy),
                               textcoords="offset points", ha=ha, va=va, fontsize=7.5)
            box = text.get_window_extent(renderer)
            cost = sum(_overlap(box, other) for other in obstacles)
            cost += 10.0 * (box.width * box.height - _overlap(box, frame))  # outside the axes
            if cost < best_cost:
                if best is not None:
                    best.remove()
                best, best_cost, best_box = text, cost, box
            else:
                text.remove()
            if cost == 0:
                break
        obstacles.append(best_box)


# ---------------------------------------------------------------------------------------------
# Convergence
# ---------------------------------------------------------------------------------------------


def plot_convergence(convergence_path: str | os.PathLike[str],
                     output: str | os.PathLike[str]) -> None:
    """Two panels: MAE against alignment to the reference, and against mean alignment."""
    from matteralign.analysis.convergence import read_convergence

    data = read_convergence(convergence_path)
    attrs = data["attrs"]
    plt = _pyplot()
    models = list(data["models"])
    control = np.array([c != "" for c in data["control"]])
    mae = np.asarray(data["mae"])
    local = np.asarray(data["local_optimum"], dtype=bool)
    measure = attrs.get("performance_measure", "mae")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    panels = [("alignment_to_reference", "reference",
               f"{attrs.get('metric', '')} to reference {attrs.get('reference') or '(none)'}"),
              ("mean_alignment", "mean", f"mean {attrs.get('metric', '')} to all other models")]
    has_points = False
    for ax, (key, stat, ylabel) in zip(axes, panels, strict=True):
        y = np.asarray(data[key])
        finite = np.isfinite(mae) & np.isfinite(y)
        has_points |= bool(finite.any())
        groups = [(~control & ~local, "o", OKABE_ITO["blue"], "trained model"),
                  (~control & local, "D", OKABE_ITO["vermillion"],
                   "local optimum (accurate, weakly aligned)"),
                  (control, "X", OKABE_ITO["grey"], "control (excluded from ρ)")]
        for mask, marker, colour, label in groups:
            if (mask & finite).any():
                ax.scatter(mae[mask & finite], y[mask & finite], marker=marker, c=colour,
                           s=46, edgecolors="black", linewidths=0.5, label=label, zorder=3)
        rho = attrs.get(f"spearman_{stat}", np.nan)
        low = attrs.get(f"spearman_{stat}_ci_low", np.nan)
        high = attrs.get(f"spearman_{stat}_ci_high", np.nan)
        ax.set_title(f"Spearman ρ = {_fmt(rho)}  [95% CI {_fmt(low)}, {_fmt(high)}]",
                     fontsize=10)
        units = f" [{attrs['mae_units']}]" if attrs.get("mae_units") else ""
        ax.set_xlabel(f"{measure}{units} (lower = more accurate)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if finite.any() and np.nanmin(mae[finite]) > 0 and \
                np.nanmax(mae[finite]) / np.nanmin(mae[finite]) > 30:
            ax.set_xscale("log")
        ax.margins(x=0.15, y=0.12)
    if has_points:
        handles, labels = [], []
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        fig.legend(handles, labels, loc="lower center", ncol=3, frameon=False,
                   bbox_to_anchor=(0.5, -0.06), fontsize=9)
    note = str(attrs.get("note", ""))
    sign = "ρ > 0" if str(attrs.get("convergence_sign", "")).startswith("positive") else "ρ < 0"
    if note or not has_points:
        fig.text(0.5, -0.1, _wrap(("note: " + note) if note else "no finite MAE", 150),
                 ha="center", va="top", fontsize=8.5, color="0.2")
    fig.suptitle(f"Convergence on {attrs.get('dataset', '?')}: does alignment rise as "
                 f"{measure} falls? ({sign} = converging; {attrs.get('n_models', 0)} model(s) "
                 "in ρ)", fontsize=11)
    fig.tight_layout()
    for ax, (key, _, _) in zip(axes, panels, strict=True):
        _label_points(ax, mae, np.asarray(data[key]),
                      [f"{m} (reference)" if m == attrs.get("reference") else m
                       for m in models])
    _save(fig, output, f"convergence; {attrs.get('controls_excluded', '')}; {note}")


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


# ---------------------------------------------------------------------------------------------
# Regimes: intrinsic dimension and the information-imbalance plane
# ---------------------------------------------------------------------------------------------


def plot_intrinsic_dim(regimes_path: str | os.PathLike[str], output: str | os.PathLike[str],
                       modalities: Mapping[str, str] | None = None) -> None:
    """TwoNN ID per model with its interval, grouped and coloured by regime."""
    from matplotlib.patches import Patch

    from matteralign.analysis.regimes import read_regimes

    data = read_regimes(regimes_path)
    plt = _pyplot()
    models, labels = list(data["models"]), list(data["regime"])
    ids = np.asarray(data["intrinsic_dim"])
    low, high = np.asarray(data["intrinsic_dim_ci_low"]), np.asarray(data["intrinsic_dim_ci_high"])
    order = sorted(range(len(models)), key=lambda i: (("ID", "OOD", "control").index(labels[i])
                                                      if labels[i] in REGIME_COLOURS else 3, i))
    x, positions, previous = 0.0, [], None
    for i in order:
        if previous is not None and labels[i] != previous:
            x += 0.6  # a gap between regime groups
        positions.append(x)
        previous = labels[i]
        x += 1.0
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(models) + 3.0), 4.6))
    values = ids[order]
    err = np.vstack([values - low[order], high[order] - values])
    has_ci = np.isfinite(err).all(axis=0)
    ax.bar(positions, values, color=[REGIME_COLOURS.get(labels[i], "#000000") for i in order],
           edgecolor="black", linewidth=0.5, hatch=None)
    if has_ci.any():
        ax.errorbar(np.asarray(positions)[has_ci], values[has_ci], yerr=err[:, has_ci],
                    fmt="none", ecolor="black", capsize=3, linewidth=1)
    modality = modalities or {}
    ax.set_xticks(positions)
    ax.set_xticklabels([f"{models[i]} [{modality[models[i]]}]" if modality.get(models[i])
                        else models[i] for i in order], rotation=40, ha="right", fontsize=8.5)
    ax.set_ylabel("TwoNN intrinsic dimension")
    summary = data["summary"]
    legend = [Patch(facecolor=REGIME_COLOURS[g], edgecolor="black",
                    label=f"{g} (n={summary[g]['n_models']}, mean "
                          f"{_plain(summary[g]['mean_intrinsic_dim'])})")
              for g in REGIME_COLOURS if summary.get(g, {}).get("n_models")]
    ax.legend(handles=legend, title="regime on this dataset", fontsize=8, loc="best")
    ci_text = "bars: 95% delete-half jackknife interval" if has_ci.any() else \
        "no interval (bootstrap = 0)"
    ax.set_title(f"Intrinsic dimension on {data['attrs'].get('dataset', '?')} "
                 f"({data['attrs'].get('dataset_kind', '?')}); {ci_text}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save(fig, output, "TwoNN intrinsic dimension per model, grouped by regime")


def _plain(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def plot_ii_plane(regimes_path: str | os.PathLike[str], ii_path: str | os.PathLike[str],
                  output: str | os.PathLike[str]) -> None:
    """Δ(A→B) against Δ(B→A) for every model pair (Glielmo et al. 2022, Fig. 2 layout).

    In an ID-OOD pair A is the in-distribution model, so the corner a point sits in says
    which regime carries the information.
    """
    from matteralign.analysis.regimes import pair_type, read_regimes
    from matteralign.io import read_metric

    data = read_regimes(regimes_path)
    ii = read_metric(ii_path)
    where = {m: i for i, m in enumerate(ii.models)}
    models, labels = list(data["models"]), list(data["regime"])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 6.0))
    points: dict[str, list[tuple[float, float]]] = {t: [] for t in PAIR_COLOURS}
    for a in range(len(models)):
        for b in range(a + 1, len(models)):
            if models[a] not in where or models[b] not in where:
                continue
            i, j = where[models[a]], where[models[b]]
            if labels[a] == "OOD" and labels[b] == "ID":
                i, j = j, i
            points[pair_type(labels[a], labels[b])].append((ii.matrix[i, j], ii.matrix[j, i]))
    for kind, pts in points.items():
        if pts:
            arr = np.array(pts)
            ax.scatter(arr[:, 0], arr[:, 1], c=PAIR_COLOURS[kind], marker=PAIR_MARKERS[kind],
                       s=40, edgecolors="black" if kind != "control" else None,
                       linewidths=0.5, label=f"{kind} ({len(pts)})", zorder=3)
    top = max(1.1, float(np.nanmax(ii.matrix)) * 1.05 if np.isfinite(ii.matrix).any() else 1.1)
    ax.plot([0, top], [0, top], color="0.4", linestyle="--", linewidth=1, zorder=1)
    box = {"facecolor": "white", "edgecolor": "0.7", "alpha": 0.6}  # below the points
    ax.text(0.03, 0.03, "equivalent", transform=ax.transAxes, fontsize=9, bbox=box, zorder=2)
    ax.text(0.97, 0.97, "independent", transform=ax.transAxes, ha="right", va="top",
            fontsize=9, bbox=box, zorder=2)
    ax.text(0.03, 0.97, "A more informative\n(A predicts B)", transform=ax.transAxes,
            va="top", fontsize=9, bbox=box, zorder=2)
    ax.text(0.97, 0.03, "B more informative\n(B predicts A)", transform=ax.transAxes,
            ha="right", fontsize=9, bbox=box, zorder=2)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_aspect("equal")
    ax.set_xlabel("Δ(A → B)")
    ax.set_ylabel("Δ(B → A)")
    ax.legend(title="pair (A = the ID model\nin an ID-OOD pair)", fontsize=8,
              loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    ax.set_title(f"Information imbalance plane on {data['attrs'].get('dataset', '?')}",
                 fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, output, "information imbalance plane; pairs coloured by regime type; "
          + json.dumps(data["pairs"]))


# ---------------------------------------------------------------------------------------------
# Embedding maps
# ---------------------------------------------------------------------------------------------


def plot_maps(maps: Sequence[Any], property_name: str, output: str | os.PathLike[str],
              dataset: str = "", units: str = "", umap_text: str = "") -> None:
    """One PCA panel per model (and a UMAP row when computed, ``umap_text`` its parameters),
    one shared colour bar."""
    plt = _pyplot()
    if not maps:
        raise ValueError("plot_maps: no embedding files given")
    with_umap = all(m.umap is not None for m in maps)
    cols = min(4, len(maps))
    rows_per = int(np.ceil(len(maps) / cols))
    n_rows = rows_per * (2 if with_umap else 1)
    fig, axes = plt.subplots(n_rows, cols, figsize=(3.1 * cols, 2.9 * n_rows + 0.6),
                             squeeze=False)
    values = np.concatenate([m.values for m in maps])
    finite = values[np.isfinite(values)]
    vmin, vmax = (np.percentile(finite, [1, 99]) if finite.size else (0.0, 1.0))
    scatter = None
    for k, item in enumerate(maps):
        layouts = [("PCA", item.pca, k // cols)]
        if with_umap:
            layouts.append(("UMAP", item.umap, rows_per + k // cols))
        for method, coords, row in layouts:
            ax = axes[row, k % cols]
            has = np.isfinite(item.values)
            if (~has).any():
                ax.scatter(coords[~has, 0], coords[~has, 1], s=4, c="0.8", linewidths=0)
            scatter = ax.scatter(coords[has, 0], coords[has, 1], s=5, c=item.values[has],
                                 cmap="viridis", vmin=vmin, vmax=vmax, linewidths=0)
            tag = f" ({item.control})" if item.control else ""
            ax.set_title(f"{item.model}{tag}\n[{item.modality}] {method}", fontsize=8.5)
            if method == "PCA":
                ax.set_xlabel(f"PC1 ({100 * item.explained[0]:.0f}%)", fontsize=8)
                ax.set_ylabel(f"PC2 ({100 * item.explained[1]:.0f}%)", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    for k in range(len(maps), rows_per * cols):
        for row in ([k // cols, rows_per + k // cols] if with_umap else [k // cols]):
            axes[row, k % cols].axis("off")
    method_text = (f"PCA and {umap_text or 'UMAP'}" if with_umap
                   else "PCA (UMAP turned off: plots.umap.enabled)")
    fig.suptitle(f"Embedding maps on {dataset or '?'} coloured by {property_name}; "
                 f"{method_text}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    if scatter is not None:
        bar_ax = fig.add_axes((0.92, 0.15, 0.018, 0.7))
        bar = fig.colorbar(scatter, cax=bar_ax)
        bar.set_label(f"{property_name}{f' ({units})' if units else ''}; 1st-99th percentile"
                      "; grey = no value", fontsize=8)
    _save(fig, output, f"embedding maps, {method_text}, coloured by {property_name}")


# ---------------------------------------------------------------------------------------------
# Model tree
# ---------------------------------------------------------------------------------------------


def _node_positions(tree: Any, leaves: Sequence[int]) -> list[float]:
    """The dendrogram's coordinate of each linkage row (scipy puts leaf r at 5 + 10 r and
    a link at the mean of its children's coordinates)."""
    n = len(tree.models)
    where = {leaf: 5.0 + 10.0 * rank for rank, leaf in enumerate(leaves)}
    for row, (a, b) in enumerate(tree.linkage[:, :2].astype(int)):
        where[n + row] = (where[a] + where[b]) / 2
    return [where[n + row] for row in range(len(tree.linkage))]


def _draw_tree(ax: Any, tree: Any, modalities: Sequence[str], controls: Sequence[str],
               title: str) -> None:
    from scipy.cluster.hierarchy import dendrogram

    from matteralign.plots.alignment import MODALITY_COLOURS

    labels = [f"{m} ({c})" if c else m for m, c in zip(tree.models, controls, strict=True)]
    info = dendrogram(tree.linkage, labels=labels, orientation="left", ax=ax,
                      color_threshold=0, above_threshold_color="0.3")
    colour_of = dict(zip(labels, modalities, strict=True))
    for tick in ax.get_yticklabels():
        modality = colour_of.get(tick.get_text(), "")
        tick.set_color(MODALITY_COLOURS.get(modality, "#000000"))
        tick.set_fontsize(9)
        if "(" in tick.get_text():
            tick.set_fontstyle("italic")
    if tree.support:
        joins = zip(tree.linkage[:, 2], _node_positions(tree, info["leaves"]), tree.support,
                    strict=True)
        for height, y, share in list(joins)[:-1]:  # the root holds every model: always 100%
            ax.text(height, y, f"{share:.0%}", fontsize=6.5, ha="right", va="bottom",
                    color="tab:red" if share < 0.5 else "0.25")
    ax.set_xlabel(f"d = {tree.distance_name}; average linkage", fontsize=8)
    ax.set_xlim(left=max(1.0, float(np.max(tree.linkage[:, 2])) * 1.05) if len(info["leaves"])
                else 1.0, right=0.0)
    note = f"; {tree.n_missing} NaN pair(s) set to d = 1" if tree.n_missing else ""
    support = ("\nat each join: share of half-sample trees with that clade"
               if tree.support else "")
    ax.set_title(title + note + support, fontsize=9)
    ax.grid(axis="x", alpha=0.3)


def plot_tree(trees: Sequence[tuple[Any, str]], output: str | os.PathLike[str],
              modalities: Sequence[str], controls: Sequence[str], title: str = "") -> None:
    """Dendrograms of the models (one panel per (tree, panel title)); leaf labels coloured by
    modality, controls marked, each join labelled with its clade support."""
    from matplotlib.patches import Patch

    from matteralign.plots.alignment import MODALITY_COLOURS

    plt = _pyplot()
    n_models = len(trees[0][0].models)
    fig, axes = plt.subplots(1, len(trees), squeeze=False,
                             figsize=(8.0 * len(trees), max(3.0, 0.42 * n_models + 1.8)))
    for ax, (tree, panel) in zip(axes[0], trees, strict=True):
        _draw_tree(ax, tree, modalities, controls, panel)
    legend = [Patch(color=MODALITY_COLOURS.get(m, "#000000"), label=m or "unknown")
              for m in dict.fromkeys(modalities)]
    fig.legend(handles=legend, title="modality (label colour)", fontsize=8,
               loc="lower center", ncol=min(len(legend), 5), frameon=False)
    fig.suptitle((title or "Model tree") + "; controls in italics with their label",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save(fig, output, "dendrograms of models from alignment distances")
