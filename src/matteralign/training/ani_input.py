"""The training input of a ladder rung, in the YAML form of torchani's NeuroChem trainer.

``torchani.neurochem.Trainer`` builds the ANI networks from this file (AEV constants, one
MLP per element, CELU hidden layers and a linear output), and the rung's model loader
builds them again from the same file, so the trained and the embedded network are one
construction. Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

#: the ANI-1x AEV constants (in the torchani 2.2.4 wheel's ani-1x_8x folder): 384-d AEVs
AEV_CONSTANTS = "rHCNO-5.2R_16-3.5A_a4-8.params"
AEV_LENGTH = 384
SAE_FILE = "sae_linfit.dat"
INPUT_FILE = "inputtrain.yaml"
CHECKPOINT = "model.pt"
#: NeuroChem activation codes: 9 = CELU(alpha=0.1) (ANI-1x's), 6 = linear output
CELU, LINEAR = 9, 6
#: element order of ANI-1x's networks (and of its species indices)
SPECIES = ("H", "C", "N", "O")


def network_setup(hidden: Mapping[str, Sequence[int]], l2: float) -> dict[str, Any]:
    """NeuroChem's ``network_setup``: per element, its hidden layers and a linear output."""
    def layers(widths: Sequence[int]) -> list[dict[str, Any]]:
        out = [{"nodes": int(w), "activation": CELU, "type": 0, "l2norm": 1, "l2valu": l2}
               for w in widths]
        return out + [{"nodes": 1, "activation": LINEAR, "type": 0}]

    return {"inputsize": AEV_LENGTH, "atom_net": {s: layers(hidden[s]) for s in SPECIES}}


def epochs(steps: int, batch_size: int, size: int) -> int:
    """Epochs that give at least ``steps`` gradient steps on ``size`` molecules."""
    per_epoch = math.ceil(size / batch_size)
    return max(1, math.ceil(steps / per_epoch))


def trainer_input(training: Mapping[str, Any], hidden: Mapping[str, Sequence[int]],
                  size: int) -> dict[str, Any]:
    """The trainer's parameters from the ladder's ``training`` keys (NeuroChem names), for
    a training set of ``size`` molecules."""
    return {
        "sflparamsfile": AEV_CONSTANTS, "atomEnergyFile": SAE_FILE, "ntwkStoreDir": ".",
        # the trainer trains nmax + 1 epochs at most (nmax = 0 would mean no limit)
        "nmax": max(1, epochs(int(training["steps"]), int(training["batch_size"]), size) - 1),
        "tolr": int(training["patience"]),         # epochs without improvement, then stop
        "eta": float(training["learning_rate"]),   # initial learning rate (AdamW weights)
        "emult": 0.5, "tcrit": float(training["min_learning_rate"]),
        "tbtchsz": int(training["batch_size"]), "vbtchsz": 256,
        # what this trainer supports (it refuses other values)
        "pbc": 0, "force": 0, "energy": 1, "moment": "ADAM",
        "runtype": "ANNP_CREATE_HDNN_AND_TRAIN", "adptlrn": "OFF", "tmax": 0, "ntwshr": 0,
        "network_setup": network_setup(hidden, float(training["weight_decay"])),
    }


def write_sae(path: str | os.PathLike[str], energies: Mapping[str, float]) -> None:
    """Self-atomic energies (Hartree) in NeuroChem's ``sae_linfit.dat`` form."""
    lines = [f"{s},{i}={energies[s]!r}" for i, s in enumerate(SPECIES)]
    Path(path).write_text("\n".join(lines) + "\n")


def write_input(folder: str | os.PathLike[str], params: Mapping[str, Any]) -> Path:
    path = Path(folder) / INPUT_FILE
    path.write_text(yaml.safe_dump(dict(params), sort_keys=False))
    return path
