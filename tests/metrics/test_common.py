"""Every list of metrics agrees with the metric table (``matteralign.metrics.spec``).

In the style of scikit-learn's ``metrics/tests/test_common.py``: the properties a row claims
(symmetric, direction, range, the single-pair function it equals) are checked on data for
every row, and every other place that names metrics (config schema, plot titles, report
captions, docs, the test studies) is compared with the table, so a metric added in one place
only fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from matteralign import metrics as M
from matteralign.config import load_schema
from matteralign.metrics.spec import ENGINE_NEEDS, METRICS, SPECS, MetricSpec

ROOT = Path(__file__).resolve().parents[2]
NAMES = [spec.name for spec in METRICS]
K = 6


@pytest.fixture(scope="module")
def embeddings() -> dict[str, np.ndarray]:
    """Three views of one latent set (two noisy, one nonlinear) and an unrelated one."""
    rng = np.random.default_rng(11)
    z = rng.normal(size=(70, 4))
    return {
        "a": z @ rng.normal(size=(4, 8)) + 0.1 * rng.normal(size=(70, 8)),
        "b": z @ rng.normal(size=(4, 5)) + 0.1 * rng.normal(size=(70, 5)),
        "c": np.tanh(z @ rng.normal(size=(4, 6))),
        "noise": rng.normal(size=(70, 7)),
    }


@pytest.fixture(scope="module")
def results(embeddings) -> dict[str, tuple[np.ndarray, list[str]]]:
    return M.pairwise(embeddings, NAMES, k=K)


def test_table_is_consistent() -> None:
    assert len(set(NAMES)) == len(NAMES)
    aliases = [a for spec in METRICS for a in spec.aliases]
    assert len(set(aliases)) == len(aliases) and not set(aliases) & set(NAMES)
    for spec in METRICS:
        assert set(spec.needs) <= set(ENGINE_NEEDS), spec.name
        assert spec.title and spec.description and spec.caption and callable(spec.compute)
        assert spec.range[0] < spec.range[1]
        assert (spec.higher_is_aligned is None) == spec.per_model, spec.name


def test_derived_lists_follow_the_table() -> None:
    assert M.PAIRWISE_METRICS == tuple(s.name for s in METRICS if not s.per_model)
    assert M.PER_MODEL_METRICS == tuple(s.name for s in METRICS if s.per_model)
    assert set(M.METRIC_INFO) == set(NAMES)
    for spec in METRICS:
        info = M.METRIC_INFO[spec.name]
        assert (info["symmetric"], info["higher_is_aligned"], info["range"]) == (
            spec.symmetric, spec.higher_is_aligned, spec.range)
    assert M.ALIASES == {a: s.name for s in METRICS for a in s.aliases}


@pytest.mark.parametrize("spec", METRICS, ids=NAMES)
def test_dispatch_computes_exactly_the_requested_metric(spec: MetricSpec, embeddings) -> None:
    alone = M.pairwise(embeddings, [spec.name], k=K)
    assert set(alone) == {spec.name}
    values, names = alone[spec.name]
    assert names == list(embeddings) and values.dtype == np.float64
    assert values.shape == ((4,) if spec.per_model else (4, 4))
    for alias in spec.aliases:
        np.testing.assert_array_equal(M.pairwise(embeddings, [alias], k=K)[spec.name][0],
                                      values)


@pytest.mark.parametrize("spec", METRICS, ids=NAMES)
def test_all_at_once_equals_one_at_a_time(spec: MetricSpec, embeddings, results) -> None:
    """The shared engine pass gives each metric what it gives the metric alone."""
    np.testing.assert_array_equal(results[spec.name][0],
                                  M.pairwise(embeddings, [spec.name], k=K)[spec.name][0])


@pytest.mark.parametrize("spec", METRICS, ids=NAMES)
def test_equals_its_single_pair_function(spec: MetricSpec, embeddings, results) -> None:
    function = getattr(M, spec.function)
    kwargs = {"k": K} if spec.uses_k else {}
    values, names = results[spec.name]
    for i, a in enumerate(names):
        if spec.per_model:
            assert values[i] == pytest.approx(function(embeddings[a]), rel=1e-12)
            continue
        for j, b in enumerate(names):
            if i != j:
                expected = function(embeddings[a], embeddings[b], **kwargs)
                assert values[i, j] == pytest.approx(expected, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("spec", [s for s in METRICS if not s.per_model],
                         ids=[s.name for s in METRICS if not s.per_model])
def test_symmetry_direction_and_range(spec: MetricSpec, results) -> None:
    values, names = results[spec.name]
    low, high = spec.range
    assert np.all((values >= low - 1e-12) & (values <= high + 1e-12)), values
    if spec.symmetric:
        np.testing.assert_allclose(values, values.T, rtol=0, atol=1e-12)
    else:
        assert not np.allclose(values, values.T, rtol=0, atol=1e-15)
    # two views of the same points are more aligned than a view and unrelated noise
    related, unrelated = values[0, 1], values[0, names.index("noise")]
    assert (related > unrelated) if spec.higher_is_aligned else (related < unrelated)


def test_per_model_metrics_are_in_range(results) -> None:
    for spec in (s for s in METRICS if s.per_model):
        values = results[spec.name][0]
        assert np.all((values > spec.range[0]) & (values < spec.range[1]))


def test_schema_names_the_table_metrics() -> None:
    names = load_schema()["properties"]["metrics"]["properties"]["names"]
    assert names["items"]["enum"] == NAMES
    assert names["default"] == [s.name for s in METRICS if s.study_default]


def test_plot_titles_come_from_the_table() -> None:
    from matteralign.plots.alignment import TITLES

    assert TITLES == {spec.name: spec.title for spec in METRICS}


def test_report_caption_comes_from_the_table() -> None:
    """The figure caption template renders each metric's own caption (passed by plot_metric's
    params) and names nothing itself."""
    jinja2 = pytest.importorskip("jinja2")
    template = (ROOT / "workflow" / "report" / "metric.rst").read_text()
    for name in NAMES:
        assert name not in template
    rule = (ROOT / "workflow" / "rules" / "plots.smk").read_text()
    assert re.search(r"caption=lambda wc: SPECS\[wc\.metric\]\.caption", rule)
    for spec in METRICS:
        snakemake = SimpleNamespace(wildcards=SimpleNamespace(metric=spec.name, dataset="qm9"),
                                    params=SimpleNamespace(caption=spec.caption))
        text = jinja2.Environment().from_string(template).render(snakemake=snakemake)
        assert spec.caption in text and f"**{spec.name}**" in text


def test_docs_describe_every_metric() -> None:
    docs = (ROOT / "docs" / "metrics.md").read_text()
    for spec in METRICS:
        assert f"| `{spec.function}(" in docs, f"no row for {spec.function} in docs/metrics.md"
        assert f'`"{spec.name}"`' in docs, f"{spec.name} missing from the pairwise results"
    aliases = next(line for line in docs.splitlines() if "aliases" in line)
    for alias in (a for spec in METRICS for a in spec.aliases):
        assert f"`{alias}`" in aliases


def test_test_studies_use_the_table_metrics() -> None:
    """The end-to-end studies run every metric, in the table's order."""
    for path in ("tests/workflow/test_workflow.py", "tests/slurm/test_slurm.py"):
        text = (ROOT / path).read_text()
        listed = re.search(r"^METRICS = \[(.*?)\]$", text, re.M | re.S)  # may wrap lines
        assert listed is not None, path
        assert re.findall(r'"(\w+)"', listed.group(1)) == NAMES, path


def test_aliases_and_unknown_names() -> None:
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="unknown metric 'cosine'"):
        M.pairwise({"a": x, "b": x + 1}, ["cosine"])
    assert set(SPECS) == set(NAMES)
