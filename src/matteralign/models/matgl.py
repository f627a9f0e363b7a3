"""Universal potentials of the Materials Graph Library (matgl, Ko et al. 2025, PyG backend),
behind one adapter base:

- M3GNet (Chen & Ong 2022, Nat. Comput. Sci. 2, 718), many-body graph network, with the
  hyperparameters of matgl's ``M3GNet-MatPES-PBE-v2025.1-PES`` (Kaplan et al. 2025, MatPES
  PBE): 89 elements, 3 blocks, 64-d node and edge features, 128 hidden units, smooth
  spherical Bessel basis (max_n 3, max_l 3), 5 A cutoff, 4 A three-body cutoff.
  Last hidden layer: node features after the last block (``feature_dict["gc_3"]
  ["node_feat"]``, 64-d per atom), what the per-atom energy readout reads.
- CHGNet (Deng et al. 2023, Nat. Mach. Intell. 5, 1031) as re-implemented in matgl, with
  matgl's ``CHGNet`` defaults (4 blocks, 64-d atom/bond/angle features, 6 A atom-graph and
  3 A bond-graph cutoffs, max_n 9, max_f 4, 94 elements H-Pu). These defaults are *assumed*
  to be those of matgl's released ``CHGNet-MatPES-PBE-2025.2.10-2.7M-PES``; a local
  checkpoint brings its own hyperparameters. Last hidden layer: atom features after the
  last atom-graph block (``feature_dict["gc_4"]["atom_feat"]``, 64-d per atom): as for the
  original CHGNet package, the true last layer, one block after the magmom head's input.

No matgl weights ship in the wheel (``matgl.load_model`` downloads them from the Hugging Face
hub), so each adapter builds the real matgl model inside ``matgl.apps.pes.Potential`` and

- ``weights=PATH``: loads a local matgl model directory (``model.json``, ``model.pt``,
  ``state.pt``: what ``Potential.save`` writes and what the hub serves) with matgl's own
  loader, which reads both files with ``torch.load(weights_only=True)``; the directory must
  hold a ``Potential`` around the adapter's model class (checked in ``model.json`` before
  anything is imported);
- otherwise (the default while no checkpoint is configured): random init, labelled
  ``random-init`` (energy scale/offset and element references are placeholders: no energy).

Molecules go in without a box (matgl's ASE converter takes non-periodic structures);
structures are batched as one disjoint PyG graph, without gradients (no forces are needed).
License: BSD-3-Clause (matgl code and weights).
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


class MatglPotentialAdapter(ModelAdapter):
    """A matgl ``Potential`` around one of matgl's model classes (see the module docstring)."""

    family = "matgl"
    #: a checkpoint folder is a valid ``weights:`` path (not only a single file)
    weights_folder_ok = True
    modality = "atoms"
    pooling = "mean over atoms"
    weights_name = RANDOM_INIT
    key_packages = ("matgl", "torch", "torch-geometric", "ase")
    requires_module = "matgl"
    batch_size = 16
    produces_energy = True
    seed: ClassVar[int] = 0
    hub_id: ClassVar[str] = ""
    #: the matgl.models class and the init arguments of the random-init instance
    model_class: ClassVar[str] = ""
    hyper: ClassVar[dict[str, Any]] = {}
    #: the ``feature_dict`` field of the last block's per-atom features
    feature_field: ClassVar[str] = ""

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
        if meta.get("@class") != "Potential" or inner.get("@class") != self.model_class:
            raise ValueError(f"{path}: expected a matgl Potential whose model is "
                             f"{self.model_class}, found {meta.get('@class')}"
                             f"({inner.get('@class')})")
        import matgl

        # a local directory with all three files: matgl reads it without the network
        return matgl.load_model(path)

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import matgl.models
        import torch
        from matgl.apps.pes import Potential
        from matgl.ext.ase import Atoms2Graph

        torch.manual_seed(self.seed)
        if self.random:
            model_cls = getattr(matgl.models, self.model_class)
            potential = Potential(model=model_cls(**{**self.hyper, **self.config_overrides}))
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
            return (f"element(s) Z={unknown} not among {self.model_class}'s "
                    f"{len(self._elements)} elements")
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
        feats = model.feature_dict[f"gc_{model.n_blocks}"][self.feature_field]
        counts = [len(r.atoms) for r in records]
        if feats.shape[0] != sum(counts):
            raise RuntimeError(f"{feats.shape[0]} node features for {sum(counts)} atoms")
        per_atom = torch.split(feats.double().cpu(), counts)
        return [f.numpy() for f in per_atom], energy.double().cpu().numpy().reshape(-1)

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        feats, energy = self.atom_features(records)
        return EmbedOutput(mean_pool(feats), None if self.random else energy)


@register_model
class M3GNetMatPESPBE(MatglPotentialAdapter):
    name = "m3gnet-matpes-pbe"
    architecture = ("M3GNet (matgl, PyG): 3 blocks with three-body interactions, 64-d node/edge "
                    "features, 128 units, 5 A cutoff, 4 A three-body cutoff, 89 elements")
    layer = "node features after the last M3GNet block (gc_3 node_feat, 64-d per atom)"
    license = "BSD-3-Clause (matgl code and M3GNet-MatPES weights)"
    hub_id = "M3GNet-MatPES-PBE-v2025.1-PES (matgl.load_model, Hugging Face)"
    model_class = "M3GNet"
    feature_field = "node_feat"
    #: M3GNet-MatPES-PBE-v2025.1-PES's model.json init_args (element_types: matgl's default 89)
    hyper = {
        "dim_node_embedding": 64, "dim_edge_embedding": 64, "dim_state_embedding": 0,
        "max_n": 3, "max_l": 3, "nblocks": 3, "rbf_type": "SphericalBessel",
        "is_intensive": False, "readout_type": "weighted_atom", "task_type": "regression",
        "cutoff": 5.0, "threebody_cutoff": 4.0, "ntargets": 1, "use_smooth": True,
        "use_phi": False, "field": "node_feat", "activation_type": "swish",
        "include_state": False, "units": 128,
    }


@register_model
class CHGNetMatgl(MatglPotentialAdapter):
    name = "chgnet-matgl-matpes-pbe"
    architecture = ("CHGNet (matgl re-implementation, PyG): 4 atom-graph blocks with a bond "
                    "(line) graph, 64-d atom/bond/angle features, 6 A / 3 A cutoffs, "
                    "94 elements")
    layer = ("atom features after the last atom-graph block (gc_4 atom_feat, 64-d per atom; "
             "one block after the magmom head's input)")
    license = "BSD-3-Clause (matgl code and CHGNet-MatPES weights)"
    hub_id = "CHGNet-MatPES-PBE-2025.2.10-2.7M-PES (matgl.load_model, Hugging Face)"
    model_class = "CHGNet"
    feature_field = "atom_feat"
    #: matgl's CHGNet class defaults, assumed equal to the released MatPES model's (see the
    #: module docstring); a local checkpoint brings its own
    hyper = {}
