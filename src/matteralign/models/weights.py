"""Which weights an adapter runs with, decided once.

:func:`resolve_weights` turns the configured ``weights`` (None, a path, or ``"random-init"``)
into a frozen :class:`Weights`: shipped inside the family env's wheel, fetched into the cache
by ``matteralign weights fetch``, a local checkpoint, random init (the real architecture with
fresh, seeded parameters) or none (a non-neural baseline). Every "is this random init?"
question reads its ``kind``.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from matteralign.errors import MatterAlignError

RANDOM_INIT = "random-init"

WeightsKind = Literal["shipped", "cached", "local", "random", "none"]


@dataclass(frozen=True)
class Weights:
    """Resolved weights: where they come from (``kind``), the file or folder (``path``;
    None for random init, no weights, or shipped weights missing here) and the ``label``
    recorded in every output."""

    kind: WeightsKind
    path: Path | None
    label: str

    @property
    def is_random_init(self) -> bool:
        return self.kind == "random"


def resolve_weights(cls: Any, weights: str | None) -> Weights:
    """The weights adapter class ``cls`` runs with for the configured ``weights``: random
    init when asked, a given path, the wheel's file, the cached download, and otherwise random
    init for a model whose ``weights_name`` is ``random-init`` (none obtainable offline)."""
    if weights == RANDOM_INIT:
        return Weights("random", None, RANDOM_INIT)
    if weights:
        return Weights("local", Path(weights), str(weights))
    if cls.weights_in_package:
        return Weights("shipped", find_in_site_packages(cls.weights_in_package),
                       cls.weights_name)
    cached = cached_weights(cls.name)
    if cached is not None:
        return Weights("cached", cached, str(cached))
    if cls.weights_name == RANDOM_INIT:
        return Weights("random", None, RANDOM_INIT)
    return Weights("none", None, cls.weights_name)


def weights_status(cls: Any, site_packages: Sequence[Path] = (),
                   configured: str | None = None) -> str:
    """Where model class ``cls``'s weights would come from here: ``local: PATH`` (a configured
    checkpoint), ``shipped`` (inside the family env's wheel), ``cached: PATH`` (under
    ``cache_dir()/weights``), ``random-init`` (none obtainable offline), ``none needed``
    (baselines) or ``missing ...``."""
    if configured == RANDOM_INIT and not cls.requires_checkpoint:
        return RANDOM_INIT
    if configured and configured != RANDOM_INIT:
        return f"local: {configured}" if Path(configured).exists() else \
            f"missing: {configured}"
    if cls.weights_in_package:
        if find_in_site_packages(cls.weights_in_package, site_packages) is not None:
            return "shipped"
        return f"missing (build .envs/{cls.family})"
    cached = cached_weights(cls.name)
    if cached is not None:
        return f"cached: {cached}"
    if cls.requires_checkpoint:
        return "missing: needs a local checkpoint (weights: PATH)"
    if cls.weights_name == RANDOM_INIT:
        return RANDOM_INIT
    return "none needed"


def cached_weights(name: str) -> Path | None:
    """``cache_dir()/weights/{name}`` or ``{name}.*`` (what ``weights fetch`` writes)."""
    folder = cache_dir() / "weights"
    found = sorted(folder.glob(f"{name}.*")) + sorted(folder.glob(name))
    return found[0] if found else None


def find_in_site_packages(relative: str, extra: Sequence[Path] = ()) -> Path | None:
    """``relative`` under ``extra`` or this interpreter's site-packages, if it exists."""
    roots = [Path(p) for p in extra] + [Path(sysconfig.get_paths()["purelib"])]
    roots += [Path(p) for p in sys.path if p.endswith("site-packages")]
    for root in roots:
        candidate = root / relative
        if candidate.exists():
            return candidate
    return None


def cache_dir() -> Path:
    """matteralign's cache (``$MATTERALIGN_CACHE``, else ``$XDG_CACHE_HOME/matteralign`` or
    ``~/.cache/matteralign``): derived files such as weight manifests or a tokenizer's vocab."""
    root = os.environ.get("MATTERALIGN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "matteralign")
    return Path(root)


class WeightsMismatch(MatterAlignError, RuntimeError):
    """A checkpoint's sha256 differs from the one pinned in the config."""


def check_weights_pin(adapter: Any, sha256: str | None) -> str:
    """The sha256 of the adapter's weights file ("" without one); raise
    :class:`WeightsMismatch` when ``sha256`` pins a different file."""
    from matteralign.io import sha256_file

    path = adapter.weights_path()
    actual = sha256_file(path) if path is not None else ""
    if sha256 and actual != sha256.lower():
        where = str(path) if path is not None else "no weights file (random init)"
        raise WeightsMismatch(
            f"model {adapter.name!r}: weights {where} have sha256 {actual or '-'}, but the "
            f"config pins {sha256.lower()}; use the pinned file or update models."
            f"{adapter.name}.sha256")
    return actual
