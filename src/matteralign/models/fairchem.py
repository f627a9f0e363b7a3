"""UMA (Wood et al. 2025, "UMA: A Family of Universal Models for Atoms"), fairchem-core's
eSCN-MD backbone (SO(2)-equivariant convolutions, lmax 2) with a mixture of linear experts,
here UMA-S 1.1: 4 layers, 128 sphere channels, 32 experts, 6 A cutoff, 30 neighbours;
146.5M parameters in total, 6.6M active per structure.

No UMA weights can be had offline (they sit in a gated Hugging Face repository), so the
adapter builds the real ``eSCNMDMoeBackbone`` with the released UMA-S hyperparameters
(fairchem's configs/uma/training_release/backbone/K4L2.yaml + uma_sm_direct_pretrain.yaml)
and

- ``weights=PATH``: a backbone ``state_dict`` file is read with
  ``torch.load(weights_only=True)``. fairchem's own ``uma-s-1p1.pt`` checkpoints are pickled
  objects with Hydra configs (fairchem itself loads them with ``weights_only=False``): they
  load only with ``allow_pickle=True`` (the config entry must say so), through fairchem's
  ``load_predict_unit``, whose backbone is then used. (That path needs a real checkpoint and
  is not exercised offline.)
- otherwise (the default while no checkpoint is configured): random init, labelled
  ``random-init``.

Last hidden layer: the backbone's ``node_embedding`` after the last layer (and its final
norm), [atoms, (lmax+1)^2, 128]; the invariant l=0 channel ``[:, 0, :]`` is the embedding.
UMA mixes its experts per structure from the composition and the task: crystals (3D
periodic) run as task "omat", everything else as "omol" (charge and spin from
``atoms.info``, default 0 and 1), unless ``task=`` fixes one. No energy is reported (the
energy heads are not built).
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

#: UMA-S 1.1's backbone (K4L2.yaml with the pretraining run's values substituted)
UMA_S: dict[str, Any] = {
    "num_experts": 32, "use_composition_embedding": True, "max_num_elements": 100,
    "sphere_channels": 128, "lmax": 2, "mmax": 2, "otf_graph": True, "max_neighbors": 30,
    "cutoff": 6.0, "edge_channels": 128, "distance_function": "gaussian",
    "num_distance_basis": 64, "num_layers": 4, "hidden_channels": 128,
    "norm_type": "rms_norm_sh", "act_type": "gate", "ff_type": "spectral",
    "chg_spin_emb_type": "rand_emb", "cs_emb_grad": True,
    "dataset_mapping": {d: d for d in ("oc20", "omol", "omat", "odac", "omc")},
}


@register_model
class UMASmall11(ModelAdapter):
    name = "uma-s-1p1"
    family = "fairchem"
    modality = "atoms"
    architecture = ("UMA-S 1.1: eSCN-MD mixture-of-linear-experts backbone, 4 layers, lmax 2, "
                    "128 channels, 32 experts, 6 A cutoff, 146.5M params (6.6M active)")
    layer = "backbone node_embedding after the last layer, l=0 channel (128-d per atom)"
    pooling = "mean over atoms"
    weights_name = RANDOM_INIT
    license = "FAIR Chemistry License (UMA weights); MIT (fairchem-core code)"
    key_packages = ("fairchem-core", "e3nn", "torch", "ase")
    requires_module = "fairchem"
    batch_size = 16
    produces_energy = False
    seed: ClassVar[int] = 0
    hub_id: ClassVar[str] = "facebook/UMA checkpoints/uma-s-1p1.pt (gated)"

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None, task: str | None = None,
                 allow_pickle: bool = False,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``task``: fix UMA's task ("omat", "omol", "oc20", "odac", "omc") instead of
        choosing by periodicity. ``allow_pickle``: let fairchem unpickle a full checkpoint
        (runs its code: only for files you trust). ``config_overrides``: backbone
        hyperparameters of the random-init model (tests build a small instance this way)."""
        super().__init__(weights=weights, device=device)
        self.max_atoms = max_atoms
        self.task = task
        self.allow_pickle = allow_pickle
        self.config_overrides = dict(config_overrides or {})
        self._backbone: Any = None
        self._config: dict[str, Any] = {}

    def build(self) -> Any:
        from fairchem.core.models.uma.escn_moe import eSCNMDMoeBackbone

        self._config = {**UMA_S, **self.config_overrides}
        return eSCNMDMoeBackbone(regress_forces=False, direct_forces=True,
                                 always_use_pbc=False, **self._config)

    def _load(self) -> None:
        import torch

        torch.manual_seed(self.seed)
        if not self.weights or self.weights == RANDOM_INIT:
            backbone = self.build()
        else:
            backbone = self._from_file(Path(self.weights))
        backbone = frozen(backbone, self.device)
        self._backbone = backbone

    def _from_file(self, path: Path) -> Any:
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            if not self.allow_pickle:
                raise ValueError(
                    f"{path} is not a plain state_dict (weights_only load failed: "
                    f"{str(error).splitlines()[0][:200]}); fairchem checkpoints are pickles "
                    "that run code when loaded: set allow_pickle: true in this model's config "
                    "entry only if you trust the file") from None
            from fairchem.core.calculate.pretrained_mlip import load_predict_unit

            unit = load_predict_unit(str(path), inference_settings="default",
                                     device=self.device)
            model = unit.model.module if hasattr(unit.model, "module") else unit.model
            backbone = model.backbone
            self._config = {"cutoff": float(backbone.cutoff),
                            "max_neighbors": int(backbone.max_neighbors)}
            return backbone
        backbone = self.build()
        backbone.load_state_dict(state, strict=True)
        return backbone

    def task_for(self, atoms: Any) -> str:
        if self.task:
            return self.task
        return "omat" if atoms.pbc.all() else "omol"

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        atoms = record.atoms
        assert atoms is not None
        high = sorted({int(z) for z in atoms.numbers if z >= 100 or z < 1})
        if high:
            return f"element(s) Z={high} outside UMA's element embedding (Z 1-99)"
        return structure_problem(atoms, self.max_atoms)

    def atom_features(self, records: Sequence[Record]) -> list[np.ndarray]:
        import torch
        from fairchem.core.datasets.atomic_data import AtomicData, atomicdata_list_to_batch

        datas = []
        for record in records:
            atoms = record.atoms.copy()
            atoms.info.setdefault("charge", 0)
            atoms.info.setdefault("spin", 1)
            datas.append(AtomicData.from_ase(
                atoms, task_name=self.task_for(atoms), radius=self._config["cutoff"],
                max_neigh=self._config["max_neighbors"], r_edges=False))
        batch = atomicdata_list_to_batch(datas).to(torch.device(self.device))
        with torch.no_grad():
            out = self._backbone(batch)
        invariant = out["node_embedding"][:, 0, :].double().cpu()
        return [f.numpy() for f in torch.split(invariant, batch.natoms.tolist())]

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        feats = self.atom_features(records)
        return EmbedOutput(mean_pool(feats))
