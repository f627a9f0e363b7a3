"""Datasets of the study, one module each; see :mod:`matteralign.datasets.base`."""

from __future__ import annotations

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
