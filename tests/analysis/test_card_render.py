"""The card's PNG page and HTML page, from synthetic card dicts (schema version 1)."""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from matteralign.plots.card import plot_card
from matteralign.plots.card_page import card_html, render_card_html

ZOO = [("sevennet-0-22may2024", "atoms", ""), ("cgcnn-formation-energy", "atoms", ""),
       ("mace-mp-0-medium", "atoms", ""), ("chgnet-0.3.0", "atoms", ""),
       ("orb-v2-conservative", "atoms", ""), ("uma-s-1p1-omat", "atoms", ""),
       ("molformer-xl-both-10pct", "smiles", ""), ("chemberta-77m-mlm", "smiles", ""),
       ("esm2-t33-650m-ur50d", "sequence", ""), ("minilm-l6-v2", "text", ""),
       ("mace-off23-small", "atoms", "random-init"), ("morgan-fp", "smiles", "baseline")]
METRICS = [("cknna", "CKNNA", False, True), ("mutual_knn", "mutual k-NN", True, True),
           ("cka", "linear CKA", True, True), ("dcor", "distance correlation", True, True),
           ("information_imbalance", "information imbalance Δ(row → column)", False, False)]
NEW = "my-model <v2> & co"


def _entry(rng: np.random.Generator, higher: bool) -> dict[str, Any]:
    value = float(rng.uniform(0.05, 0.9))
    null = float(rng.uniform(0.0, 0.1)) if higher else float(rng.uniform(0.9, 1.0))
    p95 = null + 0.05 if higher else null - 0.05
    above = value > p95 if higher else value < p95
    return {"value": value, "ci_low": value - 0.04, "ci_high": value + 0.05,
            "null_mean": null, "null_p95": p95, "p_value": 0.01 if above else 0.4,
            "calibrated": (value - null) / (1 - null), "above_chance": bool(above)}


def make_card(m: int = 12, random_init: bool = False, nan: bool = False,
              new_mae: float = 0.03, name: str = NEW) -> dict[str, Any]:
    """A card with ``m`` zoo models; ``nan`` puts NaN into values, intervals and R²."""
    from scipy.cluster.hierarchy import linkage

    rng = np.random.default_rng(m)
    zoo = ZOO[:m]
    models = [z[0] for z in zoo]
    metrics = {}
    for key, title, symmetric, higher in METRICS:
        rows = []
        for model in models:
            row = {"model": model, **_entry(rng, higher)}
            row["reverse"] = None if symmetric else _entry(rng, higher)
            rows.append(row)
        if nan:
            rows[0].update(value=math.nan, ci_low=math.nan, ci_high=math.nan,
                           calibrated=math.nan, above_chance=False)
            rows[1].update(ci_low=math.nan, null_mean=math.nan, null_p95=math.nan)
        metrics[key] = {"title": title, "symmetric": symmetric, "higher_is_aligned": higher,
                        "to_zoo": rows, "mean_alignment": 0.41, "rank": 3, "n_ranked": m + 1,
                        "zoo_mean_alignment": {mo: float(rng.uniform(0, 1)) for mo in models},
                        "nearest": models[:3]}
    props = ["energy", "homo_lumo_gap", "dipole_moment", "zpve"]
    r2 = {p: {mo: float(rng.uniform(-1.2, 0.99)) for mo in models} for p in props}
    if nan:
        r2["energy"][models[0]] = math.nan
    points = rng.normal(size=(m + 1, 3))
    return {
        "card_version": 1,
        "model": {"name": name, "source": "emb/new.h5", "format": "h5", "weights": "pretrained",
                  "weights_sha256": "ab" * 32, "random_init": random_init, "dim": 256,
                  "n_rows": 2000, "n_valid": 1990},
        "dataset": {"name": "qm9", "kind": "molecules", "dataset_sha256": "cd" * 32,
                    "n_total": 2000, "n_used": 1990, "n_study_used": 2000},
        "settings": {"k": 10, "preprocessing": "center+l2", "bootstrap": 20,
                     "permutations": 50, "seed": 0, "ci": 0.95,
                     "null": "rows of the new model's embeddings permuted, P times"},
        "zoo": {"models": models, "control": [z[2] for z in zoo],
                "modality": [z[1] for z in zoo]},
        "headline_metric": "cknna",
        "metrics": metrics,
        "intrinsic_dim": {"value": math.nan if nan else 14.2, "ci_low": 12.9, "ci_high": 15.8,
                          "zoo": {mo: float(rng.uniform(5, 30)) for mo in models}},
        "probes": {"properties": props, "units": {"energy": "eV", "homo_lumo_gap": "eV",
                                                  "dipole_moment": "D", "zpve": "eV"},
                   "new": {"r2": {p: float(rng.uniform(0, 1)) for p in props},
                           "mae": {p: float(rng.uniform(0, 1)) for p in props}},
                   "zoo": {"r2": r2, "mae": {p: {mo: 0.1 for mo in models} for p in props}},
                   "rank_r2": {p: 2 for p in props}},
        "convergence": {"reference": models[0], "performance_measure": "energy_mae",
                        "units": "eV",
                        "new": {"mae": new_mae, "alignment_to_reference": 0.55},
                        "zoo": {"models": models,
                                "mae": [float(10 ** rng.uniform(-2, 1)) for _ in models],
                                "alignment_to_reference": [float(rng.uniform(0, 1))
                                                           for _ in models],
                                "control": [z[2] for z in zoo]},
                        "note": "controls excluded from Spearman's rho"},
        "tree": {"models": models + [name],
                 "linkage": linkage(points, method="average").tolist(),
                 "modality": [z[1] for z in zoo] + ["atoms"],
                 "control": [z[2] for z in zoo] + [""],
                 "joins": models[:2], "height": 0.42},
        "reused": ["zoo pairwise CKNNA read from results/qm9/cknna.h5"],
        "timing_s": {"knn": 1.25, "metrics": 3.5},
        "provenance": {"matteralign_version": "0.9", "git_commit": "abc123",
                       "created": "2026-12-02T04:00:00Z", "zoo_sha256": {"cknna.h5": "ef"}},
    }


def _png_ok(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a full page, not an empty canvas


def test_full_card_renders_one_png_page(tmp_path) -> None:
    out = tmp_path / "card.png"
    plot_card(make_card(), out)
    _png_ok(out)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically


@pytest.mark.parametrize("missing", [("convergence", "tree", "probes", "intrinsic_dim"),
                                     ("convergence",), ("tree",)])
def test_card_without_optional_parts_renders(tmp_path, missing) -> None:
    card = make_card(m=6)
    for key in missing:
        card[key] = None
    plot_card(card, tmp_path / "card.png")
    _png_ok(tmp_path / "card.png")


def test_card_with_nan_values_and_nan_new_mae_renders(tmp_path) -> None:
    card = make_card(nan=True, new_mae=math.nan, random_init=True, m=5)
    plot_card(card, tmp_path / "card.png")
    _png_ok(tmp_path / "card.png")
    # the same card read back from JSON (NaN -> null) renders too
    as_json = json.loads(json.dumps(card).replace("NaN", "null"))
    plot_card(as_json, tmp_path / "card-json.png")
    _png_ok(tmp_path / "card-json.png")


def test_dollar_signs_in_names_are_not_mathtext(tmp_path) -> None:
    plot_card(make_card(m=4, name="price $1 and $2 model"), tmp_path / "card.png")
    _png_ok(tmp_path / "card.png")


def test_html_names_every_zoo_model_escapes_and_embeds(tmp_path) -> None:
    card = make_card()
    png, html_path = tmp_path / "card.png", tmp_path / "card.html"
    plot_card(card, png)
    render_card_html(card, png, html_path)
    text = html_path.read_text(encoding="utf-8")
    for model in card["zoo"]["models"]:
        assert model in text
    assert "my-model &lt;v2&gt; &amp; co" in text
    assert NEW not in text  # never unescaped
    assert "RANDOM-INIT" not in text
    encoded = base64.b64encode(png.read_bytes()).decode()
    assert f"data:image/png;base64,{encoded}" in text
    assert "zoo → new" in text  # reverse columns of the asymmetric metrics
    assert "zoo pairwise CKNNA read from results/qm9/cknna.h5" in text
    assert "abc123" in text


def test_html_warns_on_random_init_shows_nan_as_dash_and_links_when_not_embedded(
        tmp_path) -> None:
    card = make_card(random_init=True, nan=True, m=3)
    png, html_path = tmp_path / "figs" / "card.png", tmp_path / "card.html"
    plot_card(card, png)
    render_card_html(card, png, html_path, embed=False)
    text = html_path.read_text(encoding="utf-8")
    assert "RANDOM-INIT, not trained weights" in text
    assert "base64" not in text
    assert 'src="figs/card.png"' in text
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)
    assert "<td class=\"num\">–</td>" in text


def test_html_of_a_card_without_optional_parts(tmp_path) -> None:
    card = make_card(m=2)
    for key in ("convergence", "tree", "probes", "intrinsic_dim"):
        card[key] = None
    text = card_html(card, tmp_path / "absent.png", tmp_path / "card.html")
    assert "absent.png: not produced" in text
    assert text.count("<table>") >= len(card["metrics"])
