"""FAIR Chemistry backbones built from fairchem-core's own classes (UMA-S 1.1, eSEN-sm OMol25):
no weights offline (gated repositories), so the real backbone runs at random init, from a
state_dict, or from fairchem's pickled checkpoints only with ``allow_pickle``. The
embedding is the l=0 channel of ``node_embedding``; the task (omat/omol) follows
periodicity unless fixed. Details: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.atoms import AtomsAdapter, outside
from matteralign.models.base import register_model
from matteralign.models.torch_utils import frozen, per_atom, pickle_refused
from matteralign.models.weights import RANDOM_INIT
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


class _FairchemBackbone(AtomsAdapter):
    """A fairchem-core backbone built from ``config`` (or loaded from a checkpoint); the
    embedding is the l=0 channel of its ``node_embedding``."""

    family = "fairchem"
    weights_name = RANDOM_INIT
    license = "FAIR Chemistry License (weights); MIT (fairchem-core code)"
    key_packages = ("fairchem-core", "e3nn", "torch", "ase")
    requires_module = "fairchem"
    batch_size = 16
    produces_energy = False
    hub_id: ClassVar[str] = ""
    config: ClassVar[dict[str, Any]] = {}
    #: isolated molecules only (3D periodic structures are masked)
    molecules_only: ClassVar[bool] = False

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None, task: str | None = None,
                 allow_pickle: bool = False,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``task``: fix the task ("omat", "omol", "oc20", "odac", "omc") instead of
        choosing by periodicity. ``allow_pickle``: let fairchem unpickle a full checkpoint
        (runs its code: only for files you trust). ``config_overrides``: backbone
        hyperparameters of the random-init model (tests build a small instance this way)."""
        super().__init__(weights=weights, device=device, max_atoms=max_atoms)
        self.task = task
        self.allow_pickle = allow_pickle
        self.config_overrides = dict(config_overrides or {})
        self._backbone: Any = None
        self._config: dict[str, Any] = {}

    weights_source = "https://huggingface.co/facebook (gated: needs a Hugging Face token)"

    def build(self) -> Any:
        raise NotImplementedError

    def fetch_weights(self, dest: Path) -> Path:
        """fairchem's own ``pretrained_checkpoint_path_from_name`` download (a gated Hugging
        Face repository: log in first), copied to ``dest/{name}.pt`` (a pickled checkpoint:
        load it with ``allow_pickle: true``)."""
        import os
        import shutil

        from fairchem.core.calculate.pretrained_mlip import pretrained_checkpoint_path_from_name

        target = dest / f"{self.name}.pt"
        tmp = dest / f".{self.name}.tmp{os.getpid()}"
        shutil.copyfile(pretrained_checkpoint_path_from_name(self.name), tmp)
        tmp.replace(target)
        return target

    def _load(self) -> None:
        import torch

        torch.manual_seed(self.seed)
        if self.is_random_init:
            backbone = self.build()
        else:
            backbone = self._from_file(Path(str(self.weights)))
        backbone = frozen(backbone, self.device)
        self._backbone = backbone

    def _from_file(self, path: Path) -> Any:
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            if not self.allow_pickle:
                raise pickle_refused(path, error, "fairchem's .pt checkpoints are pickles") \
                    from None
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

    def check_atoms(self, atoms: Any) -> str | None:
        high = outside(atoms, range(1, 100))
        if high:
            return f"element(s) Z={high} outside the element embedding (Z 1-99)"
        if self.molecules_only and atoms.pbc.all():
            return f"periodic structure: {self.name} was trained on isolated molecules only"
        return None

    def atom_features(self, records: Sequence[Record]) -> tuple[list[np.ndarray], None]:
        import torch
        from fairchem.core.datasets.atomic_data import AtomicData, atomicdata_list_to_batch

        datas = []
        for record in records:
            atoms = record.atoms.copy()
            task = self.task_for(atoms)
            if task == "omol":  # total charge and spin multiplicity, as fairchem's calculator
                atoms.info.setdefault("charge", 0)
                atoms.info.setdefault("spin", 1)
            else:  # the other tasks' training data carried charge 0 and spin 0
                atoms.info.update(charge=0, spin=0)
            datas.append(AtomicData.from_ase(
                atoms, task_name=task, radius=self._config["cutoff"],
                max_neigh=self._config["max_neighbors"], r_edges=False,
                r_data_keys=["charge", "spin"]))  # without it from_ase sets both to 0
        batch = atomicdata_list_to_batch(datas).to(torch.device(self.device))
        with torch.no_grad():
            out = self._backbone(batch)
        return per_atom(out["node_embedding"][:, 0, :], batch.natoms.tolist()), None


@register_model
class UMASmall11(_FairchemBackbone):
    name = "uma-s-1p1"
    architecture = ("UMA-S 1.1: eSCN-MD mixture-of-linear-experts backbone, 4 layers, lmax 2, "
                    "128 channels, 32 experts, 6 A cutoff, 146.5M params (6.6M active)")
    layer = "backbone node_embedding after the last layer, l=0 channel (128-d per atom)"
    license = "FAIR Chemistry License (UMA weights); MIT (fairchem-core code)"
    hub_id = "facebook/UMA checkpoints/uma-s-1p1.pt (gated)"
    config = UMA_S

    def build(self) -> Any:
        from fairchem.core.models.uma.escn_moe import eSCNMDMoeBackbone

        self._config = {**self.config, **self.config_overrides}
        return eSCNMDMoeBackbone(regress_forces=False, direct_forces=True,
                                 always_use_pbc=False, **self._config)


#: eSEN-sm (OMol25) backbone, as in the released esen_sm_conserving_all.pt
ESEN_SM_OMOL: dict[str, Any] = {
    "max_num_elements": 100, "sphere_channels": 128, "lmax": 2, "mmax": 2,
    "otf_graph": True, "max_neighbors": 300, "cutoff": 6.0, "edge_channels": 128,
    "distance_function": "gaussian", "num_distance_basis": 64, "num_layers": 4,
    "hidden_channels": 128, "norm_type": "rms_norm_sh", "act_type": "gate",
    "ff_type": "spectral", "chg_spin_emb_type": "rand_emb", "cs_emb_grad": True,
    "use_dataset_embedding": False,
}


@register_model
class ESENSmConservingOMol(_FairchemBackbone):
    name = "esen-sm-conserving-all-omol"
    architecture = ("eSEN-sm (OMol25, conserving): eSCN-MD backbone without experts, 4 layers, "
                    "lmax 2, 128 channels, 6 A cutoff, charge/spin embeddings, 6.3M params")
    layer = "backbone node_embedding after the last layer, l=0 channel (128-d per atom)"
    license = "FAIR Chemistry License (OMol25 eSEN weights); MIT (fairchem-core code)"
    hub_id = "facebook/OMol25 checkpoints/esen_sm_conserving_all.pt (gated)"
    config = ESEN_SM_OMOL
    molecules_only = True

    def task_for(self, atoms: Any) -> str:
        return self.task or "omol"

    def build(self) -> Any:
        from fairchem.core.models.uma.escn_md import eSCNMDBackbone

        self._config = {**self.config, **self.config_overrides}
        return eSCNMDBackbone(regress_forces=False, direct_forces=True,
                              always_use_pbc=False, **self._config)
