"""MatterSim v1 (mattersim ``M3Gnet``, the 1M model's architecture): no weights in the wheel,
so it runs at random init or from a local checkpoint (weights_only; a pickle only with
``allow_pickle``). The embedding is the last block's atom features. Details: docs/models.md.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.atoms import AtomsAdapter, outside
from matteralign.models.base import register_model
from matteralign.models.torch_utils import frozen, load_torch_checkpoint
from matteralign.models.weights import RANDOM_INIT
from matteralign.records import Record


@register_model
class MatterSimV1_1M(AtomsAdapter):  # noqa: N801 - the model's own name
    name = "mattersim-v1-1m"
    family = "mattersim"
    architecture = ("MatterSim v1 (M3GNet-style): 4 blocks with three-body interactions, 128 "
                    "units, max_l 4, max_n 4, 5 A cutoff, 4 A three-body cutoff, Z 1-94")
    layer = "graph_conv[-1] output: atom features after the last block (128-d per atom)"
    weights_name = RANDOM_INIT
    license = "MIT (mattersim code and MatterSim v1 weights)"
    key_packages = ("mattersim", "torch", "torch-geometric", "e3nn", "pymatgen-core", "ase")
    requires_module = "mattersim"
    batch_size = 16
    produces_energy = True
    hub_id: ClassVar[str] = "mattersim-v1.0.0-1M.pth (github.com/microsoft/mattersim)"

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None, allow_pickle: bool = False,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``allow_pickle``: let a checkpoint that is more than tensors and plain containers be
        unpickled (runs its code: only for files you trust). ``config_overrides``: M3Gnet
        arguments of the random-init model (tests build a small instance this way)."""
        super().__init__(weights=weights, device=device, max_atoms=max_atoms)
        self.allow_pickle = allow_pickle
        self.config_overrides = dict(config_overrides or {})

    def _checkpoint(self, path: Path) -> dict[str, Any]:
        if not path.is_file():
            raise FileNotFoundError(f"MatterSim checkpoint not found: {path}")
        checkpoint = load_torch_checkpoint(path, self.allow_pickle)
        if checkpoint.get("model_name", "m3gnet") != "m3gnet" or "model" not in checkpoint:
            raise ValueError(f"{path}: not a MatterSim M3Gnet checkpoint")
        return checkpoint

    weights_source = "https://raw.githubusercontent.com/microsoft/mattersim/main/"

    def fetch_weights(self, dest: Path) -> Path:
        """MatterSim's own ``download_checkpoint`` into ``dest/{name}.pth``."""
        from mattersim.utils.download_utils import download_checkpoint

        filename = self.hub_id.split()[0]
        tmp = dest / f".{self.name}.tmp{os.getpid()}"
        download_checkpoint(filename, save_folder=str(tmp))
        target = dest / f"{self.name}.pth"
        (tmp / filename).replace(target)
        tmp.rmdir()
        return target

    def _load(self) -> None:
        import torch
        from mattersim.forcefield.m3gnet.m3gnet import M3Gnet

        torch.manual_seed(self.seed)
        if self.is_random_init:
            model = M3Gnet(device="cpu", **self.config_overrides)
        else:
            checkpoint = self._checkpoint(Path(str(self.weights)))
            model = M3Gnet(device="cpu", **checkpoint.get("model_args", {}))
            result = model.load_state_dict(checkpoint["model"], strict=False)
            params = {name for name, _ in model.named_parameters()}
            missing = sorted(k for k in result.missing_keys if k in params)
            if missing:
                raise ValueError(f"{self.weights}: {len(missing)} parameter(s) missing from the "
                                 f"checkpoint, e.g. {missing[:3]}")
        model = frozen(model, self.device)
        self.hook(model.graph_conv[-1], index=0)
        self._model = model

    def check_atoms(self, atoms: Any) -> str | None:
        max_z = int(self._model.max_z) if self._model is not None else 94
        high = outside(atoms, range(1, max_z + 1))
        if high:
            return f"element(s) Z={high} outside MatterSim's element embedding (Z 1-{max_z})"
        return None

    def atom_features(self, records: Sequence[Record]) -> tuple[list[np.ndarray], np.ndarray]:
        """Per-atom last-block features of each record, and the model's total energies."""
        import torch
        from mattersim.datasets.utils.build import build_dataloader
        from mattersim.forcefield.potential import batch_to_dict

        args = self._model.model_args
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No PBC detected, using a large supercell"
            loader = build_dataloader(
                [r.atoms.copy() for r in records], only_inference=True,
                batch_size=len(records), cutoff=args["cutoff"],
                threebody_cutoff=args["threebody_cutoff"], model_type="m3gnet")
        graphs = list(loader)
        if len(graphs) != 1:
            raise RuntimeError(f"expected one batch, got {len(graphs)}")
        inputs = batch_to_dict(graphs[0], model_type="m3gnet", device=self.device)
        self.start_capture()
        with torch.no_grad():
            energy = self._model(inputs)
        counts = [int(n) for n in inputs["num_atoms"].tolist()]
        if counts != [len(r.atoms) for r in records]:
            raise RuntimeError(f"graph sizes {counts} differ from the structures'")
        return self.take_capture(counts), energy.double().cpu().numpy().reshape(-1)
