"""Model adapters, one module per family; see :mod:`matteralign.models.base`."""

from __future__ import annotations

import importlib
import pkgutil

from matteralign.models.base import (
    RANDOM_INIT,
    EmbedOutput,
    ModelAdapter,
    ModelUnavailable,
    get_model,
    mean_pool,
    register_model,
    registered_models,
)

__all__ = [
    "RANDOM_INIT",
    "EmbedOutput",
    "ModelAdapter",
    "ModelUnavailable",
    "get_model",
    "mean_pool",
    "register_model",
    "registered_models",
]

_SKIP = {"base"}


def _discover() -> None:
    """Import every adapter module so its @register_model runs (cheap: no heavy imports)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _SKIP and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
