"""Local, conda-free build of a model family's environment from its conda env file.

On a cluster the workflow's ``conda:`` directives build ``workflow/envs/{family}.yaml`` with
``--sdm conda``. Where conda channels are unreachable, :func:`build_env` makes an equivalent
isolated virtual environment from the same file: the interpreter of the file's ``python=``
pin (checked against the one at hand) and exactly the file's ``pip:`` requirements, then the
file's post-deploy script when there is one (``{name}.post-deploy.sh`` beside it: Snakemake
runs the same script after creating a conda env). Post-deploy scripts carry what an env
file cannot express, e.g. ``pip install --no-deps`` of a wheel whose own pins are ancient.
A marker file written last records the env file's hash, so a half-built environment is
rebuilt from scratch and an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

MARKER = "matteralign-env.json"


class EnvFileError(ValueError):
    pass


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
    post_deploy = post_deploy_script(path)
    digest = hashlib.sha256(text.encode())
    if post_deploy is not None:
        # a changed post-deploy script makes the environment stale, like a changed pin
        digest.update(post_deploy.read_bytes())
    return EnvSpec(path, str(data.get("name", path.stem)), python, pip, conda,
                   digest.hexdigest(), post_deploy)


def post_deploy_script(env_file: str | Path) -> Path | None:
    """``workflow/envs/{family}.post-deploy.sh`` (Snakemake's naming), if present."""
    env_file = Path(env_file)
    script = env_file.with_name(env_file.name.rsplit(".", 1)[0] + ".post-deploy.sh")
    return script if script.exists() else None


def env_python(prefix: str | Path) -> Path:
    return Path(prefix) / "bin" / "python"


def is_current(spec: EnvSpec, prefix: str | Path) -> bool:
    marker = Path(prefix) / MARKER
    if not marker.exists() or not env_python(prefix).exists():
        return False
    try:
        return json.loads(marker.read_text()).get("env_sha256") == spec.sha256
    except json.JSONDecodeError:
        return False


def build_env(env_file: str | Path, prefix: str | Path, log=print) -> Path:
    """Build (or reuse) the environment of ``env_file`` at ``prefix``; return its marker."""
    spec = read_env_file(env_file)
    prefix = Path(prefix).absolute()
    marker = prefix / MARKER
    if is_current(spec, prefix):
        log(f"environment {prefix} is up to date with {spec.path}")
        return marker
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if spec.python and not here.startswith(spec.python.split(".*")[0]):
        log(f"warning: {spec.path} pins python={spec.python}; building with {here}")
    if prefix.exists():
        log(f"removing stale or incomplete environment {prefix}")
        shutil.rmtree(prefix)
    started = time.time()
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(prefix)], check=True)
    py = str(env_python(prefix))
    subprocess.run([py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as reqs:
        reqs.write("\n".join(spec.pip) + "\n")
    log(f"installing {len(spec.pip)} requirements of {spec.path} into {prefix}")
    try:
        subprocess.run([py, "-m", "pip", "install", "--quiet", "-r", reqs.name], check=True)
    finally:
        Path(reqs.name).unlink(missing_ok=True)
    if spec.post_deploy is not None:
        log(f"running {spec.post_deploy}")
        # the same variables a conda activation gives the script under --sdm conda
        env = {**os.environ, "CONDA_PREFIX": str(prefix),
               "PATH": f"{prefix / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.pop("PYTHONHOME", None)
        subprocess.run(["bash", "-euo", "pipefail", str(spec.post_deploy)], check=True,
                       env=env)
    freeze = subprocess.run([py, "-m", "pip", "freeze"], check=True, capture_output=True,
                            text=True).stdout.split()
    record = {
        "env_file": str(spec.path),
        "env_sha256": spec.sha256,
        "python": subprocess.run([py, "-c", "import sys; print(sys.version.split()[0])"],
                                 check=True, capture_output=True, text=True).stdout.strip(),
        "packages": freeze,
        "build_seconds": round(time.time() - started, 1),
    }
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(marker)
    log(f"built {prefix} in {record['build_seconds']} s")
    return marker
