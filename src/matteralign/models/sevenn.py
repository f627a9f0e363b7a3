"""SevenNet (Park et al. 2024, J. Chem. Theory Comput.): E(3)-equivariant NequIP-style
interatomic potential. SevenNet-0 (11Jul2024, MPtrj-trained, 5 interaction layers, 5 Å
cutoff) ships inside the sevenn wheel.

Last hidden layer: the node features entering ``reduce_input_to_hidden`` (the first module of
the energy readout), i.e. the 128 scalar (l=0) channels after the last interaction block and
its equivariant gate; caught with a forward pre-hook. Molecules (pbc False) and crystals both
go in as they are.

Structures are batched as one disjoint graph (torch_geometric Batch). Forces are not needed,
so the model's ``force_output`` module (autograd of the energy) is removed and the forward
pass runs without gradients; the total energy is unchanged by that.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models import hf
from matteralign.models.atoms import AtomsAdapter, outside
from matteralign.models.torch_utils import frozen
from matteralign.models.weights import find_in_site_packages
from matteralign.records import Record


def check_checkpoint_safe(path: Path) -> None:
    """Refuse a checkpoint holding anything but tensors, numpy arrays and plain containers.

    sevenn unpickles checkpoints with ``weights_only=False`` (a pickle can run code); a
    ``weights_only=True`` load that admits only numpy's array reconstruction proves it is data.
    """
    import torch

    allowed: list[Any] = [np.ndarray, np.dtype]
    allowed += [(np._core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct")] \
        if hasattr(np, "_core") else [np.core.multiarray._reconstruct]
    allowed += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    with torch.serialization.safe_globals(allowed):
        torch.load(path, map_location="cpu", weights_only=True)


class SevenNet(AtomsAdapter):
    """A SevenNet checkpoint (sevenn's own file: config + state); the released ones are
    rows of :mod:`~matteralign.models.checkpoints`."""

    family = "sevenn"
    layer = "node features into reduce_input_to_hidden (128x0e after the last interaction)"
    license = "MIT (sevenn 0.13.0 wheel: code and bundled weights)"
    key_packages = ("sevenn", "e3nn", "torch", "torch_geometric", "ase")
    requires_module = "sevenn"
    batch_size = 16
    produces_energy = True
    partly_periodic_ok = True
    hook_module: ClassVar[str] = "reduce_input_to_hidden"
    #: the fidelity a multi-fidelity checkpoint is evaluated in (None: single-fidelity)
    modal: ClassVar[str | None] = None

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None) -> None:
        super().__init__(weights=weights, device=device, max_atoms=max_atoms)
        self._cutoff = 0.0
        self._elements: set[int] = set()

    def _checkpoint_file(self) -> Path:
        path = self.weights_path() if not self.is_random_init else find_in_site_packages(
            self.weights_in_package or "")
        if path is None or not path.exists():
            raise FileNotFoundError(f"SevenNet checkpoint not found: {path}")
        return path

    def _load(self) -> None:
        hf.offline()
        import sevenn._keys as KEY  # noqa: N812 - sevenn's own spelling
        import torch
        from sevenn.checkpoint import SevenNetCheckpoint
        from sevenn.model_build import build_E3_equivariant_model

        torch.manual_seed(self.seed)
        path = self._checkpoint_file()
        check_checkpoint_safe(path)
        checkpoint = SevenNetCheckpoint(str(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no cuEquivariance/flashTP" notices
            if self.is_random_init:
                # the shipped model's hyperparameters, freshly (seeded) initialised weights
                model = build_E3_equivariant_model(checkpoint.config)
                # the non-trained normalisers (convolution denominators = average neighbour
                # count, per-element energy shift/scale) come from the checkpoint: they are
                # statistics of the training set, and left at their config default (0) the
                # convolutions divide by zero
                trained = dict(checkpoint.build_model().named_parameters())
                with torch.no_grad():
                    for key, param in model.named_parameters():
                        if not trained[key].requires_grad:
                            param.copy_(trained[key])
            else:
                model = checkpoint.build_model()
        if bool(model.modal_map) != bool(self.modal):
            raise ValueError(f"{path}: multi-fidelity modal_map={model.modal_map} but "
                             f"{self.name} evaluates modal={self.modal!r}")
        if self.modal and self.modal not in model.modal_map:
            raise ValueError(f"{path}: modal {self.modal!r} not in {sorted(model.modal_map)}")
        if "force_output" in model._modules:
            model.delete_module_by_key("force_output")
        model.set_is_batch_data(True)
        model = frozen(model, self.device)
        self.hook(model._modules[self.hook_module], inputs=True, key=KEY.NODE_FEATURE)
        self._model = model
        self._cutoff = float(checkpoint.config[KEY.CUTOFF])
        self._elements = {int(z) for z in checkpoint.config[KEY.TYPE_MAP]}

    def check_atoms(self, atoms: Any) -> str | None:
        unknown = outside(atoms, self._elements) if self._elements else []
        if unknown:
            return f"element(s) Z={unknown} not in {self.weights_label()}'s training elements"
        return None

    def atom_features(self, records: Sequence[Record]) -> tuple[list[np.ndarray], np.ndarray]:
        """Per-atom last-layer features of each record, and SevenNet's total energies (eV)."""
        import sevenn._keys as KEY  # noqa: N812
        import torch
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph
        from torch_geometric.data import Batch

        graphs = [AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(r.atoms, self._cutoff))
                  for r in records]
        if self.modal:  # per graph, as sevenn's training batches carry it (eval_modal_map)
            for graph in graphs:
                graph[KEY.DATA_MODALITY] = self.modal
        batch = Batch.from_data_list(graphs).to(torch.device(self.device))
        self.start_capture()
        with torch.no_grad():
            output = self._model(batch)
        feats = self.take_capture([len(r.atoms) for r in records])
        energy = output[KEY.PRED_TOTAL_ENERGY].detach().double().cpu().numpy().reshape(-1)
        return feats, energy
