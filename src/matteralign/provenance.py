"""What every output file records about where it came from."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from matteralign import __version__

#: packages recorded in every file, besides each model's own key packages
CORE_PACKAGES = ("numpy", "h5py", "torch")
#: the checkout's folders of code and settings: an untracked file there makes it dirty
CODE_DIRS = ("src", "workflow", "config")


def package_versions(names: Iterable[str]) -> dict[str, str]:
    versions = {}
    for name in dict.fromkeys([*CORE_PACKAGES, *names]):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(root: str | os.PathLike[str] | None = None) -> str:
    """The commit of the code that ran, with "+dirty" when tracked files have changes or a
    folder of code (:data:`CODE_DIRS`) holds files git does not track and does not ignore:
    a new adapter starts out as such a file and is code that ran, not in the commit.

    ``root``: the checkout to ask (default: the one this module's file is tracked in, which is
    the code that runs, also inside the workflow's jobs); "unknown" outside a git checkout, and
    for an installed copy of the package (a wheel in a virtualenv inside some checkout is not
    that checkout's code).
    """
    here = Path(__file__).resolve()
    try:
        if root is None:
            root = here.parent
            subprocess.run(["git", "-C", str(root), "ls-files", "--error-unmatch", here.name],
                           capture_output=True, timeout=10, check=True)
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True)
        # ":/dir": from the top of the checkout, wherever root is inside it
        new = subprocess.run(["git", "-C", str(root), "ls-files", "--others",
                              "--exclude-standard", "--", *(f":/{d}" for d in CODE_DIRS)],
                             capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    changed = dirty.stdout.strip() or new.stdout.strip()
    return commit.stdout.strip() + ("+dirty" if changed else "")


def provenance(packages: Iterable[str] = ()) -> dict[str, str]:
    versions = package_versions(packages)
    return {
        "python": sys.executable,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "packages": " ".join(f"{k}=={v}" for k, v in versions.items()),
        **{f"version_{k}": v for k, v in versions.items()},
        "matteralign_version": __version__,
        "git_commit": git_commit(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
