"""MatterSim v1 (Yang et al. 2024, arXiv:2405.04967): Microsoft's universal interatomic potential,
an M3GNet-style graph network with three-body interactions trained on ~17M DFT (PBE/PBE+U)
structures sampled over elements, temperatures (0-5000 K) and pressures (0-1000 GPa). Here the
``mattersim-v1.0.0-1M`` model's architecture: ``mattersim.forcefield.m3gnet.M3Gnet`` with its
defaults, which are that checkpoint's ``model_args``: 4 blocks, 128 units, max_l 4, max_n 4,
5 A cutoff, 4 A three-body cutoff, Z 1-94.

No MatterSim weights ship in the wheel (``Potential.from_checkpoint`` downloads them from
GitHub), so the adapter builds the real ``M3Gnet`` and

- ``weights=PATH``: loads a local MatterSim checkpoint (``mattersim-v1.0.0-1M.pth`` or what
  ``Potential.save`` writes: ``model`` state_dict, ``model_args``, ``model_name``, training
  state) with ``torch.load(weights_only=True)``; a file that needs full unpickling loads only
  with ``allow_pickle=True`` (a pickle can run code). Its own ``model_args`` then apply, and
  the state_dict is loaded as mattersim does (non-strict) except that every parameter must be
  present (buffers such as the element scale/shift may come from the constructor);
- otherwise (the default while no checkpoint is configured): random init, labelled
  ``random-init`` (element scale 1, shift 0: no energy is reported).

Last hidden layer: the atom features output by the last block (``graph_conv[-1]``, first
output, 128-d per atom), caught with a forward hook; after it MatterSim applies only the
per-atom energy readout (``final``, a gated MLP) and the element scaling. Molecules are put in
MatterSim's own vacuum box (its graph converter's: extent + 25 A), crystals go in as they are;
structures are batched with mattersim's own data loader and run without gradients (no
forces). License: MIT (mattersim code and MatterSim v1 weights).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.base import (
    RANDOM_INIT,
    EmbedOutput,
    ModelAdapter,
    frozen,
    load_torch_checkpoint,
    mean_pool,
    register_model,
    structure_problem,
)
from matteralign.records import Record


@register_model
class MatterSimV1_1M(ModelAdapter):  # noqa: N801 - the model's own name
    name = "mattersim-v1-1m"
    family = "mattersim"
    modality = "atoms"
    architecture = ("MatterSim v1 (M3GNet-style): 4 blocks with three-body interactions, 128 "
                    "units, max_l 4, max_n 4, 5 A cutoff, 4 A three-body cutoff, Z 1-94")
    layer = "graph_conv[-1] output: atom features after the last block (128-d per atom)"
    pooling = "mean over atoms"
    weights_name = RANDOM_INIT
    license = "MIT (mattersim code and MatterSim v1 weights)"
    key_packages = ("mattersim", "torch", "torch-geometric", "e3nn", "pymatgen-core", "ase")
    requires_module = "mattersim"
    batch_size = 16
    produces_energy = True
    seed: ClassVar[int] = 0
    hub_id: ClassVar[str] = "mattersim-v1.0.0-1M.pth (github.com/microsoft/mattersim)"

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None, allow_pickle: bool = False,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``allow_pickle``: let a checkpoint that is more than tensors and plain containers be
        unpickled (runs its code: only for files you trust). ``config_overrides``: M3Gnet
        arguments of the random-init model (tests build a small instance this way)."""
        super().__init__(weights=weights, device=device)
        self.max_atoms = max_atoms
        self.allow_pickle = allow_pickle
        self.config_overrides = dict(config_overrides or {})
        self._model: Any = None
        self._captured: list[Any] = []

    @property
    def random(self) -> bool:
        return not self.weights or self.weights == RANDOM_INIT

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
        if self.random:
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
        model.graph_conv[-1].register_forward_hook(self._hook)
        self._model = model

    def _hook(self, module: Any, inputs: Any, output: Any) -> None:
        self._captured.append(output[0].detach())

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        atoms = record.atoms
        assert atoms is not None
        max_z = int(self._model.max_z) if self._model is not None else 94
        high = sorted({int(z) for z in atoms.numbers if z > max_z or z < 1})
        if high:
            return f"element(s) Z={high} outside MatterSim's element embedding (Z 1-{max_z})"
        return structure_problem(atoms, self.max_atoms)

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
        self._captured.clear()
        with torch.no_grad():
            energy = self._model(inputs)
        if len(self._captured) != 1:
            raise RuntimeError(f"expected one hooked forward pass, got {len(self._captured)}")
        counts = [int(n) for n in inputs["num_atoms"].tolist()]
        if counts != [len(r.atoms) for r in records]:
            raise RuntimeError(f"graph sizes {counts} differ from the structures'")
        per_atom = torch.split(self._captured.pop().double().cpu(), counts)
        return [f.numpy() for f in per_atom], energy.double().cpu().numpy().reshape(-1)

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        feats, energy = self.atom_features(records)
        return EmbedOutput(mean_pool(feats), None if self.random else energy)
