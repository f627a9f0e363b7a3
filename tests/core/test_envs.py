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


# -- what the builder may delete (pip faked: these are about the folders, not the installs) --


class FakeInstaller:
    """Stands in for ``subprocess.run`` in matteralign.envs: ``venv`` makes bin/python and
    pyvenv.cfg, ``pip install -r`` fails when told to, ``pip freeze`` lists the pins."""

    def __init__(self) -> None:
        self.fail_install = False
        self.calls: list[list[str]] = []

    def __call__(self, cmd, check=True, capture_output=False, text=False, env=None):
        import subprocess

        cmd = [str(c) for c in cmd]
        self.calls.append(cmd)
        stdout = ""
        if cmd[1:3] == ["-m", "venv"]:
            prefix = Path(cmd[3])
            (prefix / "bin").mkdir(parents=True, exist_ok=True)
            (prefix / "bin" / "python").write_text("#!fake\n")
            (prefix / "pyvenv.cfg").write_text(f"home = {prefix}\n")
        elif "-r" in cmd:
            if self.fail_install:
                raise subprocess.CalledProcessError(1, cmd)
            (Path(cmd[0]).parents[1] / "installed.txt").write_text(Path(cmd[-1]).read_text())
        elif "freeze" in cmd:
            stdout = "six==1.16.0\n"
        elif "-c" in cmd:
            stdout = "3.11.0\n"
        return subprocess.CompletedProcess(cmd, 0, stdout=stdout, stderr="")


@pytest.fixture
def fake_pip(monkeypatch):
    import matteralign.envs as envs

    installer = FakeInstaller()
    monkeypatch.setattr(envs.subprocess, "run", installer)
    return installer


@pytest.fixture
def env_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny", "dependencies": ["python=3.11", "pip", {"pip": ["six==1.16.0"]}]}))
    return path


def _quiet(*_):
    pass


def test_a_folder_with_the_users_files_is_refused_untouched(fake_pip, env_file, tmp_path):
    from matteralign.envs import EnvPrefixError

    prefix = tmp_path / "mine"
    (prefix / "thesis").mkdir(parents=True)
    (prefix / "thesis" / "chapter1.tex").write_text("years of work")
    (prefix / "notes.txt").write_text("keep")
    with pytest.raises(EnvPrefixError) as refused:
        build_env(env_file, prefix, log=_quiet)
    message = str(refused.value)
    assert str(prefix) in message and "choose another prefix" in message
    assert "\n" not in message
    assert (prefix / "thesis" / "chapter1.tex").read_text() == "years of work"
    assert sorted(p.name for p in prefix.iterdir()) == ["notes.txt", "thesis"]
    assert fake_pip.calls == []
    file_prefix = tmp_path / "a-file"
    file_prefix.write_text("not a folder")
    with pytest.raises(EnvPrefixError):
        build_env(env_file, file_prefix, log=_quiet)
    assert file_prefix.read_text() == "not a folder"


def test_a_user_venv_without_marker_is_refused(fake_pip, env_file, tmp_path):
    from matteralign.envs import EnvPrefixError

    prefix = tmp_path / "venv"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").write_text("theirs")
    (prefix / "pyvenv.cfg").write_text("home = /usr\n")
    with pytest.raises(EnvPrefixError, match="not a matteralign environment"):
        build_env(env_file, prefix, log=_quiet)
    assert (prefix / "bin" / "python").read_text() == "theirs"


def test_an_empty_folder_is_built_into(fake_pip, env_file, tmp_path):
    prefix = tmp_path / "empty"
    prefix.mkdir()
    marker = build_env(env_file, prefix, log=_quiet)
    assert marker.exists() and is_current(read_env_file(env_file), prefix)
    assert not (prefix / ".matteralign-building").exists()


def test_a_touched_env_file_is_reused(fake_pip, env_file, tmp_path):
    import os

    prefix = tmp_path / "env"
    build_env(env_file, prefix, log=_quiet)
    (prefix / "site-file").write_text("installed")
    calls = len(fake_pip.calls)
    later = env_file.stat().st_mtime + 3600
    os.utime(env_file, (later, later))  # touched, content unchanged
    build_env(env_file, prefix, log=_quiet)
    assert len(fake_pip.calls) == calls  # nothing run, nothing rebuilt
    assert (prefix / "site-file").read_text() == "installed"


def test_a_marker_removed_as_rule_output_costs_no_rebuild(fake_pip, env_file, tmp_path):
    """Snakemake deletes a rule's output before rerunning it: the hidden copy of the marker
    still proves the environment is ours and current."""
    prefix = tmp_path / "env"
    marker = build_env(env_file, prefix, log=_quiet)
    record = marker.read_text()
    marker.unlink()
    calls = len(fake_pip.calls)
    assert build_env(env_file, prefix, log=_quiet) == marker
    assert len(fake_pip.calls) == calls and marker.read_text() == record


def test_a_stale_env_is_replaced_only_once_the_new_one_is_built(fake_pip, env_file, tmp_path):
    from matteralign.envs import MARKER

    prefix = tmp_path / "env"
    build_env(env_file, prefix, log=_quiet)
    (prefix / "old-only").write_text("from the old build")
    env_file.write_text(env_file.read_text().replace("1.16.0", "1.17.0"))
    fake_pip.fail_install = True
    with pytest.raises(Exception, match="returned non-zero"):
        build_env(env_file, prefix, log=_quiet)
    # the failed build left the old environment exactly as it was, and nothing else
    assert (prefix / "old-only").read_text() == "from the old build"
    assert "1.16.0" in (prefix / "installed.txt").read_text()
    assert json.loads((prefix / MARKER).read_text())["env_sha256"] != read_env_file(
        env_file).sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env", "tiny.yaml"]
    fake_pip.fail_install = False
    build_env(env_file, prefix, log=_quiet)
    assert is_current(read_env_file(env_file), prefix)
    assert "1.17.0" in (prefix / "installed.txt").read_text()
    assert not (prefix / "old-only").exists()  # the old env (ours) is gone, and only it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env", "tiny.yaml"]


def test_a_half_built_env_of_ours_is_removed_and_rebuilt(fake_pip, env_file, tmp_path):
    prefix = tmp_path / "env"
    (prefix / "lib").mkdir(parents=True)
    (prefix / ".matteralign-building").write_text("pid 1\n")
    (prefix / "lib" / "partial").write_text("half")
    build_env(env_file, prefix, log=_quiet)
    assert is_current(read_env_file(env_file), prefix)
    assert not (prefix / "lib" / "partial").exists()


def test_an_env_moved_aside_by_a_killed_build_is_recovered(fake_pip, env_file, tmp_path):
    """kill -9 between moving the old env aside and finishing the new one: a rerun with the
    same env file puts the old (up-to-date) one back instead of building again; a stale one
    moved aside is deleted once a new one is there."""
    prefix = tmp_path / "env"
    build_env(env_file, prefix, log=_quiet)
    aside = tmp_path / "env.old-dead"
    prefix.rename(aside)
    (prefix / "bin").mkdir(parents=True)
    (prefix / ".matteralign-building").write_text("pid 1\n")
    calls = len(fake_pip.calls)
    build_env(env_file, prefix, log=_quiet)
    assert len(fake_pip.calls) == calls and is_current(read_env_file(env_file), prefix)
    assert not aside.exists()
    prefix.rename(aside)
    env_file.write_text(env_file.read_text().replace("1.16.0", "1.17.0"))
    build_env(env_file, prefix, log=_quiet)
    assert is_current(read_env_file(env_file), prefix) and not aside.exists()


def test_env_file_sha256_is_the_spec_hash_and_ignores_mtime(env_file, tmp_path):
    import os

    from matteralign.envs import env_file_sha256

    before = env_file_sha256(env_file)
    assert before == read_env_file(env_file).sha256
    os.utime(env_file, (1, 1))
    assert env_file_sha256(env_file) == before
    (tmp_path / "tiny.post-deploy.sh").write_text("true\n")
    assert env_file_sha256(env_file) != before
