"""A new model's card as one PNG page (``card_page`` renders the HTML page).

It reads only the ``card`` dict (schema: ``card_version`` 1), so a card read back from JSON
(NaN as ``None``) renders the same as one fresh from the analysis. Colours follow the rest of
the study's figures: labels by modality, controls in italics, the new model in red.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from matteralign.plots.alignment import MODALITY_COLOURS
from matteralign.plots.study import _label_points, _pyplot, _save, _wrap

#: the new model's colour everywhere on the page
NEW_COLOUR = "#D55E00"
#: grey of the permutation null's markers and of entries not above chance
NULL_COLOUR = "0.55"
#: x-span (in decades) above which the convergence panel uses a log axis
LOG_DECADES = 1.5
#: characters per line of the title block (it shares the top row with the legend)
WRAP = 130
DASH = "–"


def _f(value: Any) -> float:
    """A float, NaN for ``None`` or anything not a number (a card read back from JSON)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _t(text: object) -> str:
    """Text for matplotlib: a literal ``$`` must not start mathtext."""
    return str(text).replace("$", r"\$")


def _num(value: Any, digits: int = 3) -> str:
    x = _f(value)
    return DASH if not math.isfinite(x) else f"{x:.{digits}f}"


def _label(model: str, control: str) -> str:
    return f"{model} ({control})" if control else model


def _zoo_lookup(card: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    zoo = card.get("zoo", {})
    models = list(zoo.get("models", []))
    control = list(zoo.get("control", [""] * len(models)))
    modality = list(zoo.get("modality", [""] * len(models)))
    return dict(zip(models, control, strict=True)), dict(zip(models, modality, strict=True))


def _style_ticks(labels: Sequence[Any], models: Sequence[str], control: Mapping[str, str],
                 modality: Mapping[str, str], new: str | None = None,
                 fontsize: float = 8.0) -> None:
    """Colour tick labels by modality, controls in italics, the new model bold red."""
    for tick, model in zip(labels, models, strict=True):
        tick.set_fontsize(fontsize)
        if new is not None and model == new:
            tick.set_color(NEW_COLOUR)
            tick.set_fontweight("bold")
            continue
        tick.set_color(MODALITY_COLOURS.get(modality.get(model, ""), "#000000"))
        if control.get(model):
            tick.set_fontstyle("italic")


# ---------------------------------------------------------------------------------------------
# The PNG page
# ---------------------------------------------------------------------------------------------


def _summary(card: Mapping[str, Any]) -> str:
    """One sentence: the headline metric's rank, the nearest models, where the tree puts it."""
    name = card.get("headline_metric", "")
    metric = card.get("metrics", {}).get(name)
    if metric is None:
        return f"headline metric {name or '?'}: not computed"
    text = (f"{metric.get('title', name)}: rank {metric.get('rank', '?')} of "
            f"{metric.get('n_ranked', '?')} by mean alignment "
            f"({_num(metric.get('mean_alignment'))}); nearest: "
            f"{', '.join(metric.get('nearest', [])) or DASH}")
    tree = card.get("tree")
    if tree and tree.get("joins"):
        text += (f"; the tree joins it to {', '.join(tree['joins'])} "
                 f"at d = {_num(tree.get('height'), 2)}")
    return text


def _title_block(ax: Any, card: Mapping[str, Any]) -> None:
    """Model, dataset, settings and the one-line summary; each line hangs below the last."""
    ax.axis("off")
    model, data, s = card.get("model", {}), card.get("dataset", {}), card.get("settings", {})
    last = ax.text(0.0, 1.0, _t(model.get("name", "?")), fontsize=17, fontweight="bold",
                   va="top", transform=ax.transAxes)

    def below(text: str, gap: float = 3.0, **style: Any) -> Any:
        return ax.annotate(_t(text), xy=(0, 0), xycoords=last, xytext=(0, -gap),
                           textcoords="offset points", va="top", ha="left", **style)

    if model.get("random_init"):
        last = below("RANDOM-INIT, not trained weights", color="#cf222e", fontsize=12,
                     fontweight="bold")
    lines = [
        f"dataset {data.get('name', '?')} ({data.get('kind', '?')}): N used "
        f"{data.get('n_used', '?')} of {data.get('n_total', '?')} (zoo's stored matrices: "
        f"{data.get('n_study_used', '?')}); embedding dim {model.get('dim', '?')}, "
        f"{model.get('n_valid', '?')} of {model.get('n_rows', '?')} rows valid",
        f"k = {s.get('k', '?')}, preprocessing {s.get('preprocessing', '?')}, "
        f"B = {s.get('bootstrap', '?')} bootstrap resamples ({_ci(s)} intervals), "
        f"P = {s.get('permutations', '?')} permutations, seed {s.get('seed', '?')}; "
        f"weights {model.get('weights', '?')}",
    ]
    last = below("\n".join(_wrap(line, WRAP) for line in lines), fontsize=10)
    last = below(_wrap(_summary(card), WRAP), gap=4.0, fontsize=10, fontweight="bold")
    if s.get("null"):
        below(_wrap(f"chance level: {s['null']}", WRAP + 15), fontsize=8.5, color="0.3")


def _ci(settings: Mapping[str, Any]) -> str:
    ci = _f(settings.get("ci", 0.95))
    return f"{100 * ci:.0f}%" if math.isfinite(ci) else "?"


def _sort_key(value: float, higher_is_aligned: bool) -> tuple[int, float]:
    """Most aligned first; NaN last."""
    if not math.isfinite(value):
        return (1, 0.0)
    return (0, -value if higher_is_aligned else value)


def _metric_panel(ax: Any, card: Mapping[str, Any], name: str, headline: bool) -> None:
    """One metric: the new model's value to each zoo model with its interval, the null's mean
    (grey diamond) and 95% threshold (grey tick); hollow = not above chance. Most aligned at
    the top; the reverse direction (zoo -> new) as a small triangle when the metric is
    asymmetric."""
    control, modality = _zoo_lookup(card)
    metric = card["metrics"][name]
    higher = bool(metric.get("higher_is_aligned", True))
    rows = sorted(metric.get("to_zoo", []),
                  key=lambda r: _sort_key(_f(r.get("value")), higher))
    n = len(rows)
    ys = np.arange(n)[::-1].astype(float)
    size = 42 if headline else 26
    for y, row in zip(ys, rows, strict=True):
        value, low, high = _f(row.get("value")), _f(row.get("ci_low")), _f(row.get("ci_high"))
        colour = MODALITY_COLOURS.get(modality.get(row.get("model", ""), ""), "#000000")
        above = bool(row.get("above_chance"))
        ax.axhline(y, color="0.93", linewidth=0.6, zorder=0)
        if math.isfinite(_f(row.get("null_mean"))):
            ax.scatter(_f(row.get("null_mean")), y, marker="D", s=size * 0.45, c=NULL_COLOUR,
                       linewidths=0, zorder=2)
        if math.isfinite(_f(row.get("null_p95"))):
            ax.scatter(_f(row.get("null_p95")), y, marker="|", s=size * 2.2, c=NULL_COLOUR,
                       linewidths=1.4, zorder=2)
        reverse = row.get("reverse")
        if reverse and math.isfinite(_f(reverse.get("value"))):
            ax.scatter(_f(reverse.get("value")), y - 0.18, marker="^", s=size * 0.6,
                       facecolors=colour if reverse.get("above_chance") else "white",
                       edgecolors=colour if reverse.get("above_chance") else NULL_COLOUR,
                       linewidths=0.8, zorder=3)
        if not math.isfinite(value):
            continue  # its tick label says n/a
        if math.isfinite(low) and math.isfinite(high):
            ax.plot([low, high], [y, y], color=colour if above else NULL_COLOUR,
                    linewidth=1.6 if headline else 1.1, zorder=3, solid_capstyle="butt")
        ax.scatter(value, y, marker="o", s=size, zorder=4, linewidths=1.0,
                   facecolors=colour if above else "white",
                   edgecolors=colour if above else NULL_COLOUR)
    models = [r.get("model", "") for r in rows]
    ax.set_yticks(ys, labels=[_t(_label(r.get("model", ""), control.get(r.get("model", ""), ""))
                                 + ("" if math.isfinite(_f(r.get("value"))) else " [n/a]"))
                              for r in rows])
    _style_ticks(ax.get_yticklabels(), models, control, modality,
                 fontsize=8.5 if headline else 7.5)
    ax.set_ylim(-0.7, n - 0.3)
    ax.grid(axis="x", alpha=0.3)
    ax.tick_params(axis="x", labelsize=8)
    direction = "higher" if higher else "lower"
    title = _t(metric.get("title", name))
    summary = (f"rank {metric.get('rank', '?')}/{metric.get('n_ranked', '?')}, "
               f"mean {_num(metric.get('mean_alignment'))}")
    if headline:
        ax.set_title(f"{title}, new model → each zoo model (headline)\n{summary}",
                     fontsize=10.5, fontweight="bold")
        ax.set_xlabel(f"{title} ({direction} = more aligned); bars: {_ci(card['settings'])} "
                      "bootstrap interval", fontsize=9)
    else:
        ax.set_title(f"{title} ({direction} = aligned; {summary})", fontsize=9)


def _metric_legend(ax: Any, asymmetric: bool) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", linestyle="-", color="0.2", markerfacecolor="0.2",
               label="new → zoo, with interval"),
        Line2D([], [], marker="o", linestyle="none", markerfacecolor="white",
               markeredgecolor=NULL_COLOUR, label="not above chance"),
        Line2D([], [], marker="D", linestyle="none", color=NULL_COLOUR, markersize=4,
               label="null mean"),
        Line2D([], [], marker="|", linestyle="none", color=NULL_COLOUR, markersize=9,
               markeredgewidth=1.4, label="null 95% threshold"),
    ]
    if asymmetric:
        handles.append(Line2D([], [], marker="^", linestyle="none", color="0.2",
                              markersize=5, label="zoo → new"))
    ax.legend(handles=handles, fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.11),
              ncol=len(handles), frameon=False, handletextpad=0.3, columnspacing=1.0)


def _note(ax: Any, text: str) -> None:
    ax.axis("off")
    ax.text(0.5, 0.5, _t(_wrap(text, 60)), ha="center", va="center", fontsize=9, color="0.35",
            transform=ax.transAxes)


def _convergence_panel(ax: Any, card: Mapping[str, Any]) -> None:
    conv = card.get("convergence")
    if not conv:
        _note(ax, "convergence: not available for this dataset (no stored performance "
                  "measure or reference model)")
        return
    zoo = conv.get("zoo", {})
    models = list(zoo.get("models", []))
    mae = np.array([_f(v) for v in zoo.get("mae", [])], dtype=np.float64)
    align = np.array([_f(v) for v in zoo.get("alignment_to_reference", [])], dtype=np.float64)
    controls = list(zoo.get("control", [""] * len(models)))
    _, modality = _zoo_lookup(card)
    measure = conv.get("performance_measure", "performance")
    reference = conv.get("reference", "")
    new_mae = _f(conv.get("new", {}).get("mae"))
    new_align = _f(conv.get("new", {}).get("alignment_to_reference"))
    for i, model in enumerate(models):
        if not (math.isfinite(mae[i]) and math.isfinite(align[i])):
            continue
        colour = MODALITY_COLOURS.get(modality.get(model, ""), "#000000")
        hollow = bool(controls[i])
        ax.scatter(mae[i], align[i], s=40, zorder=3, linewidths=1.0,
                   marker="s" if model == reference else "o",
                   facecolors="white" if hollow else colour, edgecolors=colour)
    finite = np.isfinite(mae) & np.isfinite(align)
    positive = mae[finite & (mae > 0)]
    if math.isfinite(new_mae) and new_mae > 0:
        positive = np.append(positive, new_mae)
    if positive.size >= 2 and np.log10(positive.max() / positive.min()) > LOG_DECADES:
        ax.set_xscale("log")
    if math.isfinite(new_mae) and math.isfinite(new_align):
        ax.scatter(new_mae, new_align, marker="*", s=320, c=NEW_COLOUR, edgecolors="black",
                   linewidths=0.6, zorder=5, label="new model")
    elif math.isfinite(new_align):
        ax.axhline(new_align, color=NEW_COLOUR, linestyle="--", linewidth=1.4, zorder=2)
        ax.text(0.02, new_align, _t(f" new model: no {measure}: alignment only"),
                transform=ax.get_yaxis_transform(), color=NEW_COLOUR, fontsize=8,
                va="bottom", ha="left")
    else:
        ax.text(0.5, 0.95, "new model: no alignment to the reference", ha="center", va="top",
                transform=ax.transAxes, color=NEW_COLOUR, fontsize=8)
    units = f" [{conv['units']}]" if conv.get("units") else ""
    headline = card.get("metrics", {}).get(card.get("headline_metric", ""), {})
    ax.set_xlabel(_t(f"{measure}{units} (lower = more accurate)"), fontsize=9)
    ax.set_ylabel(_t(f"{headline.get('title', card.get('headline_metric', ''))} to "
                     f"reference {reference or '?'}"), fontsize=9)
    title = f"Convergence: accuracy vs alignment (■ = reference {reference})"
    if conv.get("note"):
        title += "\n" + _wrap(str(conv["note"]), 80)
    ax.set_title(_t(title), fontsize=9.5)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=8)
    ax.margins(x=0.12, y=0.12)

def _label_convergence(ax: Any, card: Mapping[str, Any]) -> None:
    """Name the convergence points, once the other panels are drawn (the labels avoid each
    other and the points, which needs the final axes)."""
    zoo = card["convergence"].get("zoo", {})
    models = list(zoo.get("models", []))
    controls = list(zoo.get("control", [""] * len(models)))
    mae = np.array([_f(v) for v in zoo.get("mae", [])], dtype=np.float64)
    align = np.array([_f(v) for v in zoo.get("alignment_to_reference", [])], dtype=np.float64)
    before = set(ax.texts)
    _label_points(ax, mae, align,
                  [_t(_label(m, c)) for m, c in zip(models, controls, strict=True)])
    for text in set(ax.texts) - before:
        text.set_fontsize(7)


def _tree_panel(ax: Any, card: Mapping[str, Any]) -> None:
    from scipy.cluster.hierarchy import dendrogram

    tree = card.get("tree")
    if not tree:
        _note(ax, "model tree: not available (too few models or missing pairs)")
        return
    models = list(tree["models"])
    control = dict(zip(models, tree.get("control", [""] * len(models)), strict=True))
    modality = dict(zip(models, tree.get("modality", [""] * len(models)), strict=True))
    new = card.get("model", {}).get("name", models[-1])
    new = new if new in models else models[-1]
    linkage = np.asarray(tree["linkage"], dtype=np.float64)
    info = dendrogram(linkage, labels=[_label(m, control.get(m, "")) for m in models],
                      orientation="left", ax=ax, color_threshold=0,
                      above_threshold_color="0.35", no_labels=False)
    ordered = [models[i] for i in info["leaves"]]
    ax.set_yticks(ax.get_yticks(), labels=[_t(_label(m, control.get(m, ""))) for m in ordered])
    _style_ticks(ax.get_yticklabels(), ordered, control, modality, new=new, fontsize=7.5)
    height = _f(tree.get("height"))
    if math.isfinite(height):
        ax.axvline(height, color=NEW_COLOUR, linestyle=":", linewidth=1)
    top = float(np.nanmax(linkage[:, 2])) if linkage.size else 1.0
    ax.set_xlim(max(top * 1.05, 1e-9), 0.0)
    ax.set_xlabel("distance (average linkage)", fontsize=8.5)
    ax.tick_params(axis="x", labelsize=7.5)
    joins = ", ".join(tree.get("joins", [])) or DASH
    ax.set_title(_t(_wrap(f"Model tree: joins {joins} at d = {_num(height, 2)}", 60)),
                 fontsize=9.5)
    ax.grid(axis="x", alpha=0.3)


def _probes_panel(ax: Any, card: Mapping[str, Any]) -> None:
    probes = card.get("probes")
    if not probes or not probes.get("properties"):
        _note(ax, "probes: not available for this dataset")
        return
    control, modality = _zoo_lookup(card)
    props = list(probes["properties"])
    floor = -0.5  # R² below is drawn at the axis edge as "<"
    ys = np.arange(len(props))[::-1].astype(float)
    n_ranked = len(control) + 1
    for y, prop in zip(ys, props, strict=True):
        zoo = probes.get("zoo", {}).get("r2", {}).get(prop, {})
        for model, value in zoo.items():
            r2 = _f(value)
            if not math.isfinite(r2):
                continue
            colour = MODALITY_COLOURS.get(modality.get(model, ""), "#000000")
            ax.scatter(max(r2, floor), y, marker="<" if r2 < floor else "o", s=22, alpha=0.8,
                       facecolors="white" if control.get(model) else colour,
                       edgecolors=colour, linewidths=0.8, zorder=3)
        new = _f(probes.get("new", {}).get("r2", {}).get(prop))
        if math.isfinite(new):
            ax.scatter(max(new, floor), y, marker="*", s=200, c=NEW_COLOUR,
                       edgecolors="black", linewidths=0.5, zorder=5)
    labels = []
    for prop in props:
        unit = probes.get("units", {}).get(prop, "")
        rank = probes.get("rank_r2", {}).get(prop)
        labels.append(_t(f"{prop}{f' ({unit})' if unit else ''}\n"
                         f"rank {rank if rank is not None else DASH}/{n_ranked}"))
    ax.set_yticks(ys, labels=labels, fontsize=7.5)
    ax.set_ylim(-0.6, len(props) - 0.4)
    ax.set_xlim(floor - 0.05, 1.02)
    ax.axvline(0.0, color="0.6", linewidth=0.8)
    ax.set_xlabel("held-out R² (★ new; dots zoo; < below −0.5)", fontsize=8.5)
    ax.tick_params(axis="x", labelsize=7.5)
    ax.set_title("Ridge probes", fontsize=9.5)
    ax.grid(axis="x", alpha=0.3)


def _intrinsic_dim_panel(ax: Any, card: Mapping[str, Any]) -> None:
    ident = card.get("intrinsic_dim")
    if not ident:
        _note(ax, "intrinsic dimension: not available")
        return
    control, modality = _zoo_lookup(card)
    new = card.get("model", {}).get("name", "new model")
    value = _f(ident.get("value"))
    rows = [(m, _f(v)) for m, v in ident.get("zoo", {}).items()] + [(new, value)]
    rows.sort(key=lambda r: _sort_key(r[1], True))
    ys = np.arange(len(rows))[::-1].astype(float)
    for y, (model, v) in zip(ys, rows, strict=True):
        if not math.isfinite(v):
            continue  # its tick label says n/a
        if model == new:
            low, high = _f(ident.get("ci_low")), _f(ident.get("ci_high"))
            if math.isfinite(low) and math.isfinite(high):
                ax.plot([low, high], [y, y], color=NEW_COLOUR, linewidth=1.6, zorder=4)
            ax.scatter(v, y, marker="*", s=200, c=NEW_COLOUR, edgecolors="black",
                       linewidths=0.5, zorder=5)
            continue
        colour = MODALITY_COLOURS.get(modality.get(model, ""), "#000000")
        ax.scatter(v, y, s=26, facecolors="white" if control.get(model) else colour,
                   edgecolors=colour, linewidths=0.9, zorder=3)
    models = [r[0] for r in rows]
    ax.set_yticks(ys, labels=[_t((m if m == new else _label(m, control.get(m, "")))
                                 + ("" if math.isfinite(v) else " [n/a]")) for m, v in rows])
    _style_ticks(ax.get_yticklabels(), models, control, modality, new=new, fontsize=7.5)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("TwoNN intrinsic dimension", fontsize=8.5)
    ax.tick_params(axis="x", labelsize=7.5)
    title = (f"Intrinsic dimension: {_num(value, 1)} [{_num(ident.get('ci_low'), 1)}, "
             f"{_num(ident.get('ci_high'), 1)}]" if math.isfinite(value)
             else "Intrinsic dimension: new model n/a")
    ax.set_title(title, fontsize=9.5)
    ax.grid(axis="x", alpha=0.3)


def _modality_legend(fig: Any, card: Mapping[str, Any]) -> None:
    from matplotlib.lines import Line2D

    _, modality = _zoo_lookup(card)
    handles = [Line2D([], [], marker="o", linestyle="none", color=MODALITY_COLOURS.get(m, "k"),
                      label=m or "unknown") for m in dict.fromkeys(modality.values())]
    handles.append(Line2D([], [], marker="o", linestyle="none", markerfacecolor="white",
                          markeredgecolor="0.3", label="control (hollow / italic label)"))
    handles.append(Line2D([], [], marker="*", linestyle="none", color=NEW_COLOUR,
                          markersize=12, label="new model"))
    legend = fig.legend(handles=handles, title="zoo model modality (label colour)",
                        fontsize=8, title_fontsize=8, loc="upper right",
                        bbox_to_anchor=(0.995, 0.995), frameon=False, ncol=2)
    legend.set_in_layout(False)


class _Page:
    """Axes placed in inches on a fixed-width page, rows top to bottom, so the label space
    beside each panel is known (tick labels of up to ~28 characters fit)."""

    def __init__(self, plt: Any, rows: Sequence[float], width: float = 13.0) -> None:
        self.rows, self.width = list(rows), width
        self.height = sum(self.rows)
        self.fig = plt.figure(figsize=(width, self.height))

    def axes(self, row: int, left: float, right: float, top: float = 0.45,
             bottom: float = 0.6) -> Any:
        """Row ``row`` between ``left`` and ``right`` inches; ``top``/``bottom`` inches
        of the row kept free for the title and the x label."""
        y0 = self.height - sum(self.rows[:row + 1]) + bottom
        h = self.rows[row] - top - bottom
        return self.fig.add_axes((left / self.width, y0 / self.height,
                                  (right - left) / self.width, h / self.height))


def plot_card(card: Mapping[str, Any], output: str | os.PathLike[str]) -> None:
    """The card as one page: title block, the headline metric's dot chart beside the
    convergence scatter, one small dot chart per other metric, then tree, probes and
    intrinsic dimension. Panels whose part of the card is ``None`` carry a note instead."""
    plt = _pyplot()
    metrics = list(card.get("metrics", {}))
    headline = card.get("headline_metric", metrics[0] if metrics else "")
    others = [m for m in metrics if m != headline]
    n_zoo = len(card.get("zoo", {}).get("models", []))
    title_h = 1.65 if card.get("model", {}).get("random_init") else 1.4
    head_h = max(4.6, 0.3 * n_zoo + 2.0)
    small_h = max(2.6, 0.18 * n_zoo + 1.1)
    bottom_h = max(3.4, 0.22 * (n_zoo + 1) + 1.3)
    small_rows = math.ceil(len(others) / 2)
    page = _Page(plt, [title_h, head_h] + [small_h] * small_rows + [bottom_h])
    fig = page.fig
    _title_block(page.axes(0, 0.2, 12.8, top=0.1, bottom=0.05), card)
    _modality_legend(fig, card)
    if headline in card.get("metrics", {}):
        ax = page.axes(1, 2.1, 6.5, top=0.7, bottom=1.0)
        _metric_panel(ax, card, headline, headline=True)
        asymmetric = any(r.get("reverse") for m in metrics
                         for r in card["metrics"][m].get("to_zoo", []))
        _metric_legend(ax, asymmetric)
    else:
        _note(page.axes(1, 2.1, 6.5), f"headline metric {headline or '?'}: not in card")
    convergence = page.axes(1, 7.6, 12.8, top=0.7, bottom=1.0)
    _convergence_panel(convergence, card)
    for i, name in enumerate(others):
        left, right = (2.1, 6.3) if i % 2 == 0 else (8.6, 12.8)
        _metric_panel(page.axes(2 + i // 2, left, right), card, name, headline=False)
    last = len(page.rows) - 1
    _tree_panel(page.axes(last, 0.2, 2.3, top=0.6), card)
    _probes_panel(page.axes(last, 5.3, 8.0, top=0.6), card)
    _intrinsic_dim_panel(page.axes(last, 10.0, 12.8, top=0.6), card)
    if card.get("convergence"):
        _label_convergence(convergence, card)
    _save(fig, output, f"alignment card of {card.get('model', {}).get('name', '?')} on "
                       f"{card.get('dataset', {}).get('name', '?')}")
