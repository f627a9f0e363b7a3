"""Local, conda-free build of a model family's environment from its conda env file.

On a cluster the workflow's ``conda:`` directives build ``workflow/envs/{family}.yaml`` with
``--sdm conda``. Where conda channels are unreachable, :func:`build_env` makes an equivalent
isolated virtual environment from the same file: the interpreter of the file's ``python=``
pin (checked against the one at hand) and exactly the file's ``pip:`` requirements, then the
file's post-deploy script when there is one (``{name}.post-deploy.sh`` beside it: Snakemake
runs the same script after creating a conda env). Post-deploy scripts carry what an env
file cannot express, e.g. a ``--no-deps`` install of a wheel whose own pins are ancient.

The installer is uv (:mod:`matteralign.installer`): every family resolves with pip's own index
settings and installs from one shared cache by hard links, so a second environment with
torch costs seconds and megabytes, not minutes and gigabytes.

An environment is judged by content, never by file times: the marker file written last
records the hash of the env file and its post-deploy script (:func:`env_file_sha256`) and the
lock of what was installed; an environment whose marker holds the current hash, and whose
installed packages still match that lock, is reused however often the file was touched.

The builder deletes only what it made. A folder is one of its environments when it holds the
marker (or its hidden copy, which survives Snakemake removing the marker as a rule output) or
the ``.matteralign-building`` sentinel of a build in progress; any other non-empty folder is
refused. A stale environment is replaced without a window in which none exists: a venv
hard-codes its prefix, so the old one is renamed aside to ``{prefix}.old-XXXX``, the new one
is built at the prefix, and the old one is deleted only once the new one is complete (on a
failure the partial new one is deleted and the old one renamed back). One build of a prefix
runs at a time: it holds the lock file ``.{name}.lock`` beside it (:mod:`matteralign.locks`).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from matteralign.errors import MatterAlignError
from matteralign.installer import uv_binary, uv_settings, uv_version
from matteralign.locks import locked

MARKER = "matteralign-env.json"
#: a copy of the marker that no workflow rule names as an output: proof of ownership after
#: Snakemake deleted the marker before rerunning a build
MARKER_COPY = ".matteralign-env.json"
#: installs source-only packages compiled against an env's torch, each compile kept
COMPILED_INSTALL = Path(__file__).with_name("compiled-install.sh")
#: written first into a folder being built, removed after the marker: a half-built env
BUILDING = ".matteralign-building"


class EnvFileError(MatterAlignError, ValueError):
    """An env file the local builder cannot build (the message says why)."""


class EnvBuildError(MatterAlignError, RuntimeError):
    """A step of an environment build failed (the message names the step and the file)."""


class EnvPrefixError(MatterAlignError, ValueError):
    """The prefix holds something that is not one of the builder's environments."""


@dataclass
class EnvSpec:
    path: Path
    name: str
    python: str | None
    pip: list[str]
    conda: list[str]
    sha256: str
    post_deploy: Path | None = None


def read_env_file(path: str | Path) -> EnvSpec:
    path = Path(path)
    text = path.read_text()
    data = yaml.safe_load(text) or {}
    pip: list[str] = []
    conda: list[str] = []
    python = None
    for dep in data.get("dependencies", []):
        if isinstance(dep, dict) and "pip" in dep:
            pip.extend(str(x) for x in dep["pip"])
        elif isinstance(dep, str):
            if dep.split("=")[0].strip() == "python":
                python = dep.split("=", 1)[1].lstrip("=").strip() if "=" in dep else None
            elif dep.strip() != "pip":
                conda.append(dep)
    if conda:
        raise EnvFileError(
            f"{path}: conda-only dependencies {conda} cannot be built without conda; "
            "list them under `pip:` (the local builder installs only the pip section)"
        )
    if not pip:
        raise EnvFileError(f"{path}: no `pip:` section to install")
    return EnvSpec(path, str(data.get("name", path.stem)), python, pip, conda,
                   env_file_sha256(path), post_deploy_script(path))


def env_file_sha256(env_file: str | Path) -> str:
    """The content hash an environment is judged by: the env file's text and, when there is
    one, its post-deploy script (a changed script makes the environment stale, like a
    changed pin). File times play no part."""
    env_file = Path(env_file)
    digest = hashlib.sha256(env_file.read_text().encode())
    post_deploy = post_deploy_script(env_file)
    if post_deploy is not None:
        digest.update(post_deploy.read_bytes())
    return digest.hexdigest()


def post_deploy_script(env_file: str | Path) -> Path | None:
    """``workflow/envs/{family}.post-deploy.sh`` (Snakemake's naming), if present."""
    env_file = Path(env_file)
    script = env_file.with_name(env_file.name.rsplit(".", 1)[0] + ".post-deploy.sh")
    return script if script.exists() else None


def env_python(prefix: str | Path) -> Path:
    return Path(prefix) / "bin" / "python"


def _marker_record(prefix: Path) -> dict | None:
    """The build record of the environment at ``prefix`` (marker, else its hidden copy)."""
    for name in (MARKER, MARKER_COPY):
        try:
            record = json.loads((prefix / name).read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(record, dict):
            return record
    return None


def is_current(spec: EnvSpec, prefix: str | Path) -> bool:
    """The environment at ``prefix`` is complete, was built from ``spec``'s content, and
    holds exactly the packages its lock lists (nothing installed or removed since)."""
    prefix = Path(prefix)
    if (prefix / BUILDING).exists() or not env_python(prefix).exists():
        return False
    record = _marker_record(prefix)
    if record is None or record.get("env_sha256") != spec.sha256:
        return False
    try:
        return installed_lock(prefix) == record.get("packages")
    except (OSError, subprocess.CalledProcessError):
        return False


def is_ours(prefix: str | Path) -> bool:
    """``prefix`` is an environment this builder made (complete, stale or half built)."""
    prefix = Path(prefix)
    return prefix.is_dir() and any((prefix / name).exists()
                                   for name in (MARKER, MARKER_COPY, BUILDING))


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _leftovers(prefix: Path) -> list[Path]:
    """Environments of ours moved aside by a build that was killed before it finished."""
    return [p for p in sorted(prefix.parent.glob(f"{prefix.name}.old-*")) if is_ours(p)]


def _aside(prefix: Path) -> Path:
    """A new, unused name ``{prefix}.old-XXXX`` next to ``prefix``."""
    while True:
        candidate = prefix.with_name(f"{prefix.name}.old-{secrets.token_hex(4)}")
        if not candidate.exists():
            return candidate


def _recover(spec: EnvSpec, prefix: Path, log) -> None:
    """Finish what a killed build left beside ``prefix``: an up-to-date environment it had
    moved aside goes back when the prefix holds nothing or only the half-built new one;
    other moved-aside environments (ours, stale) are deleted."""
    if not prefix.parent.is_dir():
        return
    for old in _leftovers(prefix):
        vacant = not prefix.exists() or _is_empty_dir(prefix) or (prefix / BUILDING).exists()
        if vacant and is_current(spec, old):
            if (prefix / BUILDING).exists():
                shutil.rmtree(prefix)
            old.replace(prefix)  # onto an empty folder or none
            log(f"restored environment {prefix} from {old.name} (left by an interrupted build)")
        else:
            log(f"removing stale environment {old} (moved aside by an interrupted build)")
            shutil.rmtree(old)


def build_env(env_file: str | Path, prefix: str | Path, log=print,
              cache: str | Path | None = None) -> Path:
    """Build (or reuse) the environment of ``env_file`` at ``prefix``; return its marker.

    ``prefix`` must be absent, empty, or an environment of this builder: anything else is
    refused with :class:`EnvPrefixError` and left untouched. ``cache`` is uv's cache
    (default: ``UV_CACHE_DIR``, else uv's own)."""
    spec = read_env_file(env_file)
    prefix = Path(prefix).absolute()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    # one build of a prefix at a time (make, Snakemake and a test session may all ask): a
    # second build waits, then finds the environment current
    with locked(build_lock(prefix), {"purpose": f"building {prefix}", "prefix": str(prefix)},
                wait=None, note=log):
        return _build_or_reuse(spec, prefix, log, cache)


def build_lock(prefix: str | Path) -> Path:
    """``.{name}.lock`` beside the environment: held while one builds it (:mod:`locks`: a
    user's file of that name is refused, never emptied; a dead build's lock is taken over)."""
    prefix = Path(prefix)
    return prefix.with_name(f".{prefix.name}.lock")


def _build_or_reuse(spec: EnvSpec, prefix: Path, log, cache: str | Path | None) -> Path:
    marker = prefix / MARKER
    if prefix.exists() and not _is_empty_dir(prefix) and not is_ours(prefix):
        raise EnvPrefixError(
            f"{prefix} is not empty and is not a matteralign environment (no {MARKER}); "
            "the builder deletes only what it made: choose another prefix (--prefix, or "
            "envs.prefix in the config) or empty that folder yourself")
    _recover(spec, prefix, log)
    if is_current(spec, prefix):
        record = _marker_record(prefix) or {}
        for name in (MARKER, MARKER_COPY):  # the marker may have gone as a rule output
            if not (prefix / name).exists():
                _write_json(prefix / name, record)
        log(f"environment {prefix} is up to date with {spec.path}")
        return marker
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if spec.python and not here.startswith(spec.python.split(".*")[0]):
        log(f"warning: {spec.path} pins python={spec.python}; building with {here}")
    previous: Path | None = None
    if (prefix / BUILDING).exists():
        log(f"removing half-built environment {prefix}")
        shutil.rmtree(prefix)
    elif is_ours(prefix):
        previous = _aside(prefix)
        prefix.rename(previous)
        log(f"moved stale environment {prefix} aside to {previous.name} until the new one "
            "is built")
    existed = prefix.exists()  # an empty folder: left as it was if the build fails
    try:
        _build(spec, prefix, log, cache)
    except BaseException:
        if prefix.exists():
            shutil.rmtree(prefix)
        if existed:
            prefix.mkdir()
        if previous is not None:
            previous.rename(prefix)
            log(f"build failed: the previous environment {prefix} is back in place")
        raise
    if previous is not None:
        shutil.rmtree(previous)
    return marker


def _write_json(path: Path, record: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(path)


def _build(spec: EnvSpec, prefix: Path, log, cache: str | Path | None = None) -> None:
    """Create the venv at ``prefix`` (absent or empty), install, write the marker last."""
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / BUILDING).write_text(f"pid {os.getpid()}\n")
    started = time.time()
    uv = uv_settings(prefix, cache, sys.executable, log)
    py = str(env_python(prefix))
    with tempfile.TemporaryDirectory(prefix="matteralign-uv-") as tmp:
        config = Path(tmp) / "uv.toml"
        config.write_text(uv.config_toml())
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text("\n".join(spec.pip) + "\n")
        # uv on PATH for the post-deploy script, which then installs from the same cache,
        # and compiled-install for what must be compiled against the env's torch
        (Path(tmp) / "bin").mkdir()
        (Path(tmp) / "bin" / "uv").symlink_to(uv.uv)
        launcher = Path(tmp) / "bin" / "compiled-install"  # (package data loses its x bit)
        launcher.write_text(f'#!/bin/sh\nexec bash "{COMPILED_INSTALL}" "$@"\n')
        launcher.chmod(0o755)
        env = {**os.environ, **uv.environ(config), "VIRTUAL_ENV": str(prefix),
               "CONDA_PREFIX": str(prefix),
               "PATH": os.pathsep.join([str(prefix / "bin"), str(Path(tmp) / "bin"),
                                        os.environ.get("PATH", "")])}
        env.pop("PYTHONHOME", None)
        base_python = getattr(sys, "_base_executable", sys.executable)
        # seeded with pip, setuptools and wheel: what a conda env's post-deploy script and
        # a --no-build-isolation compile find there too
        run = _runner(spec, env)
        run("creating the venv", [str(uv.uv), "venv", "--quiet", "--seed", "--allow-existing",
                                  "--python", base_python, str(prefix)])
        log(f"installing {len(spec.pip)} requirements of {spec.path} into {prefix} "
            f"(uv cache {uv.cache}, {uv.link_mode})")
        run("installing the pip section",
            [str(uv.uv), "pip", "install", "--quiet", "--python", py, "-r", str(reqs)])
        if spec.post_deploy is not None:
            log(f"running {spec.post_deploy}")
            run(f"its post-deploy script {spec.post_deploy.name}",
                ["bash", "-euo", "pipefail", str(spec.post_deploy)])
        lock = installed_lock(prefix)
    record = {
        "env_file": str(spec.path),
        "env_sha256": spec.sha256,
        "python": subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"],
                                 check=True, capture_output=True, text=True).stdout.strip(),
        "installer": f"uv {uv_version(uv.uv)}",
        "uv_cache": str(uv.cache),
        "link_mode": uv.link_mode,
        "packages": lock,
        "build_seconds": round(time.time() - started, 1),
    }
    _write_json(prefix / MARKER_COPY, record)
    _write_json(prefix / MARKER, record)
    (prefix / BUILDING).unlink()
    log(f"built {prefix} in {record['build_seconds']} s")


def _runner(spec: EnvSpec, env: dict[str, str]):
    """``run(what, cmd)``: one build step, a failure raised as :class:`EnvBuildError`."""

    def run(what: str, cmd: list[str]) -> None:
        try:
            subprocess.run(cmd, check=True, env=env)
        except subprocess.CalledProcessError as err:
            raise EnvBuildError(
                f"{spec.path}: {what} failed (exit {err.returncode}; its output is above): "
                "fix the pins or the script, then build again") from None

    return run


def installed_lock(prefix: str | Path) -> list[str]:
    """What is installed in the environment at ``prefix``, one ``name==version`` a line
    (``uv pip freeze``, seeded tools included): the lock the marker records."""
    out = subprocess.run([str(uv_binary()), "pip", "freeze", "--quiet", "--python",
                          str(env_python(prefix))], check=True, capture_output=True,
                         text=True, env={**os.environ, "UV_NO_CONFIG": "1"}).stdout
    return sorted(out.split())


def family_env_files(envs_dir: str | Path) -> list[Path]:
    """Every model family's env file in ``envs_dir`` (``study.yaml``, the driver's, excluded)."""
    return sorted(p for p in Path(envs_dir).glob("*.yaml") if p.stem != "study")


def build_all(envs_dir: str | Path, root: str | Path, jobs: int = 1, log=print,
              cache: str | Path | None = None, only: Sequence[str] = ()) -> list[Path]:
    """Build every family of ``envs_dir`` (or those named in ``only``) under
    ``root/{family}``, ``jobs`` at a time.

    The families that compile from source (slowest) start first; all share one uv cache,
    whose own locks let a second build wait for, then reuse, a wheel another is building.
    Every family is attempted; the first failure is raised once all have finished."""
    files = [f for f in family_env_files(envs_dir) if not only or f.stem in only]
    files.sort(key=lambda f: post_deploy_script(f) is None)  # compiles first, stable order

    def one(env_file: Path) -> Path:
        name = env_file.stem
        return build_env(env_file, Path(root) / name, log=lambda m: log(f"[{name}] {m}"),
                         cache=cache)

    from concurrent.futures import ThreadPoolExecutor

    uv_binary()  # found once, before the threads start
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, f) for f in files]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]
    return [f.result() for f in futures]
