"""CHGNet (Deng et al. 2023, Nat. Mach. Intell.): crystal graph network with atom, bond and
angle message passing, pretrained on MPtrj. The 0.3.0 weights ship inside the chgnet wheel.

Last hidden layer: the per-atom output of ``atom_conv_layers[-1]``, caught with a forward
hook. CHGNet's own ``return_atom_feas`` gives the features one conv layer earlier (the ones
its magnetic-moment head reads), so it is not used. After the hooked layer CHGNet applies a
LayerNorm (``readout_norm``) and the per-atom energy MLP; neither is part of the embedding.

CHGNet only takes periodic structures: a molecule (no periodic direction) is centred in an
orthorhombic box whose edges are the molecule's extent plus 20 Å (``base.boxed``), so periodic
images are further apart than CHGNet's 6 Å graph cutoff and do not interact.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from matteralign.models.base import (
    RANDOM_INIT,
    EmbedOutput,
    ModelAdapter,
    OutputKeeper,
    boxed,
    find_in_site_packages,
    frozen,
    mean_pool,
    register_model,
    structure_problem,
)
from matteralign.records import Record

#: CHGNet's atom embedding has one row per element H..Pu
MAX_Z = 94


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)


@register_model
class CHGNet030(ModelAdapter):
    name = "chgnet-0.3.0"
    family = "chgnet"
    modality = "atoms"
    architecture = "CHGNet: crystal graph network (atom/bond/angle convolutions), 412k params"
    layer = "atom_conv_layers[-1] output (per-atom, 64-d, before readout_norm)"
    pooling = "mean over atoms"
    weights_name = "CHGNet 0.3.0 (MPtrj)"
    weights_in_package = "chgnet/pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar"
    license = "BSD-3-Clause-LBNL (\"Modified BSD\", chgnet wheel: code and weights)"
    key_packages = ("chgnet", "torch", "pymatgen", "ase")
    requires_module = "chgnet"
    batch_size = 16
    produces_energy = True
    #: checkpoint version passed to CHGNet (0.2.0 needs mlp_out_bias=True, see chgnet.load)
    version: ClassVar[str] = "0.3.0"
    seed: ClassVar[int] = 0

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None) -> None:
        super().__init__(weights=weights, device=device)
        self.max_atoms = max_atoms
        self._model: Any = None
        self._captured: list[Any] = []

    def _checkpoint(self) -> dict[str, Any]:
        import torch

        path = self.weights_path() if self.weights != RANDOM_INIT else find_in_site_packages(
            self.weights_in_package or "")
        if path is None or not path.exists():
            raise FileNotFoundError(f"CHGNet checkpoint not found: {path}")
        # the file holds only tensors and plain containers: no pickled code needed
        state = torch.load(path, map_location="cpu", weights_only=True)
        return state["model"]

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from chgnet.model import CHGNet

        _seed(self.seed)
        dct = self._checkpoint()
        # as chgnet's own CHGNet.load does for the shipped versions; a user checkpoint keeps
        # the hyperparameters saved with it
        kwargs: dict[str, Any] = {}
        if not self.weights or self.weights == RANDOM_INIT:
            kwargs = {"mlp_out_bias": self.version == "0.2.0", "version": self.version}
        quiet = contextlib.redirect_stdout(io.StringIO())  # CHGNet prints a banner on init
        if self.weights == RANDOM_INIT:
            # the shipped model's hyperparameters, freshly (seeded) initialised parameters
            with quiet:
                model = CHGNet(**{**dct["model_args"], **kwargs})
        else:
            with quiet:
                model = CHGNet.from_dict(dct, **kwargs)
        model = frozen(model, self.device)
        model.atom_conv_layers[-1].register_forward_hook(OutputKeeper(self._captured))
        self._model = model

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        atoms = record.atoms
        assert atoms is not None
        if atoms.pbc.any() and not atoms.pbc.all():
            return "partly periodic structure (CHGNet needs 3D periodic or non-periodic)"
        high = sorted({int(z) for z in atoms.numbers if z > MAX_Z or z < 1})
        if high:
            return f"element(s) Z={high} outside CHGNet's element embedding (Z 1-{MAX_Z})"
        too_big = structure_problem(atoms, self.max_atoms, partly_periodic_ok=True)
        if too_big:
            return too_big
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
        self._captured.clear()
        device = torch.device(self.device)
        with torch.no_grad():
            prediction = model([g.to(device) for g in graphs], task="e")
        if len(self._captured) != 1:
            raise RuntimeError(f"expected one hooked forward pass, got {len(self._captured)}")
        counts = prediction["atoms_per_graph"].cpu().tolist()
        feats = torch.split(self._captured.pop(), counts)
        energy = prediction["e"].double().cpu().numpy().reshape(-1)
        if model.is_intensive:  # CHGNet predicts eV/atom
            energy = energy * np.asarray(counts, dtype=np.float64)
        return [f.double().cpu().numpy() for f in feats], energy

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        feats, energy = self.atom_features(records)
        embeddings = mean_pool(feats)
        # a randomly initialised network's "energy" means nothing: leave it out
        return EmbedOutput(embeddings, None if self.weights == RANDOM_INIT else energy)


@register_model
class CHGNet020(CHGNet030):
    """CHGNet 0.2.0: the first MPtrj release (kept by chgnet for backward compatibility);
    same architecture, with a bias in the energy MLP's output layer."""

    name = "chgnet-0.2.0"
    architecture = "CHGNet: crystal graph network (atom/bond/angle convolutions), 400k params"
    weights_name = "CHGNet 0.2.0 (MPtrj)"
    weights_in_package = "chgnet/pretrained/0.2.0/chgnet_0.2.0_e30f77s348m32.pth.tar"
    version = "0.2.0"


@register_model
class CHGNetR2SCAN(CHGNet030):
    """CHGNet r2SCAN: 0.3.0 transfer-learned on MP r2SCAN calculations (energies are r2SCAN
    total energies, on a different scale from the PBE-trained models)."""

    name = "chgnet-r2scan"
    weights_name = "CHGNet r2SCAN (0.3.0 transfer-learned on MP-r2SCAN)"
    weights_in_package = (
        "chgnet/pretrained/r2scan/chgnet_r2scan_transfer_learning_e15f36s161m23.pth.tar")
    version = "r2scan"
