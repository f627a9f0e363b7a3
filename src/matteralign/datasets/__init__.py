"""Datasets of the study, one module each; see :mod:`matteralign.datasets.base`."""

from __future__ import annotations

import importlib
import pkgutil

from matteralign.datasets.base import (
    Dataset,
    DatasetUnavailable,
    get_dataset,
    register_dataset,
    registered_datasets,
    subsample,
)

__all__ = [
    "Dataset",
    "DatasetUnavailable",
    "get_dataset",
    "register_dataset",
    "registered_datasets",
    "subsample",
]

_SKIP = {"base", "store", "prepare"}


def _discover() -> None:
    """Import every dataset module so its @register_dataset runs (cheap: no heavy imports)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _SKIP and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
