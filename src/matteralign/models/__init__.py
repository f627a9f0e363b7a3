"""Model adapters, one module per family; see :mod:`matteralign.models.base`."""

from __future__ import annotations

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
