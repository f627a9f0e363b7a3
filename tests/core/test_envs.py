"""The local, conda-free environment builder reads the conda env files the clusters use."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from matteralign.envs import (
    EnvFileError,
    build_env,
    env_python,
    family_env_files,
    is_current,
    read_env_file,
)

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
    """Stands in for ``subprocess.run`` in matteralign.envs: ``uv venv`` makes bin/python and
    pyvenv.cfg, ``uv pip install -r`` fails when told to, ``uv pip freeze`` lists the pins."""

    def __init__(self) -> None:
        self.fail_install = False
        self.calls: list[list[str]] = []

    def __call__(self, cmd, check=True, capture_output=False, text=False, env=None):
        import subprocess

        cmd = [str(c) for c in cmd]
        self.calls.append(cmd)
        stdout = ""
        if cmd[1:2] == ["venv"]:
            prefix = Path(cmd[-1])
            (prefix / "bin").mkdir(parents=True, exist_ok=True)
            (prefix / "bin" / "python").write_text("#!fake\n")
            (prefix / "pyvenv.cfg").write_text(f"home = {prefix}\n")
        elif "-r" in cmd:
            if self.fail_install:
                raise subprocess.CalledProcessError(1, cmd)
            python = Path(cmd[cmd.index("--python") + 1])
            (python.parents[1] / "installed.txt").write_text(Path(cmd[-1]).read_text())
        elif "freeze" in cmd:
            stdout = "six==1.16.0\n"
        elif "--version" in cmd:
            stdout = "uv 0.0.0\n"
        elif "-c" in cmd:
            stdout = "3.11.0\n"
        return subprocess.CompletedProcess(cmd, 0, stdout=stdout, stderr="")

    def builds(self) -> int:
        """How many venv creations and installs ran (checks that read the lock do not count)."""
        return sum(1 for cmd in self.calls if "venv" in cmd[1:2] or "install" in cmd)


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
    calls = fake_pip.builds()
    later = env_file.stat().st_mtime + 3600
    os.utime(env_file, (later, later))  # touched, content unchanged
    build_env(env_file, prefix, log=_quiet)
    assert fake_pip.builds() == calls  # nothing installed, nothing rebuilt
    assert (prefix / "site-file").read_text() == "installed"


def test_a_marker_removed_as_rule_output_costs_no_rebuild(fake_pip, env_file, tmp_path):
    """Snakemake deletes a rule's output before rerunning it: the hidden copy of the marker
    still proves the environment is ours and current."""
    prefix = tmp_path / "env"
    marker = build_env(env_file, prefix, log=_quiet)
    record = marker.read_text()
    marker.unlink()
    calls = fake_pip.builds()
    assert build_env(env_file, prefix, log=_quiet) == marker
    assert fake_pip.builds() == calls and marker.read_text() == record


def test_a_stale_env_is_replaced_only_once_the_new_one_is_built(fake_pip, env_file, tmp_path):
    from matteralign.envs import MARKER, EnvBuildError

    prefix = tmp_path / "env"
    build_env(env_file, prefix, log=_quiet)
    (prefix / "old-only").write_text("from the old build")
    env_file.write_text(env_file.read_text().replace("1.16.0", "1.17.0"))
    fake_pip.fail_install = True
    with pytest.raises(EnvBuildError, match="installing the pip section failed"):
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


# -- the build lock beside the prefix ------------------------------------------------------


def test_a_users_file_named_like_the_lock_is_refused_untouched(fake_pip, env_file, tmp_path):
    """`.{name}.lock` was opened for writing: a user's file of that name was emptied."""
    lock = tmp_path / ".env.lock"
    lock.write_text("my notes, not a lock\n")
    with pytest.raises(OSError) as refused:
        build_env(env_file, tmp_path / "env", log=_quiet)
    message = str(refused.value)
    assert str(lock) in message and "not a matteralign lock file" in message
    assert "move or rename it" in message and "\n" not in message
    assert lock.read_text() == "my notes, not a lock\n"
    assert not (tmp_path / "env").exists() and fake_pip.calls == []


def test_the_lock_is_held_during_the_build_only(fake_pip, env_file, tmp_path, monkeypatch):
    import matteralign.envs as envs
    from matteralign.locks import read_lock

    seen = []
    build = envs._build_or_reuse
    monkeypatch.setattr(envs, "_build_or_reuse", lambda *a: seen.append(
        read_lock(tmp_path / ".env.lock")) or build(*a))
    build_env(env_file, tmp_path / "env", log=_quiet)
    (held,) = seen
    assert held["pid"] == os.getpid() and held["prefix"] == str(tmp_path / "env")
    assert not (tmp_path / ".env.lock").exists()


def test_a_stale_lock_of_a_dead_build_is_taken_over_with_a_note(fake_pip, env_file, tmp_path):
    from matteralign.locks import new_record

    lock = tmp_path / ".env.lock"
    lock.write_text(json.dumps({**new_record({"purpose": "building"}), "pid": 2**30}))
    notes: list[str] = []
    build_env(env_file, tmp_path / "env", log=notes.append)
    assert any("stale lock" in n and str(2**30) in n for n in notes), notes
    assert is_current(read_env_file(env_file), tmp_path / "env") and not lock.exists()


def test_the_empty_lock_of_an_earlier_version_is_replaced(fake_pip, env_file, tmp_path):
    lock = tmp_path / ".env.lock"
    lock.write_text("")
    os.utime(lock, (1, 1))
    notes: list[str] = []
    build_env(env_file, tmp_path / "env", log=notes.append)
    assert any("empty lock file" in n for n in notes) and not lock.exists()


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
    calls = fake_pip.builds()
    build_env(env_file, prefix, log=_quiet)
    assert fake_pip.builds() == calls and is_current(read_env_file(env_file), prefix)
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


# -- uv: pip's sources, one cache, the lock --------------------------------------------------

PIP_LISTING = """\
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca.crt'
global.constraint='/etc/pip/constraints.txt'
global.extra-index-url='file:///mirror/a file:///mirror/b'
global.find-links='/elsewhere'
global.timeout='60'
"""


def test_pip_sources_become_the_uv_configuration(tmp_path):
    import tomllib

    from matteralign.installer import UvSettings, parse_pip_config

    pip = parse_pip_config(PIP_LISTING)
    assert pip == {"find-links": "/opt/wheels", "cert": "/etc/ssl/certs/ca.crt",
                   "constraint": "/etc/pip/constraints.txt",
                   "extra-index-url": "file:///mirror/a file:///mirror/b"}  # env wins
    settings = UvSettings(Path("/bin/uv"), tmp_path / "cache", "hardlink", pip)
    config = tomllib.loads(settings.config_toml())
    assert config == {"cache-dir": str(tmp_path / "cache"), "link-mode": "hardlink",
                      "index-strategy": "unsafe-best-match", "find-links": ["/opt/wheels"],
                      "extra-index-url": ["file:///mirror/a", "file:///mirror/b"]}
    env = settings.environ(tmp_path / "uv.toml")
    assert env["UV_CONSTRAINT"] == "/etc/pip/constraints.txt"
    assert env["SSL_CERT_FILE"] == "/etc/ssl/certs/ca.crt"
    assert env["UV_CONFIG_FILE"] == str(tmp_path / "uv.toml")


def test_the_cache_is_hard_linked_on_one_filesystem_and_copied_across(tmp_path):
    import os

    from matteralign.installer import link_mode

    notices: list[str] = []
    assert link_mode(tmp_path / "cache", tmp_path / "env", notices.append) == "hardlink"
    assert notices == []
    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem to put a cache on")
    assert link_mode(other / "uv-cache", tmp_path / "env", notices.append) == "copy"
    assert len(notices) == 1 and "different filesystems" in notices[0]


def test_a_package_installed_after_the_build_makes_the_env_stale(tmp_path):
    import subprocess

    from matteralign.installer import uv_binary

    env = tmp_path / "tiny.yaml"
    env.write_text(yaml.safe_dump({
        "name": "tiny", "dependencies": ["python=3.11", "pip", {"pip": ["six==1.16.0"]}]}))
    prefix = tmp_path / "env"
    record = json.loads(build_env(env, prefix, log=_quiet).read_text())
    assert record["installer"].startswith("uv ") and "six==1.16.0" in record["packages"]
    assert is_current(read_env_file(env), prefix)
    subprocess.run([str(uv_binary()), "pip", "install", "--quiet", "--python",
                    str(env_python(prefix)), "--no-deps", "idna==3.10"], check=True)
    assert not is_current(read_env_file(env), prefix)  # the lock no longer agrees
    build_env(env, prefix, log=_quiet)
    assert is_current(read_env_file(env), prefix)
    assert "idna==3.10" not in json.loads((prefix / "matteralign-env.json").read_text())[
        "packages"]


def test_build_all_builds_every_family_and_reports_the_first_failure(tmp_path):
    from matteralign.envs import EnvBuildError, build_all

    envs = tmp_path / "envs"
    envs.mkdir()
    for name, pin in (("one", "six==1.16.0"), ("two", "six==1.17.0"), ("study", "idna")):
        (envs / f"{name}.yaml").write_text(yaml.safe_dump({
            "name": name, "dependencies": ["python=3.11", "pip", {"pip": [pin]}]}))
    (envs / "two.post-deploy.sh").write_text("exit 3\n")
    with pytest.raises(EnvBuildError, match="two.post-deploy.sh failed"):
        build_all(envs, tmp_path / "root", jobs=2, log=_quiet)
    assert is_current(read_env_file(envs / "one.yaml"), tmp_path / "root" / "one")
    assert not (tmp_path / "root" / "two").exists()
    assert not (tmp_path / "root" / "study").exists()  # the driver's env file is not a family


INSTALLER_FILES = {"INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json"}


def _torch_files(prefix: Path) -> frozenset[str]:
    """``path,sha256`` of every file the torch wheel put into site-packages (from RECORD;
    installers differ only in what they add: bytecode, console scripts, their own records)."""
    records = sorted(prefix.glob("lib/python*/site-packages/torch-*.dist-info/RECORD"))
    if not records:
        return frozenset()
    rows = (line.rsplit(",", 1)[0] for line in records[0].read_text().splitlines())
    return frozenset(row for row in rows if "sha256=" in row and not row.startswith("..")
                     and row.split(",")[0].rsplit("/", 1)[-1] not in INSTALLER_FILES)


@pytest.mark.parametrize("path", family_env_files(ROOT / "workflow" / "envs"),
                         ids=lambda p: p.stem)
def test_every_built_family_has_the_driver_torch_build(path):
    """The same torch wheel (every file and its hash) in each family as in .venv, so no
    family took a CUDA build from an index pip would not have used."""
    prefix = ROOT / ".envs" / path.stem
    if "torch==2.13.0" not in read_env_file(path).pip:
        pytest.skip(f"{path.stem} has no torch")
    if not (prefix / "matteralign-env.json").exists():
        pytest.skip(f".envs/{path.stem} is not built")
    driver = _torch_files(ROOT / ".venv")
    assert len(driver) > 1000, ".venv has no torch"
    assert _torch_files(prefix) == driver


def test_the_driver_environment_pins_the_uv_release_the_builder_names():
    from matteralign.installer import UV_VERSION, uv_binary, uv_version

    assert f'"uv=={UV_VERSION}"' in (ROOT / "pyproject.toml").read_text()
    assert uv_version(uv_binary()) == UV_VERSION


def test_env_build_needs_one_env_file_or_all(capsys):
    from matteralign.cli import main

    with pytest.raises(SystemExit, match="one ENV_FILE"):
        main(["env", "build"])
    with pytest.raises(SystemExit, match="--prefix is required"):
        main(["env", "build", "workflow/envs/chgnet.yaml"])
