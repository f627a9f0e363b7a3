"""Orb v3 (Rhodes et al. 2025, arXiv:2504.06231): a graph network simulator interatomic
potential (MoleculeGNS backbone: 5 attention-gated message-passing steps, 256-d latents,
Bessel radial and l<=3 spherical-harmonic edge features, 6 A cutoff, pair repulsion),
trained on OMat24. Three of the released OMat24 models, each built with orb-models' own
architecture builder (``orb_models.forcefield.pretrained``):

- ``orb-v3-conservative-inf-omat``: forces and stress as gradients of the energy
  (``orb_v3_conservative_architecture``), unlimited neighbours (k-NN 120 within 6 A);
- ``orb-v3-direct-inf-omat``: forces and stress from their own heads
  (``orb_v3_direct_architecture``), unlimited neighbours (k-NN 120);
- ``orb-v3-direct-20-omat``: the direct model with at most 20 neighbours per atom.

No Orb weights ship in the wheel (they download from S3), so the adapter builds the real
architecture and

- ``weights=PATH``: loads a local ``.ckpt`` state_dict with ``torch.load(weights_only=True)``
  (as orb-models' own ``load_model`` does), strictly;
- otherwise (the default while no checkpoint is configured): random init, labelled
  ``random-init``.

Last hidden layer: the backbone's ``node_features`` (256-d per atom) after the last
message-passing step: what the energy, force and confidence heads all read (the same layer
in the conservative and the direct models).
Energy (real weights only): the energy head's denormalised total plus the pair-repulsion
term, computed without autograd (forces are not needed), as orb's own forward computes it.

Orb is not rotation-equivariant by construction (its edge features are spherical harmonics of
the raw edge vectors; the trained model is only approximately invariant), so its per-atom
features are invariant to atom order, translation and periodic images but not exactly to
rotation. The 20-neighbour model's k-NN cut can also break ties between equidistant
neighbours differently in a supercell. License: Apache-2.0 (code and weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.base import (
    RANDOM_INIT,
    EmbedOutput,
    ModelAdapter,
    frozen,
    mean_pool,
    register_model,
    structure_problem,
)
from matteralign.records import Record


class _OrbV3(ModelAdapter):
    """An Orb v3 forcefield regressor built by orb-models' ``orb_v3_{kind}_architecture``."""

    family = "orb"
    modality = "atoms"
    pooling = "mean over atoms"
    weights_name = RANDOM_INIT
    license = "Apache-2.0 (orb-models code and Orb v3 weights)"
    key_packages = ("orb-models", "torch", "ase")
    requires_module = "orb_models"
    batch_size = 16
    produces_energy = True
    layer = "backbone node_features after the last message-passing step (256-d per atom)"
    seed: ClassVar[int] = 0
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
        super().__init__(weights=weights, device=device)
        self.max_atoms = max_atoms
        self.config_overrides = dict(config_overrides or {})
        self._model: Any = None
        self._system_config: Any = None

    @property
    def random(self) -> bool:
        return not self.weights or self.weights == RANDOM_INIT

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
        if not self.random:
            state = torch.load(Path(str(self.weights)), map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        model = frozen(model, self.device)
        self._model = model

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        atoms = record.atoms
        assert atoms is not None
        high = sorted({int(z) for z in atoms.numbers if z > self.max_z or z < 1})
        if high:
            return f"element(s) Z={high} outside Orb's element embedding (Z 1-{self.max_z})"
        return structure_problem(atoms, self.max_atoms)

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
        counts = [int(n) for n in batch.n_node.tolist()]
        per_atom = torch.split(feats.double().cpu(), counts)
        return [f.numpy() for f in per_atom], energy.double().cpu().numpy().reshape(-1)

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        feats, energy = self.atom_features(records)
        embeddings = mean_pool(feats)
        return EmbedOutput(embeddings, None if self.random else energy)


@register_model
class OrbV3ConservativeInfOmat(_OrbV3):
    name = "orb-v3-conservative-inf-omat"
    architecture = ("Orb v3 conservative: MoleculeGNS, 5 message-passing steps, latent 256, "
                    "6 A cutoff, up to 120 neighbours (k-NN), pair repulsion")
    hub_id = "orb_models.forcefield.pretrained.orb_v3_conservative_inf_omat"
    kind = "conservative"
    max_num_neighbors = 120


@register_model
class OrbV3DirectInfOmat(_OrbV3):
    name = "orb-v3-direct-inf-omat"
    architecture = ("Orb v3 direct: MoleculeGNS, 5 message-passing steps, latent 256, 6 A "
                    "cutoff, up to 120 neighbours (k-NN), energy/force/stress heads, pair "
                    "repulsion")
    hub_id = "orb_models.forcefield.pretrained.orb_v3_direct_inf_omat"
    kind = "direct"
    max_num_neighbors = 120


@register_model
class OrbV3Direct20Omat(_OrbV3):
    name = "orb-v3-direct-20-omat"
    architecture = ("Orb v3 direct: MoleculeGNS, 5 message-passing steps, latent 256, 6 A "
                    "cutoff, at most 20 neighbours (k-NN), energy/force/stress heads, pair "
                    "repulsion")
    hub_id = "orb_models.forcefield.pretrained.orb_v3_direct_20_omat"
    kind = "direct"
    max_num_neighbors = 20


def _neutral(atoms: Any) -> Any:
    """A copy without ``info`` charge/spin: the OMat models have no charge/spin conditioning,
    and orb's graph builder refuses a charge given without a spin."""
    atoms = atoms.copy()
    atoms.info = {k: v for k, v in atoms.info.items() if k not in ("charge", "spin")}
    return atoms
