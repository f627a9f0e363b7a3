"""M3GNet (Chen & Ong 2022, Nat. Comput. Sci. 2, 718): materials graph network with many-body
(three-body) interactions, as implemented by the Materials Graph Library (matgl, Ko et al.
2025), here with the hyperparameters of matgl's ``M3GNet-MatPES-PBE-v2025.1-PES`` universal
potential (Kaplan et al. 2025, MatPES PBE): 89 elements, 3 blocks, 64-d node and edge
features, 128 hidden units, smooth spherical Bessel basis (max_n 3, max_l 3), 5 A cutoff,
4 A three-body cutoff.

No matgl weights ship in the wheel (``matgl.load_model`` downloads them from the Hugging Face
hub), so the adapter builds the real ``matgl.models.M3GNet`` inside ``matgl.apps.pes.Potential``
and

- ``weights=PATH``: loads a local matgl model directory (``model.json``, ``model.pt``,
  ``state.pt``: what ``Potential.save`` writes and what the hub serves) with matgl's own
  loader, which reads both files with ``torch.load(weights_only=True)``; the directory must
  hold a ``Potential`` around an ``M3GNet`` (checked in ``model.json`` before anything is
  imported), and its own hyperparameters then apply;
- otherwise (the default while no checkpoint is configured): random init, labelled
  ``random-init`` (energy scale/offset and element references are placeholders: no energy).

Last hidden layer: the node features after the last M3GNet block (``feature_dict["gc_3"]
["node_feat"]``, 64-d per atom), i.e. what the per-atom energy readout (``final_layer``, a
gated MLP) reads. Molecules go in without a box (matgl's ASE converter takes non-periodic
structures); structures are batched as one disjoint PyG graph, without gradients (no forces
are needed). License: BSD-3-Clause (matgl code and weights).
"""

from __future__ import annotations

import json
import os
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

#: the files of a saved matgl model directory
MODEL_FILES = ("model.json", "model.pt", "state.pt")


@register_model
class M3GNetMatPESPBE(ModelAdapter):
    name = "m3gnet-matpes-pbe"
    family = "matgl"
    modality = "atoms"
    architecture = ("M3GNet (matgl, PyG): 3 blocks with three-body interactions, 64-d node/edge "
                    "features, 128 units, 5 A cutoff, 4 A three-body cutoff, 89 elements")
    layer = "node features after the last M3GNet block (gc_3 node_feat, 64-d per atom)"
    pooling = "mean over atoms"
    weights_name = RANDOM_INIT
    license = "BSD-3-Clause (matgl code and M3GNet-MatPES weights)"
    key_packages = ("matgl", "torch", "torch-geometric", "ase")
    requires_module = "matgl"
    batch_size = 16
    produces_energy = True
    seed: ClassVar[int] = 0
    hub_id: ClassVar[str] = "M3GNet-MatPES-PBE-v2025.1-PES (matgl.load_model, Hugging Face)"
    #: M3GNet-MatPES-PBE-v2025.1-PES's model.json init_args (element_types: matgl's default 89)
    hyper: ClassVar[dict[str, Any]] = {
        "dim_node_embedding": 64, "dim_edge_embedding": 64, "dim_state_embedding": 0,
        "max_n": 3, "max_l": 3, "nblocks": 3, "rbf_type": "SphericalBessel",
        "is_intensive": False, "readout_type": "weighted_atom", "task_type": "regression",
        "cutoff": 5.0, "threebody_cutoff": 4.0, "ntargets": 1, "use_smooth": True,
        "use_phi": False, "field": "node_feat", "activation_type": "swish",
        "include_state": False, "units": 128,
    }

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``config_overrides``: M3GNet arguments of the random-init model (tests build a
        small instance of the same class this way)."""
        super().__init__(weights=weights, device=device)
        self.max_atoms = max_atoms
        self.config_overrides = dict(config_overrides or {})
        self._potential: Any = None
        self._converter: Any = None
        self._elements: set[int] = set()

    @property
    def random(self) -> bool:
        return not self.weights or self.weights == RANDOM_INIT

    weights_source = "https://huggingface.co/materialyze"

    def fetch_weights(self, dest: Path) -> Path:
        """matgl's own ``load_model`` (Hugging Face download), saved as a model folder."""
        import matgl

        target = dest / self.name
        tmp = dest / f".{self.name}.tmp{os.getpid()}"
        matgl.load_model(self.hub_id.split()[0]).save(tmp)
        tmp.replace(target)
        return target

    def weights_path(self) -> Path | None:
        """The checkpoint's ``state.pt`` (the weights), for hashing."""
        if self.random:
            return None
        return Path(str(self.weights)) / "state.pt"

    def _load_local(self, path: Path) -> Any:
        missing = [f for f in MODEL_FILES if not (path / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{path} is not a matgl model directory: no {missing}")
        meta = json.loads((path / "model.json").read_text())
        inner = meta.get("kwargs", {}).get("model", {})
        if meta.get("@class") != "Potential" or inner.get("@class") != "M3GNet":
            raise ValueError(f"{path}: expected a matgl Potential around an M3GNet, found "
                             f"{meta.get('@class')}({inner.get('@class')})")
        import matgl

        # a local directory with all three files: matgl reads it without the network
        return matgl.load_model(path)

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from matgl.apps.pes import Potential
        from matgl.ext.ase import Atoms2Graph
        from matgl.models import M3GNet

        torch.manual_seed(self.seed)
        if self.random:
            potential = Potential(model=M3GNet(**{**self.hyper, **self.config_overrides}))
        else:
            potential = self._load_local(Path(str(self.weights)))
        # energies only: no autograd for forces, stresses or Hessians
        potential.calc_forces = potential.calc_stresses = potential.calc_hessian = False
        potential = frozen(potential, self.device)
        model = potential.model
        self._potential = potential
        self._converter = Atoms2Graph(element_types=model.element_types, cutoff=model.cutoff)
        from ase.data import atomic_numbers

        self._elements = {atomic_numbers[s] for s in model.element_types}

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        atoms = record.atoms
        assert atoms is not None
        unknown = sorted({int(z) for z in atoms.numbers} - self._elements) if self._elements \
            else []
        if unknown:
            return f"element(s) Z={unknown} not among M3GNet's {len(self._elements)} elements"
        return structure_problem(atoms, self.max_atoms)

    def atom_features(self, records: Sequence[Record]) -> tuple[list[np.ndarray], np.ndarray]:
        """Per-atom last-block features of each record, and the potential's total energies."""
        import torch
        from torch_geometric.data import Batch

        graphs, lattices = [], []
        for record in records:
            graph, lattice, _ = self._converter.get_graph(record.atoms)
            graphs.append(graph)
            lattices.append(torch.as_tensor(lattice).reshape(1, 3, 3))
        device = torch.device(self.device)
        batch = Batch.from_data_list(graphs).to(device)
        potential = self._potential
        with torch.no_grad():
            energy = potential(batch, torch.cat(lattices).to(device))[0]
        model = potential.model
        feats = model.feature_dict[f"gc_{model.n_blocks}"]["node_feat"]
        counts = [len(r.atoms) for r in records]
        if feats.shape[0] != sum(counts):
            raise RuntimeError(f"{feats.shape[0]} node features for {sum(counts)} atoms")
        per_atom = torch.split(feats.double().cpu(), counts)
        return [f.numpy() for f in per_atom], energy.double().cpu().numpy().reshape(-1)

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        feats, energy = self.atom_features(records)
        return EmbedOutput(mean_pool(feats), None if self.random else energy)
