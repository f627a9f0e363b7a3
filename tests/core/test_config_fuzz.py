"""Malformed study configs stop at the config check: within seconds, before any job, in one
line that names the key, never as a traceback (`matteralign check-config` and Snakemake)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from matteralign.cli import main
from matteralign.config import (
    device_problems,
    driver_has_cuda,
    load_config,
    load_schema,
    resolve_device,
)

ROOT = Path(__file__).resolve().parents[2]

Change = Callable[[dict[str, Any], Path], None]


def base_config(tmp: Path) -> dict[str, Any]:
    """A tiny valid study: two baselines on QM9, one structure model and a baseline on CoRE
    MOF."""
    return {
        "results": str(tmp / "results"),
        "seed": 0,
        "datasets": {"qm9": {"n": 30}, "coremof": {"n": 20, "options": {"max_atoms": 60}}},
        "models": {"morgan-fp": {}, "composition": {}, "chgnet-0.3.0": {}},
        "metrics": {"names": ["cknna", "cka"], "k": 5},
    }


def setter(*path: str, value: Any) -> Change:
    def change(config: dict[str, Any], tmp: Path) -> None:
        node = config
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value(tmp) if callable(value) else value
    return change


def remove(*path: str) -> Change:
    def change(config: dict[str, Any], tmp: Path) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


def folder(tmp: Path, files: tuple[str, ...] = ()) -> str:
    path = tmp / "checkpoint"
    path.mkdir(exist_ok=True)
    for name in files:
        (path / name).write_text("{}")
    return str(path)


def existing_file(tmp: Path) -> str:
    path = tmp / "results.txt"
    path.write_text("not a folder")
    return str(path)


def only_morgan(config: dict[str, Any], tmp: Path) -> None:
    config["datasets"] = {"qm9": {"n": 30}}
    config["models"] = {"morgan-fp": {}}


def add_mace(config: dict[str, Any], tmp: Path) -> None:
    config["models"]["mace-mp-0-medium"] = {"options": {"allow_pickle": "yes"}}


def has_analysis_schema() -> bool:
    schema = load_schema()
    return "reference" in schema["properties"].get("analysis", {}).get("properties", {})


# (case id, change to the valid base config, key the message must name)
CASES: list[tuple[str, Change, str]] = [
    ("unknown top-level key", setter("colour", value="blue"), "colour"),
    ("unknown key in a model entry", setter("models", "composition", value={"weight": None}),
     "models.composition"),
    ("unknown key in metrics", setter("metrics", "neighbours", value=5), "metrics"),
    ("n is a string", setter("datasets", "qm9", "n", value="many"), "datasets.qm9.n"),
    ("n below the minimum", setter("datasets", "qm9", "n", value=2), "datasets.qm9.n"),
    ("n missing", remove("datasets", "qm9", "n"), "datasets.qm9"),
    ("k is a string", setter("metrics", "k", value="5"), "metrics.k"),
    ("k is zero", setter("metrics", "k", value=0), "metrics.k"),
    ("k >= n", setter("metrics", "k", value=30), "metrics.k"),
    ("k + 2 > n", setter("metrics", "k", value=19), "metrics.k"),
    ("unknown model", setter("models", "morgan-fq", value={}), "models.morgan-fq"),
    ("unknown dataset", setter("datasets", "qm10", value={"n": 30}), "datasets.qm10"),
    ("model restricted to an unconfigured dataset",
     setter("models", "composition", value={"datasets": ["qm10"]}), "models.composition.datasets"),
    ("unknown metric", setter("metrics", "names", value=["cknna", "cosine"]), "metrics.names"),
    ("unknown preprocessing", setter("metrics", "preprocessing", value="l3"),
     "metrics.preprocessing"),
    ("unknown device", setter("device", value="tpu"), "device"),
    ("unknown envs mode", setter("envs", "mode", value="docker"), "envs.mode"),
    ("bad seed (negative)", setter("seed", value=-1), "seed"),
    ("bad seed (string)", setter("seed", value="zero"), "seed"),
    ("bad seed (float)", setter("seed", value=1.5), "seed"),
    ("empty models", setter("models", value={}), "models"),
    ("empty datasets", setter("datasets", value={}), "datasets"),
    ("a dataset with fewer than two models", only_morgan, "datasets.qm9"),
    ("weights missing", setter("models", "chgnet-0.3.0", value={"weights": "/nope/ckpt.pth"}),
     "models.chgnet-0.3.0.weights"),
    ("weights a folder for a model that reads a file",
     setter("models", "chgnet-0.3.0", "weights", value=lambda t: folder(t, ("a.pth",))),
     "models.chgnet-0.3.0.weights"),
    ("weights an empty folder for a folder model",
     setter("models", "minilm-l6-v2", "weights", value=folder), "models.minilm-l6-v2.weights"),
    ("weights a number", setter("models", "chgnet-0.3.0", value={"weights": 3}),
     "models.chgnet-0.3.0.weights"),
    ("sha256 not a hash", setter("models", "chgnet-0.3.0", value={"sha256": "abc"}),
     "models.chgnet-0.3.0.sha256"),
    ("batch_size zero", setter("models", "composition", value={"batch_size": 0}),
     "models.composition.batch_size"),
    ("model max_atoms -3",
     setter("models", "chgnet-0.3.0", value={"options": {"max_atoms": -3}}),
     "models.chgnet-0.3.0.options.max_atoms"),
    ("model max_atoms a string",
     setter("models", "chgnet-0.3.0", value={"options": {"max_atoms": "many"}}),
     "models.chgnet-0.3.0.options.max_atoms"),
    ("model option of the wrong type (bool)", add_mace,
     "models.mace-mp-0-medium.options.allow_pickle"),
    ("unknown model option",
     setter("models", "morgan-fp", value={"options": {"radius": 3}}), "models.morgan-fp.options"),
    ("coremof max_atoms -3", setter("datasets", "coremof", "options", "max_atoms", value=-3),
     "datasets.coremof.options.max_atoms"),
    ("coremof unknown subset", setter("datasets", "coremof", "options", "subset", value="2020"),
     "datasets.coremof.options"),
    ("unknown dataset option", setter("datasets", "qm9", "options", value={"path": "/x"}),
     "datasets.qm9.options"),
    ("n larger than the dataset", setter("datasets", "qm9", "n", value=10**7), "datasets.qm9.n"),
    ("n larger than what the dataset's filter leaves",
     setter("datasets", "coremof", value={"n": 500, "options": {"max_atoms": 8}}),
     "datasets.coremof.n"),
    ("results an existing file", setter("results", value=existing_file), "results"),
]
if has_analysis_schema():
    CASES.append(("analysis.reference not a configured model",
                  setter("analysis", "reference", value="uma-s-1p1"), "analysis.reference"))
    CASES.append(("analysis.map_properties an unknown property",
                  setter("analysis", "map_properties", value={"qm9": ["gapp"]}),
                  "analysis.map_properties.qm9"))
if not driver_has_cuda():
    CASES.append(("device cuda without a GPU", setter("device", value="cuda"), "device"))

IDS = [case[0] for case in CASES]


@pytest.fixture(scope="module", autouse=True)
def coremof_counts() -> None:
    """Count CoRE MOF's cells once (cached on disk), so the timed checks only read the cache."""
    from matteralign.datasets.coremof import CoreMOF

    try:
        CoreMOF(max_atoms=8).filtered_size()
    except Exception as err:  # no core-mof wheel here
        pytest.skip(f"CoRE MOF data not available: {err}")


def write(tmp: Path, change: Change | None) -> Path:
    config = copy.deepcopy(base_config(tmp))
    if change is not None:
        change(config, tmp)
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_base_config_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The table's cases fail because of their one change, not because the base is broken."""
    assert main(["check-config", str(write(tmp_path, None))]) == 0, capsys.readouterr().err
    assert "qm9 (n=30): morgan-fp, composition" in capsys.readouterr().out


@pytest.mark.parametrize(("change", "key"), [(c, k) for _, c, k in CASES], ids=IDS)
def test_check_config_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    change: Change, key: str) -> None:
    path = write(tmp_path, change)
    started = time.time()
    code = main(["check-config", str(path)])  # an uncaught exception fails the test
    elapsed = time.time() - started
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("matteralign check-config: error: "), err
    # the key path itself, or (a key the schema does not know) the unexpected key quoted
    assert f"config key {key}" in lines[0] or f"'{key}'" in lines[0], lines[0]
    assert "Traceback" not in err
    assert elapsed < 10, f"check took {elapsed:.1f} s"
    assert not (tmp_path / "results").exists()


# the same failures through the console script and through Snakemake: a subprocess each
SUBPROCESS_CASES = ["n is a string", "k >= n", "model max_atoms -3", "coremof max_atoms -3",
                    "weights a folder for a model that reads a file",
                    "n larger than what the dataset's filter leaves", "unknown top-level key",
                    "results an existing file"]
if not driver_has_cuda():
    SUBPROCESS_CASES.append("device cuda without a GPU")
BY_ID = {case_id: (change, key) for case_id, change, key in CASES}


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_console_script_names_the_key(tmp_path: Path, case_id: str) -> None:
    change, key = BY_ID[case_id]
    proc = subprocess.run([sys.executable, "-m", "matteralign", "check-config",
                           str(write(tmp_path, change))], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert key in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def snakemake_startup() -> float:
    started = time.time()
    subprocess.run([sys.executable, "-m", "snakemake", "--version"], capture_output=True,
                   timeout=60, check=True)
    return time.time() - started


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_snakemake_stops_before_any_job(tmp_path: Path, case_id: str) -> None:
    """A real run (not only a dry run) stops while reading the config: no job, no output."""
    change, key = BY_ID[case_id]
    config = write(tmp_path, change)
    startup = snakemake_startup()
    started = time.time()
    # targets first: --configfile takes several values
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1",
                           "--configfile", str(config)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    elapsed = time.time() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert key in out, out[-2000:]
    assert "Traceback" not in out, out[-3000:]
    assert not re.search(r"^(local)?rule \w+:", out, re.M), out[-2000:]  # no job started
    assert not (tmp_path / "results").exists()
    assert elapsed - startup < 30, f"took {elapsed:.1f} s ({startup:.1f} s start-up)"


@pytest.mark.parametrize("case_id", ["k >= n", "model max_atoms -3", "unknown top-level key"])
def test_snakemake_dry_run_refuses_config_errors(tmp_path: Path, case_id: str) -> None:
    change, key = BY_ID[case_id]
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1",
                           "--configfile", str(write(tmp_path, change))], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and key in out and "Traceback" not in out, out[-2000:]


def test_device_auto_is_resolved(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, setter("device", value="auto")))
    assert resolve_device(config) == ("cuda" if driver_has_cuda() else "cpu")
    assert resolve_device({**config, "device": "cpu"}) == "cpu"


def test_cuda_with_a_cpu_only_family_env_is_refused(tmp_path: Path) -> None:
    """A local env's own torch decides too: its marker's package list says "+cpu"."""
    prefix = tmp_path / "envs"
    for family, torch in (("chgnet", "torch==2.13.0+cpu"), ("baseline", None)):
        (prefix / family).mkdir(parents=True)
        packages = ["numpy==1.26.4"] + ([torch] if torch else [])
        (prefix / family / "matteralign-env.json").write_text(json.dumps(
            {"packages": packages}))
    config = load_config(write(tmp_path, None))
    config = {**config, "device": "cuda", "envs": {"mode": "local", "prefix": str(prefix)}}
    problems = device_problems(config, local_jobs=False)
    assert len(problems) == 1
    assert "config key device" in problems[0] and "chgnet" in problems[0] and "+cpu" in problems[0]
    assert device_problems(config, local_jobs=False, local_envs=False) == []
    # auto never picks a GPU that an env cannot use
    assert resolve_device({**config, "device": "auto"}) == "cpu"


def test_cluster_check_does_not_need_a_gpu_here(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    def cuda_without_local_envs(config: dict[str, Any], tmp: Path) -> None:
        config["device"] = "cuda"
        config["envs"] = {"mode": "local", "prefix": str(tmp / "no-envs-built")}

    path = write(tmp_path, cuda_without_local_envs)
    assert main(["check-config", "--cluster", str(path)]) == 0, capsys.readouterr().err


def test_folder_weights_with_files_are_accepted(tmp_path: Path) -> None:
    change = setter("models", "minilm-l6-v2", "weights",
                    value=lambda t: folder(t, ("config.json",)))
    load_config(write(tmp_path, change))


def test_case_count() -> None:
    """The table covers what the config check promises (reported with the audit)."""
    assert len(CASES) >= 38
