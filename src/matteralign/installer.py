"""uv as the environment installer, configured from pip's own settings.

uv reads neither ``pip.conf`` nor ``PIP_*`` variables. Where pip finds the CPU build of torch
through a configured ``find-links`` or an extra index, a uv left to its defaults would take
the multi-GB CUDA build from PyPI instead. :func:`pip_settings` therefore reads pip's
effective configuration (``pip config list``: files and environment, the environment
winning) and :func:`uv_settings` turns it into a uv configuration file with the same sources.
uv is told to take the best version across all sources, as pip does (``unsafe-best-match``),
so both resolve the same pins to the same packages.

One cache serves every family; uv hard-links installed files from it, so identical files
(torch above all) are stored once. Hard links need the cache and the environments on one
filesystem: elsewhere the files are copied, with a one-line notice.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from matteralign.errors import MatterAlignError

#: the uv release the driver environment installs (pyproject.toml, extra "study")
UV_VERSION = "0.13.9"

#: how long a build waits for a cache entry another build holds (uv's default is 300 s)
LOCK_TIMEOUT_S = 7200

#: pip settings that choose where packages come from, and how uv spells each
_LIST_SETTINGS = {"find-links": "find-links", "extra-index-url": "extra-index-url",
                  "trusted-host": "allow-insecure-host"}
_SOURCE_SETTINGS = ("index-url", "no-index", "constraint", "cert", *_LIST_SETTINGS)
#: later sections override earlier ones, as in pip's own option parsing
_SECTION_ORDER = ("global", "install", ":env:")


class UvMissing(MatterAlignError, RuntimeError):
    """uv is not installed where the builder looks for it."""


@functools.cache
def uv_binary() -> Path:
    """The uv executable: the one the ``uv`` wheel installed into this Python, else PATH.

    Cached: the wheel's finder reads ``sysconfig``, whose first use is not thread-safe, and
    :func:`matteralign.envs.build_all` builds from several threads."""
    try:
        from uv import find_uv_bin

        return Path(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return Path(found)
    raise UvMissing(f"uv is not installed: `pip install uv=={UV_VERSION}` into this Python "
                    "(`make setup` does), or put uv on PATH")


def uv_version(uv: Path) -> str:
    return subprocess.run([str(uv), "--version"], check=True, capture_output=True,
                          text=True).stdout.split()[1]


def parse_pip_config(listing: str) -> dict[str, str]:
    """pip's effective source settings from the output of ``pip config list``.

    Lines read ``section.key='value'``; of one key set in several sections the later of
    ``global``, ``install``, ``:env:`` wins (environment variables override files)."""
    found: dict[str, tuple[int, str]] = {}
    for line in listing.splitlines():
        name, sep, value = line.partition("=")
        section, _, key = name.rpartition(".")
        if not sep or key not in _SOURCE_SETTINGS or section not in _SECTION_ORDER:
            continue
        rank = _SECTION_ORDER.index(section)
        if key not in found or rank >= found[key][0]:
            found[key] = (rank, value.strip().strip("'\""))
    return {key: value for key, (_, value) in found.items()}


def pip_settings(python: str | Path) -> dict[str, str]:
    """The source settings pip of ``python`` would use (``{}`` where pip is absent)."""
    run = subprocess.run([str(python), "-m", "pip", "config", "list"], capture_output=True,
                         text=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    return parse_pip_config(run.stdout) if run.returncode == 0 else {}


@dataclass(frozen=True)
class UvSettings:
    """What every uv call of one build shares: the binary, its cache and its sources."""

    uv: Path
    cache: Path
    link_mode: str
    pip: Mapping[str, str] = field(default_factory=dict)

    @property
    def compiled_wheels(self) -> Path:
        """Where post-deploy scripts keep the wheels they compile (uv caches no build made
        without build isolation): beside the cache, shared like it."""
        return self.cache.with_name(f"{self.cache.name}-compiled-wheels")

    def config_toml(self) -> str:
        """A uv.toml with pip's sources (TOML strings written as JSON strings)."""
        lines = [f"cache-dir = {json.dumps(str(self.cache))}",
                 f"link-mode = {json.dumps(self.link_mode)}",
                 'index-strategy = "unsafe-best-match"']
        if "index-url" in self.pip:
            lines.append(f"index-url = {json.dumps(self.pip['index-url'])}")
        if self.pip.get("no-index", "").lower() in ("1", "true", "yes", "on"):
            lines.append("no-index = true")
        for pip_key, uv_key in _LIST_SETTINGS.items():
            values = self.pip.get(pip_key, "").split()
            if values:
                lines.append(f"{uv_key} = {json.dumps(values)}")
        return "\n".join(lines) + "\n"

    def environ(self, config_file: Path) -> dict[str, str]:
        """Variables for uv and the post-deploy scripts: the config file, constraints, the
        certificate bundle pip trusts, no interpreter downloads, a long cache-lock wait, and
        the folder of compiled wheels."""
        env = {"UV_CONFIG_FILE": str(config_file), "UV_PYTHON_DOWNLOADS": "never",
               "UV_NO_PROGRESS": "1",
               # a build waiting for a wheel another one compiles (minutes on 2 cores)
               "UV_LOCK_TIMEOUT": str(LOCK_TIMEOUT_S)}
        env["MATTERALIGN_WHEELS"] = str(self.compiled_wheels)
        if self.pip.get("constraint"):
            env["UV_CONSTRAINT"] = self.pip["constraint"]
        if self.pip.get("cert"):
            env["SSL_CERT_FILE"] = self.pip["cert"]
        return env


def default_cache() -> Path:
    """``UV_CACHE_DIR`` when set, else uv's own default cache (shared with plain uv use)."""
    if os.environ.get("UV_CACHE_DIR"):
        return Path(os.environ["UV_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv"


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def link_mode(cache: Path, prefix: Path, log: Callable[[str], None]) -> str:
    """``hardlink`` when cache and environment share a filesystem, else ``copy`` (noticed)."""
    if _existing_parent(cache).stat().st_dev == _existing_parent(prefix).stat().st_dev:
        return "hardlink"
    log(f"notice: the uv cache {cache} and {prefix} are on different filesystems: files are "
        "copied, not hard-linked (set UV_CACHE_DIR or --cache to a folder beside the envs)")
    return "copy"


def uv_settings(prefix: Path, cache: str | Path | None, python: str | Path,
                log: Callable[[str], None]) -> UvSettings:
    cache = Path(cache or default_cache()).absolute()
    return UvSettings(uv_binary(), cache, link_mode(cache, prefix, log), pip_settings(python))
