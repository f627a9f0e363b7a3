"""The local, conda-free environment builder reads the conda env files the clusters use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from matteralign.envs import EnvFileError, build_env, env_python, is_current, read_env_file

ROOT = Path(__file__).resolve().parents[2]
FAMILY_FILES = sorted((ROOT / "workflow" / "envs").glob("*.yaml"))


@pytest.mark.parametrize("path", FAMILY_FILES, ids=lambda p: p.stem)
def test_every_env_file_is_pinned_and_buildable_locally(path):
    spec = read_env_file(path)
    assert spec.python and spec.python.startswith("3.")
    if "torch" in " ".join(spec.pip):
        assert "torch==2.13.0" in spec.pip, "torch must be pinned to the local CPU wheel"
    for core in ("numpy", "h5py", "tqdm", "pyyaml", "ase"):
        assert any(req.lower().startswith(core) for req in spec.pip), f"{path.name}: {core}"


def test_family_pins_differ():
    pins = {p.stem: set(read_env_file(p).pip) for p in FAMILY_FILES if p.stem != "study"}
    assert len(pins) >= 2
    assert len({frozenset(v) for v in pins.values()}) == len(pins)


def test_conda_only_dependencies_are_refused(tmp_path):
    env = tmp_path / "bad.yaml"
    env.write_text(yaml.safe_dump({"dependencies": ["python=3.11", "cudatoolkit=11.8"]}))
    with pytest.raises(EnvFileError, match="cudatoolkit"):
        read_env_file(env)


def test_build_reuse_and_rebuild(tmp_path):
    env = tmp_path / "tiny.yaml"
    env.write_text(yaml.safe_dump({
        "name": "tiny", "dependencies": ["python=3.11", "pip", {"pip": ["six==1.16.0"]}]}))
    prefix = tmp_path / "env"
    marker = build_env(env, prefix, log=lambda *_: None)
    record = json.loads(marker.read_text())
    assert "six==1.16.0" in record["packages"]
    assert env_python(prefix).exists() and is_current(read_env_file(env), prefix)
    mtime = marker.stat().st_mtime
    build_env(env, prefix, log=lambda *_: None)  # unchanged file: reused
    assert marker.stat().st_mtime == mtime
    env.write_text(env.read_text().replace("1.16.0", "1.17.0"))
    assert not is_current(read_env_file(env), prefix)


def test_post_deploy_script_runs_in_the_env_and_is_part_of_its_hash(tmp_path):
    env = tmp_path / "tiny.yaml"
    env.write_text(yaml.safe_dump({
        "name": "tiny", "dependencies": ["python=3.11", "pip", {"pip": ["six==1.16.0"]}]}))
    script = tmp_path / "tiny.post-deploy.sh"
    # what the real scripts do: a --no-deps install with the environment's own pip
    script.write_text('python -m pip install --quiet --no-deps "idna==3.10"\n'
                      'echo "$CONDA_PREFIX" > "$CONDA_PREFIX/deployed-by-script"\n')
    before = read_env_file(env).sha256
    assert read_env_file(env).post_deploy == script
    prefix = tmp_path / "env"
    marker = build_env(env, prefix, log=lambda *_: None)
    assert "idna==3.10" in json.loads(marker.read_text())["packages"]
    assert (prefix / "deployed-by-script").read_text().strip() == str(prefix.absolute())
    script.write_text(script.read_text() + "# changed\n")
    assert read_env_file(env).sha256 != before
    assert not is_current(read_env_file(env), prefix)
