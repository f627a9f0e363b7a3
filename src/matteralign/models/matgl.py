"""matgl's universal potentials (M3GNet, matgl's CHGNet) inside ``matgl.apps.pes.Potential``:
no weights in the wheel, so the real model runs at random init or from a local matgl model
folder (read with matgl's own loader). The embedding is the last block's node (atom)
features, what the energy readout reads. Details: docs/models.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models import hf
from matteralign.models.atoms import AtomsAdapter, outside
from matteralign.models.base import register_model
from matteralign.models.torch_utils import frozen, per_atom
from matteralign.models.weights import RANDOM_INIT
from matteralign.records import Record

#: the files of a saved matgl model directory
MODEL_FILES = ("model.json", "model.pt", "state.pt")


class MatglPotentialAdapter(AtomsAdapter):
    """A matgl ``Potential`` around one of matgl's model classes (see the module docstring)."""

    family = "matgl"
    #: a checkpoint folder is a valid ``weights:`` path (not only a single file)
    weights_folder_ok = True
    weights_name = RANDOM_INIT
    key_packages = ("matgl", "torch", "torch-geometric", "ase")
    requires_module = "matgl"
    batch_size = 16
    produces_energy = True
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
        super().__init__(weights=weights, device=device, max_atoms=max_atoms)
        self.config_overrides = dict(config_overrides or {})
        self._potential: Any = None
        self._converter: Any = None
        self._elements: set[int] = set()

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
        if self.is_random_init:
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
        hf.offline()
        import matgl.models
        import torch
        from matgl.apps.pes import Potential
        from matgl.ext.ase import Atoms2Graph

        torch.manual_seed(self.seed)
        if self.is_random_init:
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

    def check_atoms(self, atoms: Any) -> str | None:
        unknown = outside(atoms, self._elements) if self._elements else []
        if unknown:
            return (f"element(s) Z={unknown} not among {self.model_class}'s "
                    f"{len(self._elements)} elements")
        return None

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
        return per_atom(feats, [len(r.atoms) for r in records]), \
            energy.double().cpu().numpy().reshape(-1)


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
