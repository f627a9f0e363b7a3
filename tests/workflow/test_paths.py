"""A study whose paths have spaces runs green and writes nothing outside its results; its
files record this checkout's commit; touching an env file reruns nothing.

Baseline models only (the `baseline` family env), QM9 at n=30: about a minute.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import pytest
import yaml

from matteralign.config import load_schema
from matteralign.provenance import git_commit
from tests.conftest import ROOT, family_python
from tests.workflow.test_workflow import planned_jobs, snakemake

pytestmark = pytest.mark.slow

MODELS = ["morgan-fp", "composition"]
METRICS = ["cknna", "cka"]


def analysis_off() -> dict[str, object]:
    """Stop at the alignment matrices where the config has an analysis section."""
    schema = load_schema()
    enabled = schema["properties"].get("analysis", {}).get("properties", {}).get("enabled")
    return {"analysis": {"enabled": False}} if enabled else {}


@pytest.fixture(scope="module")
def spaced_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, str]:
    family_python("baseline")
    work = tmp_path_factory.mktemp("paths")
    results = work / "my results"
    config = {
        "results": str(results),
        "seed": 1,
        "datasets": {"qm9": {"n": 30}},
        "models": {m: {} for m in MODELS},
        "metrics": {"names": METRICS, "k": 5},
        **analysis_off(),
    }
    path = work / "study config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    commit = git_commit(ROOT)  # what the jobs must record (with "+dirty" if the tree is)
    proc = snakemake(path, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    return work, results, path, commit


def test_spaces_in_paths_run_green_without_stray_files(spaced_study) -> None:
    work, results, _, _ = spaced_study
    for model in MODELS:
        with h5py.File(results / "qm9" / "embeddings" / f"{model}.h5") as handle:
            assert handle["valid"][()].sum() > 0
        log = results / "logs" / "embed" / "qm9" / f"{model}.log"
        assert "structures embedded" in log.read_text()
    for metric in METRICS:
        assert (results / "qm9" / f"{metric}.h5").exists()
        assert (results / "qm9" / "figures" / f"{metric}.png").read_bytes()[:4] == b"\x89PNG"
    assert (results / "summary.tsv").exists()
    # an unquoted `> {log}` would have written `.../my` and passed `results/...` on as an argument
    assert sorted(os.listdir(work)) == ["my results", "study config.yaml"]
    assert not (ROOT / "my").exists() and not (ROOT / "results" / "qm9" / "logs").exists()


def test_jobs_record_this_checkouts_commit(spaced_study) -> None:
    """git_commit comes from the code that ran, "+dirty" included (not a shell's HEAD)."""
    _, results, _, commit = spaced_study
    assert commit != "unknown"
    for model in MODELS:
        with h5py.File(results / "qm9" / "embeddings" / f"{model}.h5") as handle:
            assert handle.attrs["git_commit"] == commit
    with h5py.File(results / "qm9" / "cknna.h5") as handle:
        assert handle.attrs["git_commit"] == commit


def test_touched_env_file_reruns_nothing(spaced_study) -> None:
    """A newer env file that did not change is not a new environment (ancient input; the
    content hash is the rule's params)."""
    _, _, config, _ = spaced_study
    assert planned_jobs(config) == {}
    env_file = ROOT / "workflow" / "envs" / "baseline.yaml"
    before = env_file.stat()
    try:
        os.utime(env_file)  # touch
        assert planned_jobs(config) == {}
    finally:
        os.utime(env_file, ns=(before.st_atime_ns, before.st_mtime_ns))
