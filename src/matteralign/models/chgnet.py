"""CHGNet (chgnet wheel, weights shipped): crystal graph network with atom, bond and angle
message passing. The embedding is the output of the last atom conv layer (before
``readout_norm``); molecules go in a vacuum box (``geometry.boxed``), as CHGNet takes
periodic cells only. Details and checks: docs/models.md.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from matteralign.models import hf
from matteralign.models.atoms import AtomsAdapter, outside
from matteralign.models.geometry import boxed
from matteralign.models.torch_utils import frozen
from matteralign.models.weights import find_in_site_packages
from matteralign.records import Record

#: CHGNet's atom embedding has one row per element H..Pu
MAX_Z = 94


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)


class CHGNet(AtomsAdapter):
    """CHGNet from a checkpoint of chgnet's own layout (``model_args`` + state); the
    released checkpoints are rows of :mod:`~matteralign.models.checkpoints`."""

    family = "chgnet"
    layer = "atom_conv_layers[-1] output (per-atom, 64-d, before readout_norm)"
    license = "BSD-3-Clause-LBNL (\"Modified BSD\", chgnet wheel: code and weights)"
    key_packages = ("chgnet", "torch", "pymatgen", "ase")
    requires_module = "chgnet"
    batch_size = 16
    produces_energy = True
    #: its own reason for partly periodic cells (below)
    partly_periodic_ok = True
    #: checkpoint version passed to CHGNet (0.2.0 needs mlp_out_bias=True, see chgnet.load)
    version: ClassVar[str] = ""

    def _checkpoint(self) -> dict[str, Any]:
        import torch

        path = self.weights_path() if not self.is_random_init else find_in_site_packages(
            self.weights_in_package or "")
        if path is None or not path.exists():
            raise FileNotFoundError(f"CHGNet checkpoint not found: {path}")
        # the file holds only tensors and plain containers: no pickled code needed
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state["model"]

    def _load(self) -> None:
        hf.offline()
        from chgnet.model import CHGNet

        _seed(self.seed)
        dct = self._checkpoint()
        # as chgnet's own CHGNet.load does for the shipped versions; a user checkpoint keeps
        # the hyperparameters saved with it
        kwargs: dict[str, Any] = {}
        if self.resolved.kind in ("shipped", "random"):
            kwargs = {"mlp_out_bias": self.version == "0.2.0", "version": self.version}
        quiet = contextlib.redirect_stdout(io.StringIO())  # CHGNet prints a banner on init
        if self.is_random_init:
            # the shipped model's hyperparameters, freshly (seeded) initialised parameters
            with quiet:
                model = CHGNet(**{**dct["model_args"], **kwargs})
        else:
            with quiet:
                model = CHGNet.from_dict(dct, **kwargs)
        model = frozen(model, self.device)
        self.hook(model.atom_conv_layers[-1])
        self._model = model

    def check_atoms(self, atoms: Any) -> str | None:
        if atoms.pbc.any() and not atoms.pbc.all():
            return "partly periodic structure (CHGNet needs 3D periodic or non-periodic)"
        high = outside(atoms, range(1, MAX_Z + 1))
        if high:
            return f"element(s) Z={high} outside CHGNet's element embedding (Z 1-{MAX_Z})"
        if len(atoms) == 1 and not atoms.pbc.any():
            return "single isolated atom: CHGNet needs at least one neighbour within 6 A"
        return None

    def atom_features(self, records: Sequence[Record]) -> tuple[list[np.ndarray], np.ndarray]:
        """Per-atom last-layer features of each record, and CHGNet's total energies (eV)."""
        import torch
        from pymatgen.core import Lattice, Structure

        model = self._model
        graphs = []
        for record in records:
            atoms = boxed(record.atoms)
            structure = Structure(Lattice(atoms.cell.array), atoms.get_chemical_symbols(),
                                  atoms.positions, coords_are_cartesian=True)
            # raises ValueError for isolated atoms: the driver masks that structure
            graphs.append(model.graph_converter(structure, graph_id=record.id))
        self.start_capture()
        device = torch.device(self.device)
        with torch.no_grad():
            prediction = model([g.to(device) for g in graphs], task="e")
        counts = prediction["atoms_per_graph"].cpu().tolist()
        feats = self.take_capture(counts)
        energy = prediction["e"].double().cpu().numpy().reshape(-1)
        if model.is_intensive:  # CHGNet predicts eV/atom
            energy = energy * np.asarray(counts, dtype=np.float64)
        return feats, energy
