"""The torch helpers adapters share: hooks that keep a layer's output, freezing, loading
checkpoints safely, and splitting a batch's per-atom rows back into structures.

torch is imported inside the functions: the driver environment lists adapters without it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class OutputKeeper:
    """A forward hook that appends its module's (detached) output to ``store``: how the
    adapters read the last hidden layer out of a model's own forward pass. A class, not a
    closure, so that a model saved whole with its hooks (torch.save) still pickles.
    ``index``: keep only that element of a tuple output."""

    store: list[object]
    index: int | None = None

    def __call__(self, module: object, inputs: object, output: object) -> None:
        value = output if self.index is None else output[self.index]  # type: ignore[index]
        self.store.append(value.detach())  # type: ignore[attr-defined]


@dataclass
class InputKeeper:
    """A forward pre-hook that appends its module's (detached) first input to ``store``: for
    a last hidden layer that is what a head reads rather than what a block returns. ``key``:
    keep that field of a dict-like input."""

    store: list[object]
    key: str | None = None

    def __call__(self, module: object, inputs: tuple[object, ...]) -> None:
        value = inputs[0] if self.key is None else inputs[0][self.key]  # type: ignore[index]
        self.store.append(value.detach())  # type: ignore[attr-defined]


def per_atom(features: Any, counts: Sequence[int]) -> list[np.ndarray]:
    """A batch's per-atom rows [sum(counts), D] split into one float64 array per structure;
    a row count that is not the atom count is an error (never a silent misalignment)."""
    import torch

    counts = [int(n) for n in counts]
    if features.shape[0] != sum(counts):
        raise RuntimeError(f"{features.shape[0]} node features for {sum(counts)} atoms")
    return [f.numpy() for f in torch.split(features.double().cpu(), counts)]


def frozen(model: object, device: str) -> object:
    """A torch module on ``device`` in eval mode with every parameter frozen: adapters only
    read activations, and no autograd graph should be kept for them."""
    import torch

    model = model.to(torch.device(device)).eval()  # type: ignore[attr-defined]
    for param in model.parameters():  # type: ignore[attr-defined]
        param.requires_grad_(False)
    return model


def load_exact_state(model: Any, state: Mapping[str, Any], source: object,
                     what: str) -> None:
    """Load ``state`` into ``model``; a file whose keys differ is refused with the first
    missing and unexpected keys named (``what``: what the file should have been)."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    refuse_partial_load(source, what, missing, unexpected)


def refuse_partial_load(source: object, what: str, missing: Sequence[str],
                        unexpected: Sequence[str], mismatched: Sequence[object] = (),
                        ignore: tuple[str, ...] = ()) -> None:
    """Raise unless every parameter came from the checkpoint ``source``: the message says it
    is not ``what`` and names the first missing, mismatched and unexpected keys (unexpected
    keys starting with ``ignore`` are heads the model does not hold)."""
    missing = sorted(missing)
    mismatched = sorted(str(k) for k in mismatched)
    unexpected = sorted(k for k in unexpected if not k.startswith(ignore))
    if missing or mismatched or unexpected:
        shape = f"mismatched {mismatched[:5]}, " if mismatched else ""
        raise ValueError(f"{source}: not {what} (missing {missing[:5]}, {shape}unexpected "
                         f"{unexpected[:5]})")


def weights_only_reason(error: BaseException) -> str:
    """What torch's weights_only loader objected to (e.g. "Unsupported global: GLOBAL
    mace.modules.models.MACE"), without its advice to load the file unsafely."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    found = re.search(r"WeightsUnpickler error: (.*?)(?: was not an allowed global|\. |\n|$)",
                      text)
    if found:
        return found.group(1).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def pickle_refused(path: object, error: BaseException, hint: str = "") -> ValueError:
    """The error for a checkpoint that ``torch.load(weights_only=True)`` refused while the
    model's config does not allow unpickling (a pickle runs code stored in the file)."""
    return ValueError(
        f"{path} is not a plain tensor checkpoint (weights_only load failed: "
        f"{weights_only_reason(error)}); {hint + '; ' if hint else ''}unpickling runs "
        "code stored in the file: set allow_pickle: true in this model's config entry only "
        "if you trust it")


def load_torch_checkpoint(path: object, allow_pickle: bool, hint: str = "") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a file that needs unpickling loads
    only with ``allow_pickle``, else :func:`pickle_refused` names the failure and the fix."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError variants
        if not allow_pickle:
            raise pickle_refused(path, error, hint) from None
    return torch.load(path, map_location="cpu", weights_only=False)
