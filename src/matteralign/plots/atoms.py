"""Pooled against atom-level alignment: one panel per metric, one point per pair of
potentials (x: on pooled structures, y: atom by atom), with both intervals, and each
element's atom-level value beside it; the pairs farthest from the diagonal are named."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from matteralign.analysis.atoms import LevelPair
from matteralign.metrics.spec import SPECS
from matteralign.plots.alignment import TITLES
from matteralign.plots.study import _label_points, _pyplot, _save

#: Okabe–Ito colours for the elements' markers, in order of atomic number
ELEMENT_COLOURS = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00",
                   "#CC79A7", "#000000")
#: pairs named in each panel: those farthest from the diagonal
LABELLED = 4


def _short(name: str) -> str:
    return name if len(name) <= 14 else name[:13] + "…"


def _most_shifted(pairs: Sequence[LevelPair], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the ``LABELLED`` pairs farthest from the diagonal, one direction of each
    pair (CKNNA's two directions differ in the last digits only); all are in the table."""
    shift = np.nan_to_num(np.abs(y - x), nan=-1.0)
    named: list[int] = []
    seen: set[frozenset[str]] = set()
    for i in np.argsort(-shift, kind="stable").tolist():
        pair = frozenset((pairs[i].source, pairs[i].target))
        if pair not in seen and len(named) < LABELLED:
            named.append(i)
            seen.add(pair)
    return np.array(named, dtype=int)


def plot_levels(pairs: Sequence[LevelPair], dataset: str, output: str | os.PathLike[str],
                n_atoms: int, n_structures: int) -> None:
    """The comparison figure; a metric without any pair is left out."""
    plt = _pyplot()
    metrics = list(dict.fromkeys(p.metric for p in pairs))
    if not metrics:
        raise ValueError(f"{dataset}: no pair of potentials in both the pooled and the "
                         "atom-level metric files")
    from ase.data import atomic_numbers

    elements = sorted({s for p in pairs for s in p.by_element},
                      key=lambda s: atomic_numbers.get(s, 0))
    colours = {s: ELEMENT_COLOURS[i % len(ELEMENT_COLOURS)] for i, s in enumerate(elements)}
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.3 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        mine = [p for p in pairs if p.metric == metric]
        x = np.array([p.pooled for p in mine])
        y = np.array([p.atoms for p in mine])
        xerr = np.abs(np.array([[p.pooled - p.pooled_ci[0], p.pooled_ci[1] - p.pooled]
                                for p in mine]).T)
        yerr = np.abs(np.array([[p.atoms - p.atoms_ci[0], p.atoms_ci[1] - p.atoms]
                                for p in mine]).T)
        chance = [p.atoms_above_chance is not False for p in mine]
        ax.errorbar(x, y, xerr=np.nan_to_num(xerr), yerr=np.nan_to_num(yerr), fmt="none",
                    ecolor="#999999", elinewidth=0.8, zorder=1)
        ax.scatter(x[chance], y[chance], s=36, color="#0072B2", zorder=3,
                   label="all atoms (above chance)")
        if not all(chance):
            off = ~np.array(chance)
            ax.scatter(x[off], y[off], s=36, facecolors="none", edgecolors="#0072B2",
                       zorder=3, label="all atoms (not above chance)")
        for symbol in elements:
            ex = [p.pooled for p in mine if symbol in p.by_element]
            ey = [p.by_element[symbol] for p in mine if symbol in p.by_element]
            ax.scatter(ex, ey, s=14, marker="D", color=colours[symbol], zorder=2,
                       label=f"{symbol} atoms only")
        finite = np.concatenate([x, y, *[[v for p in mine for v in p.by_element.values()]]])
        finite = finite[np.isfinite(finite)]
        if finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            pad = 0.05 * (hi - lo or 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="#BBBBBB", lw=0.8,
                    ls="--", zorder=0)
        direction = "higher" if SPECS[metric].higher_is_aligned else "lower"
        ax.set_title(f"{TITLES.get(metric, metric)} ({direction} = aligned)", fontsize=9)
        ax.set_xlabel("pooled structures", fontsize=8)
        ax.set_ylabel("atom level", fontsize=8)
        ax.tick_params(labelsize=7)
        named = _most_shifted(mine, x, y)
        arrow = "–" if SPECS[metric].symmetric else "→"
        _label_points(ax, x[named], y[named],
                      [f"{_short(mine[i].source)}{arrow}{_short(mine[i].target)}"
                       for i in named])
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=7,
               frameon=False, bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"{dataset}: pooled vs atom-level alignment of the potentials "
                 f"({n_atoms} atoms of {n_structures} structures; bars: bootstrap intervals, "
                 "atom level over structures)", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    _save(fig, output, f"pooled vs atom-level alignment on {dataset}")
