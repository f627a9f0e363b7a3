"""Configuration errors are caught before any job, with the key and the fix named."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from matteralign.config import ConfigError, load_config, study_grid, validate_schema

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_default_config_is_valid_and_grid_skips_incompatible_pairs():
    config = load_config(ROOT / "config" / "config.yaml")
    grid = study_grid(config)
    assert set(grid) == {"qm9", "coremof", "pdb-packaged"}
    assert "morgan-fp" in grid["qm9"] and "morgan-fp" not in grid["coremof"]
    assert {"chgnet-0.3.0", "sevennet-0", "minilm-l6-v2"} <= set(grid["coremof"])
    # `datasets:` narrows a model to some datasets
    assert "sevennet-0" not in grid["pdb-packaged"] and "composition" in grid["pdb-packaged"]


def test_schema_fills_defaults():
    config = validate_schema({"datasets": {"qm9": {"n": 10}}, "models": {"morgan-fp": None}})
    assert config["metrics"]["k"] == 25 and config["metrics"]["preprocessing"] == "l2"
    assert config["envs"]["mode"] == "local" and config["seed"] == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c["models"].update({"chgnet-0.3.O": {}}), "chgnet-0.3.O"),
        (lambda c: c["datasets"].update({"qm10": {"n": 5}}), "qm10"),
        (lambda c: c["datasets"]["qm9"].update({"n": "many"}), "datasets.qm9.n"),
        (lambda c: c["datasets"]["qm9"].update({"n": 10**9}), "larger than the dataset"),
        (lambda c: c["models"].update({"sevennet-0": {"weights": "/nope/ckpt.pth"}}),
         "does not exist"),
        (lambda c: c["metrics"].update({"names": ["cknna", "cosine"]}), "metrics.names"),
    ],
)
def test_bad_config_is_named(tmp_path, change, message):
    config = yaml.safe_load(yaml.safe_dump(DEFAULT, sort_keys=False))
    change(config)
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, config))


def test_misspelt_model_fails_fast_in_snakemake(tmp_path):
    """The workflow refuses a misspelt model in under 10 s, naming it, and deletes nothing."""
    config = yaml.safe_load(yaml.safe_dump(DEFAULT, sort_keys=False))
    config["models"]["sevenet-0"] = {}
    config["results"] = str(tmp_path / "results")
    marker = tmp_path / "results" / "keep.txt"
    marker.parent.mkdir()
    marker.write_text("computed earlier")
    path = write(tmp_path, config)
    # Snakemake's own start-up is not ours to speed up: on a machine with SLURM's client but no
    # running controller, the SLURM plugin waits ~9 s for `scontrol` while being imported.
    started = time.time()
    subprocess.run([sys.executable, "-m", "snakemake", "--version"], capture_output=True,
                   timeout=60, check=True)
    startup = time.time() - started
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    elapsed = time.time() - started
    assert proc.returncode != 0
    assert "sevenet-0" in proc.stdout + proc.stderr
    assert "sevennet-0" in proc.stdout + proc.stderr  # the suggestion
    assert elapsed - startup < 10, f"took {elapsed:.1f} s ({startup:.1f} s Snakemake start-up)"
    assert marker.read_text() == "computed earlier"


def test_paper_study_dry_run_shows_the_grid_and_what_is_missing():
    """The full study dry-runs anywhere (say, a login node without the data); a real run
    would stop before any job, naming the missing checkpoints and data."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "1",
         "--configfile", str(ROOT / "config" / "paper.yaml")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "a dry run goes on, a real run would stop here" in out
    assert "mace-mp-0-medium.weights" in out and "datasets.omat24" in out
    counts = dict(re.findall(r"^(embed|align|prepare_dataset)\s+(\d+)\s*$", out, re.M))
    assert int(counts["prepare_dataset"]) == 5 and int(counts["align"]) == 5
    assert int(counts["embed"]) > 40
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(ROOT / "config" / "paper.yaml")


def test_check_config_works_from_an_installed_wheel(tmp_path):
    """The schema is package data: a wheel installed outside the checkout validates a config."""
    import shutil

    source = tmp_path / "source"
    shutil.copytree(ROOT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "--no-build-isolation", "-q", "-w", str(tmp_path / "dist")],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("matteralign-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(site), str(wheel)], check=True, capture_output=True, timeout=300)
    study = {"datasets": {"qm9": {"n": 30}}, "models": {"morgan-fp": {}, "composition": {}},
             "metrics": {"names": ["cknna", "cka"], "k": 5}}
    good, bad = write(tmp_path, study), tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("cka", "cosine"))
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    code = "import matteralign, sys; print(matteralign.__file__); " \
           "sys.exit(__import__('matteralign.cli').cli.main(sys.argv[1:]))"
    run = [sys.executable, "-c", code, "check-config"]
    ok = subprocess.run([*run, str(good)], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.startswith(str(site)) and "qm9 (n=30): morgan-fp, composition" in ok.stdout
    refused = subprocess.run([*run, str(bad)], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "config key metrics.names" in refused.stderr
    assert str(site / "matteralign" / "config.schema.yaml") in refused.stderr
