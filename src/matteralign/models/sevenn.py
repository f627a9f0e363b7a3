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

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.base import (
    RANDOM_INIT,
    EmbedOutput,
    ModelAdapter,
    find_in_site_packages,
    frozen,
    mean_pool,
    register_model,
    structure_problem,
)
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


@register_model
class SevenNet0(ModelAdapter):
    name = "sevennet-0"
    family = "sevenn"
    modality = "atoms"
    architecture = ("SevenNet (NequIP-style E(3)-equivariant message passing), 5 interaction "
                    "layers, lmax 2, 5 A cutoff, 842k params")
    layer = "node features into reduce_input_to_hidden (128x0e after the last interaction)"
    pooling = "mean over atoms"
    weights_name = "SevenNet-0 (11Jul2024, MPtrj)"
    weights_in_package = (
        "sevenn/pretrained_potentials/SevenNet_0__11Jul2024/checkpoint_sevennet_0.pth")
    license = "MIT (sevenn 0.13.0 wheel: code and bundled weights)"
    key_packages = ("sevenn", "e3nn", "torch", "torch_geometric", "ase")
    requires_module = "sevenn"
    batch_size = 16
    produces_energy = True
    seed: ClassVar[int] = 0
    hook_module: ClassVar[str] = "reduce_input_to_hidden"
    #: the fidelity a multi-fidelity checkpoint is evaluated in (None: single-fidelity)
    modal: ClassVar[str | None] = None

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None) -> None:
        super().__init__(weights=weights, device=device)
        self.max_atoms = max_atoms
        self._model: Any = None
        self._cutoff = 0.0
        self._elements: set[int] = set()
        self._captured: list[Any] = []

    def _checkpoint_file(self) -> Path:
        path = self.weights_path() if self.weights != RANDOM_INIT else find_in_site_packages(
            self.weights_in_package or "")
        if path is None or not path.exists():
            raise FileNotFoundError(f"SevenNet checkpoint not found: {path}")
        return path

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
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
            if self.weights == RANDOM_INIT:
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
        model._modules[self.hook_module].register_forward_pre_hook(self._hook)
        self._model = model
        self._cutoff = float(checkpoint.config[KEY.CUTOFF])
        self._elements = {int(z) for z in checkpoint.config[KEY.TYPE_MAP]}

    def _hook(self, module: Any, inputs: Any) -> None:
        import sevenn._keys as KEY  # noqa: N812

        self._captured.append(inputs[0][KEY.NODE_FEATURE].detach())

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        atoms = record.atoms
        assert atoms is not None
        unknown = sorted({int(z) for z in atoms.numbers} - self._elements) if self._elements \
            else []
        if unknown:
            return f"element(s) Z={unknown} not in {self.weights_label()}'s training elements"
        return structure_problem(atoms, self.max_atoms, partly_periodic_ok=True)

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
        self._captured.clear()
        with torch.no_grad():
            output = self._model(batch)
        if len(self._captured) != 1:
            raise RuntimeError(f"expected one hooked forward pass, got {len(self._captured)}")
        counts = [len(r.atoms) for r in records]
        feats = torch.split(self._captured.pop(), counts)
        energy = output[KEY.PRED_TOTAL_ENERGY].detach().double().cpu().numpy().reshape(-1)
        return [f.double().cpu().numpy() for f in feats], energy

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        feats, energy = self.atom_features(records)
        embeddings = mean_pool(feats)
        # a randomly initialised network's "energy" means nothing: leave it out
        return EmbedOutput(embeddings, None if self.weights == RANDOM_INIT else energy)


@register_model
class SevenNet0May(SevenNet0):
    """SevenNet-0 as first released (22May2024): same architecture, earlier training run."""

    name = "sevennet-0-22may2024"
    weights_name = "SevenNet-0 (22May2024, MPtrj)"
    weights_in_package = (
        "sevenn/pretrained_potentials/SevenNet_0__22May2024/checkpoint_sevennet_0.pth")


@register_model
class SevenNetL3i5(SevenNet0):
    """SevenNet-l3i5: lmax 3, 5 interaction layers (MPtrj); more accurate, slower."""

    name = "sevennet-l3i5"
    architecture = ("SevenNet (NequIP-style E(3)-equivariant message passing), 5 interaction "
                    "layers, lmax 3, 5 A cutoff, 1.17M params")
    weights_name = "SevenNet-l3i5 (MPtrj)"
    weights_in_package = "sevenn/pretrained_potentials/SevenNet_l3i5/checkpoint_l3i5.pth"


@register_model
class SevenNetMF0(SevenNet0):
    """SevenNet-MF-0: multi-fidelity SevenNet (PBE/PBE+U and r2SCAN data of the MP), evaluated
    in its PBE modal (``modal="PBE"``, the one comparable with the other MPtrj models)."""

    name = "sevennet-mf-0"
    architecture = ("SevenNet multi-fidelity (fidelity-dependent linear layers), 5 interaction "
                    "layers, lmax 2, 5 A cutoff; evaluated in modal PBE")
    layer = ("node features into reduce_input_to_hidden (128x0e after the last interaction, "
             "modal PBE)")
    weights_name = "SevenNet-MF-0 (modal PBE)"
    weights_in_package = "sevenn/pretrained_potentials/SevenNet_MF_0/checkpoint_sevennet_mf_0.pth"
    modal = "PBE"
