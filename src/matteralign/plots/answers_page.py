"""The answers page: one self-contained HTML file from :class:`~matteralign.analysis.answers.
Answers` (figures embedded as PNG data, so it reads the same inside the Snakemake report)."""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matteralign.io import atomic_path

if TYPE_CHECKING:
    from matteralign.analysis.answers import Answers, Claim, Test

COLOURS = {"agrees": "#1a7f37", "disagrees": "#cf222e", "inconclusive": "#9a6700",
           "mixed": "#8250df", "cannot be tested here": "#57606a"}

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #1f2328; }
h1 { margin-bottom: 0.2rem; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 0.2rem; }
.verdict { color: white; border-radius: 0.8rem; padding: 0.05rem 0.6rem; font-size: 0.85rem;
           white-space: nowrap; }
table { border-collapse: collapse; margin: 0.5rem 0; }
td, th { border: 1px solid #d0d7de; padding: 0.25rem 0.5rem; vertical-align: top; }
.paper { background: #f6f8fa; border-left: 4px solid #0969da; padding: 0.4rem 0.8rem; }
.rule { font-size: 0.9rem; color: #57606a; }
.test { margin: 0.8rem 0 0.8rem 1rem; }
figure { display: inline-block; margin: 0.5rem; } figure img { max-width: 34rem; }
figcaption { font-size: 0.8rem; color: #57606a; }
li { margin: 0.1rem 0; }
"""


def _e(text: object) -> str:
    return html.escape(str(text))


def badge(verdict: str) -> str:
    colour = COLOURS.get(verdict, "#57606a")
    return f'<span class="verdict" style="background:{colour}">{_e(verdict)}</span>'


def _anchor(figure: str) -> str:
    return "fig-" + "".join(c if c.isalnum() else "-" for c in figure)


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>" if items else ""


def _figure_links(figures: list[str]) -> str:
    if not figures:
        return ""
    links = ", ".join(f'<a href="#{_anchor(f)}">{_e(f)}</a>' for f in figures)
    return f"<p>Figures: {links}</p>"


def _test(test: Test) -> str:
    parts = [f'<div class="test"><h4>{_e(test.label)} {badge(test.verdict)}</h4>',
             f"<p>{_e(test.reason)}</p>"]
    if test.measured:
        parts.append(f"<details><summary>Measured ({len(test.measured)})</summary>"
                     f"{_list(test.measured)}</details>")
    if test.controls:
        parts.append(f"<p>Controls, not counted in the verdict:</p>{_list(test.controls)}")
    parts.append(_figure_links(test.figures))
    return "".join(parts) + "</div>"


def _claim(claim: Claim) -> str:
    return (f'<section id="{_e(claim.key)}"><h2>{_e(claim.title)} {badge(claim.verdict)}</h2>'
            f'<p class="paper"><b>The claim</b> ({_e(claim.source)}): {_e(claim.paper)}</p>'
            f'<p class="rule"><b>Rule:</b> {_e(claim.rule)}</p>'
            + "".join(_test(t) for t in claim.tests)
            + (f"<p><b>Caveats:</b></p>{_list(claim.notes)}" if claim.notes else "")
            + "</section>")


def _summary(answers: Answers) -> str:
    rows = "".join(
        f'<tr><td><a href="#{_e(c.key)}">{_e(c.title)}</a></td><td>{badge(c.verdict)}</td>'
        f"<td>{'<br>'.join(f'{_e(t.label)}: {badge(t.verdict)}' for t in c.tests)}</td></tr>"
        for c in answers.claims)
    return ("<table><tr><th>question</th><th>verdict</th><th>per dataset / sub-test</th></tr>"
            f"{rows}</table>")


def _settings(answers: Answers) -> str:
    s = answers.settings
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td>{_e(d['kind'])}</td><td>{_e(d['n'])}</td>"
        f"<td>{_e(d['n_used'] if d['n_used'] is not None else '-')}</td>"
        f"<td>{_e(', '.join(d['models']))}</td>"
        f"<td>{_e(', '.join(f'{m} ({c})' for m, c in d['controls'].items()) or '-')}</td></tr>"
        for name, d in s["datasets"].items())
    return (f"<p>k = {_e(s['k'])}, preprocessing {_e(s['preprocessing'])}, "
            f"{_e(s['bootstrap'])} bootstrap half-samples (95% intervals), "
            f"{_e(s['permutations'])} permutations (chance level), seed {_e(s['seed'])}, "
            f"reference {_e(s['reference'] or 'the most accurate model of each dataset')}.</p>"
            "<table><tr><th>dataset</th><th>kind</th><th>N</th><th>N used</th><th>models</th>"
            f"<th>controls</th></tr>{rows}</table>")


def _figures(answers: Answers, results: Path, html_path: Path, embed: bool) -> str:
    seen: list[str] = []
    for claim in answers.claims:
        for test in claim.tests:
            seen += [f for f in test.figures if f not in seen]
    parts = []
    for figure in seen:
        path = results / figure
        if not path.is_file():
            parts.append(f'<p id="{_anchor(figure)}">{_e(figure)}: not produced</p>')
            continue
        if embed:
            data = base64.b64encode(path.read_bytes()).decode()
            src = f"data:image/png;base64,{data}"
        else:
            src = Path(os.path.relpath(path, html_path.parent)).as_posix()
        parts.append(f'<figure id="{_anchor(figure)}"><img src="{_e(src)}" alt="{_e(figure)}">'
                     f"<figcaption>{_e(figure)}</figcaption></figure>")
    return "".join(parts)


def render_answers(answers: Answers, results: Path, html_path: Path,
                   embed_figures: bool = True) -> str:
    from matteralign.analysis.answers import VERDICTS

    prov = answers.provenance
    legend = ", ".join(badge(v) for v in VERDICTS)
    missing = (f"<h2>Files not found</h2>{_list(answers.missing)}" if answers.missing else "")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>matteralign: the study's answers</title><style>{STYLE}</style></head><body>"
        "<h1>The study's answers</h1>"
        "<p>Claims of <i>Universally Converging Representations of Matter Across Scientific "
        "Foundation Models</i> (arXiv 2512.03750) and the calibration critique of Gröger et "
        "al. (arXiv 2602.14486), and a question of a popular-press account of this work "
        "(probe transfer; also the property maps), tested on this run's files by the rules "
        "stated with each claim; each claim names its source. Numbers are given as value "
        "[95% bootstrap interval], with the permutation null's mean as the chance level and "
        "the permutation p-value (1 + #null as aligned)/(1 + P); above chance = Benjamini-"
        "Hochberg q ≤ 0.05 over a dataset's pairs × metrics; calibrated = rescaled so chance "
        "is 0 and perfect alignment 1.</p>"
        f"<p>Verdicts: {legend}. A claim's verdict combines its tests: untestable ones are "
        "left out; agreeing and disagreeing tests together give <i>mixed</i>.</p>"
        f"{_summary(answers)}<h2>This run</h2>{_settings(answers)}"
        + "".join(_claim(c) for c in answers.claims)
        + f"<h2>Figures</h2>{_figures(answers, results, html_path, embed_figures)}{missing}"
        f"<hr><p class='rule'>matteralign {_e(prov.get('matteralign_version', ''))}, commit "
        f"{_e(prov.get('git_commit', ''))}, {_e(prov.get('created', ''))}; the same numbers "
        "are in answers.json.</p></body></html>")


def write_answers(results: str | os.PathLike[str], config: Mapping[str, Any],
                  out_html: str | os.PathLike[str], out_json: str | os.PathLike[str] | None = None,
                  embed_figures: bool = True) -> Answers:
    """answers.html (and answers.json beside it, the same numbers), both written atomically."""
    from matteralign.analysis.answers import study_answers

    answers = study_answers(results, config)
    out_json = Path(out_json) if out_json else Path(out_html).with_suffix(".json")
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(answers.to_json(), indent=1, ensure_ascii=False))
    page = render_answers(answers, results=Path(results), html_path=Path(out_html),
                          embed_figures=embed_figures)
    with atomic_path(out_html) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return answers
