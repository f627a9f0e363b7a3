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


def dry_run(config: str) -> str:
    """The output of a successful Snakemake dry run of ``config/{config}`` (job counts)."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--cores", "1",
         "--configfile", str(ROOT / "config" / config)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    return out


def test_paper_study_dry_run_shows_the_grid_and_what_is_missing():
    """The full study dry-runs anywhere (say, a login node without the data); a real run
    would stop before any job, naming the missing checkpoints and data."""
    out = dry_run("paper.yaml")
    assert "a dry run goes on, a real run would stop here" in out
    assert "mace-mp-0-medium.weights" in out and "datasets.omat24" in out
    counts = dict(re.findall(r"^(embed|align|prepare_dataset)\s+(\d+)\s*$", out, re.M))
    assert int(counts["prepare_dataset"]) == 5 and int(counts["align"]) == 5
    assert int(counts["embed"]) > 40
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(ROOT / "config" / "paper.yaml")


def test_gpu_ladder_dry_runs_with_every_rung():
    """config/ladder-gpu.yaml plans its 31 rungs (21, and 10 twins without nitrogen; trained,
    then embedded like any model) here, where it cannot run: it asks for a GPU."""
    out = dry_run("ladder-gpu.yaml")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", out, re.M))
    assert int(counts["train_model"]) == 9 + 3 * 4 + 2 * 5
    assert int(counts["embed"]) == 9 + 31 and int(counts["ladder_sets"]) == 1
    assert int(counts["held_out"]) == 1
    assert "device: cuda" in out or "GPU" in out  # a real run here would stop, saying why


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


def snakemake_dry_run(config: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    return f"rc={proc.returncode}\n{proc.stdout}{proc.stderr}"


STUDY = ("datasets:\n  qm9: {n: 30}\nmodels:\n  morgan-fp: {}\n  composition: {}\n"
         "metrics:\n  names: [cknna]\n  k: 5\n")


def test_snakemake_rereads_each_configfile_strictly(tmp_path):
    """Snakemake's own loader keeps the second of two equal keys; the workflow reads the file
    again and stops, naming the key and both lines."""
    path = tmp_path / "study.yaml"
    path.write_text(f"results: {tmp_path / 'results'}\n{STUDY}  k: 7\n")
    out = snakemake_dry_run(path)
    assert not out.startswith("rc=0"), out[-2000:]
    assert f"config file {path}: config key metrics.k appears twice (lines 9 and 10)" in out
    assert "Traceback" not in out and not (tmp_path / "results").exists()


def test_dry_run_shows_where_the_folders_point(tmp_path):
    """A relative results folder is taken from the working directory, and said so first."""
    path = tmp_path / "study.yaml"
    path.write_text(f"results: rel/study-{tmp_path.name}\n{STUDY}")
    out = snakemake_dry_run(path)
    assert out.startswith("rc=0"), out[-2000:]
    told = (f"results: {ROOT / 'rel' / f'study-{tmp_path.name}'} (from results: "
            f"rel/study-{tmp_path.name}, relative to the working directory {ROOT})")
    assert told in out and out.index(told) < out.index("Building DAG"), out[:2000]
    assert f"envs.prefix: {ROOT / '.envs'} (from envs.prefix: .envs" in out


@pytest.mark.parametrize(("text", "told"), [
    ("metrics:\n  k: 5\nseed: 1\nmetrics:\n  bootstrap: 0\n",
     "config key metrics appears twice (lines 1 and 4)"),
    ("datasets:\n  qm9:\n    n: 30\n    options: {}\n    n: 40\n",
     "config key datasets.qm9.n appears twice (lines 3 and 5)"),
    (b"seed: 0\n# r\xe9sum\xe9\n", "line 2, column 4: byte 0xe9 is not UTF-8 text"),
])
def test_read_config_names_file_key_and_line(tmp_path, text, told):
    from matteralign.config import read_config

    path = tmp_path / "c.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as caught:
        read_config(path)
    assert str(caught.value).startswith(f"config file {path}") and told in str(caught.value)


def test_schema_integer_refuses_integral_floats():
    """JSON Schema's draft counts 60.0 as an integer; the study config does not."""
    for key, value in (("n", 60.0), ("n", True)):
        with pytest.raises(ConfigError, match="datasets.qm9.n"):
            validate_schema({"datasets": {"qm9": {key: value}}, "models": {"morgan-fp": None}})
    assert validate_schema({"datasets": {"qm9": {"n": 60}}, "models": {"morgan-fp": None}})


def test_long_list_is_refused_quickly(tmp_path):
    """A million-item list took check-config 98 s to parse and validate; it is refused by the
    file's size before parsing, and a list past 1,000 items right after."""
    path = tmp_path / "c.yaml"
    names = ", ".join(["cknna"] * 1_000_000)
    path.write_text(f"{STUDY}  bootstrap: 0\nplots: {{}}\nanalysis: {{}}\nx: [{names}]\n")
    started = time.time()
    with pytest.raises(ConfigError, match="bytes; a study config is a few kB"):
        load_config(path)
    path.write_text(STUDY.replace("[cknna]", "[" + ", ".join(["cknna"] * 5000) + "]"))
    with pytest.raises(ConfigError, match="config key metrics.names has 5,000 items"):
        load_config(path)
    assert time.time() - started < 1


def test_prepare_command_checks_the_subsample(tmp_path, capsys):
    """`matteralign prepare --check` (what the workflow's prepare rule passes) refuses a
    subsample the metrics cannot use, before writing the structures file."""
    import json

    from matteralign.cli import main

    out = tmp_path / "qm9" / "structures.h5"
    checks = {"qm9": {"k": 5, "models": {"chgnet-0.3.0": {"max_atoms": 12}, "morgan-fp": {}},
                      "atom_models": [], "max_atoms_total": None}}
    code = main(["prepare", "qm9", "--n", "30", "--check", json.dumps(checks), "--out",
                 str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "config key metrics.k: k=5 neighbours need 7 structures" in err, err
    assert "chgnet-0.3.0" in err and not out.exists()
