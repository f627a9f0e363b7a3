"""Orb v3 (orb-models): the real architecture from ``orb_v3_{kind}_architecture`` at random
init or from a released state_dict. The embedding is the backbone's node features after
the last message-passing step; the energy path is orb's own (head plus pair repulsion).
Details: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.atoms import AtomsAdapter, outside
from matteralign.models.torch_utils import frozen, per_atom
from matteralign.models.weights import RANDOM_INIT
from matteralign.records import Record


class OrbV3(AtomsAdapter):
    """An Orb v3 forcefield regressor built by orb-models' ``orb_v3_{kind}_architecture``;
    the released ones are rows of :mod:`~matteralign.models.checkpoints`."""

    family = "orb"
    weights_name = RANDOM_INIT
    license = "Apache-2.0 (orb-models code and Orb v3 weights)"
    key_packages = ("orb-models", "torch", "ase")
    requires_module = "orb_models"
    batch_size = 16
    produces_energy = True
    layer = "backbone node_features after the last message-passing step (256-d per atom)"
    hub_id: ClassVar[str] = ""
    #: "conservative" or "direct": which orb_v3_*_architecture builds the model
    kind: ClassVar[str] = "conservative"
    radius: ClassVar[float] = 6.0
    max_num_neighbors: ClassVar[int] = 120
    #: Orb v3 covers Z = 1..118 in its embedding
    max_z: ClassVar[int] = 118

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``config_overrides``: arguments of orb_v3_*_architecture for the random-init
        model (tests build a small instance of the same class this way)."""
        super().__init__(weights=weights, device=device, max_atoms=max_atoms)
        self.config_overrides = dict(config_overrides or {})
        self._system_config: Any = None

    weights_source = "https://orbitalmaterials-public-models.s3.us-west-1.amazonaws.com"

    def fetch_weights(self, dest: Path) -> Path:
        """The released ``.ckpt`` (a state_dict) with orb-models' own ``cached_path``
        download of the URL its loader function uses, copied to ``dest/{name}.ckpt``."""
        import inspect
        import os
        import shutil

        from cached_path import cached_path
        from orb_models.forcefield import pretrained

        loader = pretrained.ORB_PRETRAINED_MODELS[self.name]
        url = inspect.signature(loader).parameters["weights_path"].default
        target = dest / f"{self.name}.ckpt"
        tmp = dest / f".{self.name}.tmp{os.getpid()}"
        shutil.copyfile(cached_path(url), tmp)
        tmp.replace(target)
        return target

    def _load(self) -> None:
        import torch
        from orb_models.forcefield import pretrained
        from orb_models.forcefield.atomic_system import SystemConfig

        torch.manual_seed(self.seed)
        self._system_config = SystemConfig(radius=self.radius,
                                           max_num_neighbors=self.max_num_neighbors)
        build = getattr(pretrained, f"orb_v3_{self.kind}_architecture")
        model = build(device="cpu", system_config=self._system_config,
                      **self.config_overrides)
        if not self.is_random_init:
            state = torch.load(Path(str(self.weights)), map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        model = frozen(model, self.device)
        self._model = model

    def check_atoms(self, atoms: Any) -> str | None:
        high = outside(atoms, range(1, self.max_z + 1))
        if high:
            return f"element(s) Z={high} outside Orb's element embedding (Z 1-{self.max_z})"
        return None

    def atom_features(self, records: Sequence[Record]) -> tuple[list[np.ndarray], np.ndarray]:
        import torch
        from orb_models.forcefield.atomic_system import ase_atoms_to_atom_graphs
        from orb_models.forcefield.base import batch_graphs

        device = torch.device(self.device)
        graphs = [ase_atoms_to_atom_graphs(_neutral(r.atoms), self._system_config,
                                           device=device) for r in records]
        batch = batch_graphs(graphs)
        model = self._model
        with torch.no_grad():
            out = model.model(batch)
            feats = out["node_features"]
            head = model.heads["energy"]
            energy = head.denormalize(head(feats, batch), batch)
            if model.pair_repulsion:
                energy = energy + model.pair_repulsion_fn(batch)["energy"]
        return per_atom(feats, batch.n_node.tolist()), \
            energy.double().cpu().numpy().reshape(-1)


def _neutral(atoms: Any) -> Any:
    """A copy without ``info`` charge/spin: the OMat models have no charge/spin conditioning,
    and orb's graph builder refuses a charge given without a spin."""
    atoms = atoms.copy()
    atoms.info = {k: v for k, v in atoms.info.items() if k not in ("charge", "spin")}
    return atoms
