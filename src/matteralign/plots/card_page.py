"""A new model's card as a self-contained HTML page: the PNG page, one table per metric,
probes, intrinsic dimension, what was reused, timing and provenance (every text escaped,
NaN shown as a dash)."""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matteralign.io import atomic_path
from matteralign.plots.answers_page import STYLE, _e, _list
from matteralign.plots.card import DASH, _ci, _f, _num, _sort_key, _summary, _zoo_lookup

CARD_STYLE = STYLE + """
.warning { color: white; background: #cf222e; padding: 0.4rem 0.8rem; border-radius: 0.3rem;
           font-weight: bold; display: inline-block; }
.yes { color: #1a7f37; font-weight: bold; } .no { color: #57606a; }
.control { font-style: italic; } .new { color: #D55E00; font-weight: bold; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img.card { max-width: 100%; border: 1px solid #d0d7de; }
"""

_ENTRY_COLUMNS = ("value", "95% CI", "null mean", "null p95", "p-value", "calibrated",
                  "above chance")


def _p(value: Any) -> str:
    x = _f(value)
    return DASH if not math.isfinite(x) else f"{x:.3g}"


def _yes_no(value: Any) -> str:
    return '<span class="yes">yes</span>' if value else '<span class="no">no</span>'


def _entry_cells(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return "".join(f'<td class="num">{DASH}</td>' for _ in _ENTRY_COLUMNS)
    ci = (f"[{_num(entry.get('ci_low'))}, {_num(entry.get('ci_high'))}]"
          if math.isfinite(_f(entry.get("ci_low"))) or math.isfinite(_f(entry.get("ci_high")))
          else DASH)
    cells = [_num(entry.get("value")), ci, _num(entry.get("null_mean")),
             _num(entry.get("null_p95")), _p(entry.get("p_value")),
             _num(entry.get("calibrated"))]
    return ("".join(f'<td class="num">{_e(c)}</td>' for c in cells)
            + f"<td>{_yes_no(entry.get('above_chance'))}</td>")


def _model_cell(model: str, control: str) -> str:
    if control:
        return f'<td class="control">{_e(model)} ({_e(control)})</td>'
    return f"<td>{_e(model)}</td>"


def _metric_table(card: Mapping[str, Any], name: str) -> str:
    control, _ = _zoo_lookup(card)
    metric = card["metrics"][name]
    rows = metric.get("to_zoo", [])
    higher = bool(metric.get("higher_is_aligned", True))
    reverse = not metric.get("symmetric", True) or any(r.get("reverse") for r in rows)
    means = metric.get("zoo_mean_alignment", {})
    head = "".join(f"<th>{_e(c)}</th>" for c in _ENTRY_COLUMNS)
    header = ("<tr><th rowspan='2'>zoo model</th>"
              f"<th colspan='{len(_ENTRY_COLUMNS)}'>new → zoo</th>"
              + (f"<th colspan='{len(_ENTRY_COLUMNS)}'>zoo → new</th>" if reverse else "")
              + "<th rowspan='2'>zoo model's mean alignment</th></tr>"
              f"<tr>{head}{head if reverse else ''}</tr>")
    body = "".join(
        f"<tr>{_model_cell(r.get('model', ''), control.get(r.get('model', ''), ''))}"
        f"{_entry_cells(r)}{_entry_cells(r.get('reverse')) if reverse else ''}"
        f"<td class='num'>{_e(_num(means.get(r.get('model', ''))))}</td></tr>"
        for r in sorted(rows, key=lambda r: _sort_key(_f(r.get("value")), higher)))
    return (f"<h3>{_e(metric.get('title', name))} "
            f"<small>({'higher' if higher else 'lower'} = more aligned)</small></h3>"
            f"<p>Rank {_e(metric.get('rank', '?'))} of {_e(metric.get('n_ranked', '?'))} by "
            f"mean alignment ({_e(_num(metric.get('mean_alignment')))}); nearest: "
            f"{_e(', '.join(metric.get('nearest', [])) or DASH)}.</p>"
            f"<table>{header}{body}</table>")


def _probes_html(card: Mapping[str, Any]) -> str:
    probes = card.get("probes")
    if not probes or not probes.get("properties"):
        return "<p>No probes for this dataset.</p>"
    control, _ = _zoo_lookup(card)
    props = list(probes["properties"])
    units = probes.get("units", {})
    new = card.get("model", {}).get("name", "new model")
    head = "".join(f"<th>{_e(p)}{_e(f' ({units[p]})') if units.get(p) else ''}</th>"
                   for p in props)
    n_ranked = len(control) + 1
    new_r2, new_mae = probes.get("new", {}).get("r2", {}), probes.get("new", {}).get("mae", {})
    rank = probes.get("rank_r2", {})
    rows = [f'<tr><td class="new">{_e(new)}</td>'
            + "".join(f'<td class="num new">{_e(_num(new_r2.get(p)))} '
                      f"(rank {_e(rank.get(p, DASH))}/{n_ranked}; MAE "
                      f"{_e(_num(new_mae.get(p)))})</td>" for p in props) + "</tr>"]
    zoo_r2, zoo_mae = probes.get("zoo", {}).get("r2", {}), probes.get("zoo", {}).get("mae", {})
    for model in control:
        rows.append(f"<tr>{_model_cell(model, control[model])}"
                    + "".join(f'<td class="num">{_e(_num(zoo_r2.get(p, {}).get(model)))} '
                              f"(MAE {_e(_num(zoo_mae.get(p, {}).get(model)))})</td>"
                              for p in props) + "</tr>")
    return ("<p>Held-out R² of ridge probes (MAE in the property's units); rank 1 = best of "
            f"the {n_ranked} models.</p><table><tr><th>model</th>{head}</tr>"
            + "".join(rows) + "</table>")


def _intrinsic_dim_html(card: Mapping[str, Any]) -> str:
    ident = card.get("intrinsic_dim")
    if not ident:
        return "<p>Not computed.</p>"
    control, _ = _zoo_lookup(card)
    zoo = ident.get("zoo", {})
    rows = "".join(f"<tr>{_model_cell(m, control.get(m, ''))}"
                   f"<td class='num'>{_e(_num(v, 1))}</td></tr>" for m, v in zoo.items())
    return (f"<p>New model: <b>{_e(_num(ident.get('value'), 1))}</b> "
            f"[{_e(_num(ident.get('ci_low'), 1))}, {_e(_num(ident.get('ci_high'), 1))}] "
            "(TwoNN).</p><table><tr><th>zoo model</th><th>intrinsic dimension</th></tr>"
            f"{rows}</table>")


def _convergence_html(card: Mapping[str, Any]) -> str:
    conv = card.get("convergence")
    if not conv:
        return "<p>Not available for this dataset.</p>"
    units = f" {conv['units']}" if conv.get("units") else ""
    new = conv.get("new", {})
    return (f"<p>Reference {_e(conv.get('reference', '?'))}; new model's "
            f"{_e(conv.get('performance_measure', '?'))}: {_e(_num(new.get('mae')))}"
            f"{_e(units)}, alignment to the reference "
            f"{_e(_num(new.get('alignment_to_reference')))}.</p>"
            + (f"<p class='rule'>{_e(conv['note'])}</p>" if conv.get("note") else ""))


def _key_values(values: Mapping[str, Any], digits: int | None = None) -> str:
    if not values:
        return "<p>–</p>"
    rows = []
    for key, value in values.items():
        if digits is not None:
            text = _num(value, digits)
        elif isinstance(value, str):
            text = value
        else:
            text = json.dumps(value, default=str)
        rows.append(f"<tr><td>{_e(key)}</td><td>{_e(text)}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _image(png_path: Path, html_path: Path, embed: bool, alt: str) -> str:
    if not png_path.is_file():
        return f"<p>{_e(png_path.name)}: not produced</p>"
    if embed:
        src = "data:image/png;base64," + base64.b64encode(png_path.read_bytes()).decode()
    else:
        src = Path(os.path.relpath(png_path, html_path.parent)).as_posix()
    return f'<img class="card" src="{_e(src)}" alt="{_e(alt)}">'


def card_html(card: Mapping[str, Any], png_path: str | os.PathLike[str],
              html_path: str | os.PathLike[str], embed: bool = True) -> str:
    """The card's HTML text; every string from the card is escaped."""
    model, data, s = card.get("model", {}), card.get("dataset", {}), card.get("settings", {})
    name = model.get("name", "?")
    warning = ('<p class="warning">RANDOM-INIT, not trained weights: this card describes an '
               "untrained network (a control), not the model's published weights.</p>"
               if model.get("random_init") else "")
    prov = card.get("provenance", {})
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>matteralign card: {_e(name)} on {_e(data.get('name', '?'))}</title>"
        f"<style>{CARD_STYLE}</style></head><body>"
        f"<h1>{_e(name)} <small>on {_e(data.get('name', '?'))}</small></h1>{warning}"
        f"<p>Embeddings {_e(model.get('source', '?'))} ({_e(model.get('format', '?'))}, dim "
        f"{_e(model.get('dim', '?'))}, {_e(model.get('n_valid', '?'))} of "
        f"{_e(model.get('n_rows', '?'))} rows valid); weights {_e(model.get('weights', '?'))} "
        f"(sha256 {_e(model.get('weights_sha256', '') or DASH)}).</p>"
        f"<p>Dataset {_e(data.get('name', '?'))} ({_e(data.get('kind', '?'))}): "
        f"{_e(data.get('n_used', '?'))} of {_e(data.get('n_total', '?'))} rows used "
        f"(the zoo's stored matrices used {_e(data.get('n_study_used', '?'))}). "
        f"k = {_e(s.get('k', '?'))}, preprocessing {_e(s.get('preprocessing', '?'))}, "
        f"{_e(s.get('bootstrap', '?'))} bootstrap resamples ({_e(_ci(s))} intervals), "
        f"{_e(s.get('permutations', '?'))} permutations, seed {_e(s.get('seed', '?'))}. "
        f"Chance level: {_e(s.get('null', '?'))}</p>"
        f"<p><b>Summary:</b> {_e(_summary(card))}.</p>"
        f"{_image(Path(png_path), Path(html_path), embed, f'alignment card of {name}')}"
        "<h2>Alignment to the zoo</h2>"
        + "".join(_metric_table(card, m) for m in card.get("metrics", {}))
        + f"<h2>Convergence</h2>{_convergence_html(card)}"
        f"<h2>Probes</h2>{_probes_html(card)}"
        f"<h2>Intrinsic dimension</h2>{_intrinsic_dim_html(card)}"
        f"<h2>Reused from stored results</h2>{_list(list(card.get('reused', []))) or '<p>–</p>'}"
        f"<h2>Timing (s)</h2>{_key_values(card.get('timing_s', {}), digits=2)}"
        f"<h2>Provenance</h2>{_key_values(prov)}"
        f"<hr><p class='rule'>card version {_e(card.get('card_version', '?'))}; matteralign "
        f"{_e(prov.get('matteralign_version', ''))}; the same numbers are in card.json.</p>"
        "</body></html>")


def render_card_html(card: Mapping[str, Any], png_path: str | os.PathLike[str],
                     html_path: str | os.PathLike[str], embed: bool = True) -> None:
    """Write the card's HTML page atomically; the PNG embedded as base64 when ``embed``,
    else linked relative to the page."""
    text = card_html(card, png_path, html_path, embed)
    with atomic_path(Path(html_path)) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_card(card: dict[str, Any], out: str | os.PathLike[str], force: bool = False
               ) -> dict[str, Path]:
    """``card.png``, ``card.html`` and last ``card.json`` in ``out``, each written atomically
    (a card.json is only there when the whole card was); existing ones are replaced only with
    ``force`` (:class:`~matteralign.outputs.OutputExistsError` names them otherwise)."""
    from matteralign.analysis.card import CARD_FILES, json_safe
    from matteralign.outputs import refuse_existing
    from matteralign.plots.card import plot_card

    folder = Path(out)
    paths = {name.split(".")[1]: folder / name for name in CARD_FILES}  # json, png, html
    refuse_existing((("--out", path) for path in paths.values()), force)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_safe(card), indent=1, allow_nan=False) + "\n"
    plot_card(card, paths["png"])
    render_card_html(card, paths["png"], paths["html"])
    with atomic_path(paths["json"]) as tmp:
        Path(tmp).write_text(text)
    return paths
