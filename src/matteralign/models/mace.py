"""MACE-MP-0 (Batatia et al. 2023, arXiv:2401.00096): MACE higher-order equivariant message
passing (Batatia et al. 2022) trained on MPtrj, here the "medium" model: 2 residual
interactions, hidden irreps 128x0e+128x1o, correlation order 3, 6 A cutoff, 89 elements;
4,688,656 parameters, the published 4.69M.

No MACE weights ship in any wheel (mace_mp() downloads them from GitHub), so the adapter
builds the real ``mace.modules.ScaleShiftMACE`` with MACE-MP-0 medium's hyperparameters and

- ``weights=PATH``: loads a local checkpoint. A ``state_dict`` file (``torch.save(
  model.state_dict())``) is read with ``torch.load(weights_only=True)`` into that
  architecture. The ``.model`` files that mace_mp() downloads are whole pickled modules (a
  pickle can run code): they load only with ``allow_pickle=True`` (the model's config entry
  must say so), and their own hyperparameters then apply.
- otherwise (the default while no checkpoint is configured): random init, labelled
  ``random-init``. The training-set statistics (per-element E0, average neighbour count,
  energy scale/shift) are then placeholders: E0 = 0, 61.96 neighbours (reported for
  MACE-MP-0), scale 1, shift 0.

Last hidden layer: the invariant node features after the last interaction block, i.e. the
output of ``products[-1]`` (MACE keeps only the 128 l=0 channels in its last layer), caught
with a forward hook; what MACE's ``get_descriptors(invariants_only=True)[:, -128:]`` returns.
Structures are batched into one disjoint graph with mace's own data pipeline, float64.
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

#: MPtrj's 89 elements: H..Bi (1-83) and Ac..Pu (89-94)
MP_ELEMENTS = list(range(1, 84)) + list(range(89, 95))


@register_model
class MACEMP0Medium(ModelAdapter):
    name = "mace-mp-0-medium"
    family = "mace"
    modality = "atoms"
    architecture = ("MACE (ScaleShiftMACE): 2 interactions, hidden 128x0e+128x1o, max_ell 3, "
                    "correlation 3, 6 A cutoff, 89 elements, 4.69M params (MACE-MP-0 medium)")
    layer = "products[-1] output: 128 invariant (0e) node features after the last interaction"
    pooling = "mean over atoms"
    weights_name = RANDOM_INIT
    license = "MIT (mace-torch code and MACE-MP-0 weights)"
    key_packages = ("mace-torch", "e3nn", "torch", "ase")
    requires_module = "mace"
    batch_size = 16
    produces_energy = True
    seed: ClassVar[int] = 0
    hub_id: ClassVar[str] = "mace_mp(model='medium') (github.com/ACEsuit/mace-mp)"
    #: MACE-MP-0 medium's hyperparameters (mace-mp README / the .model's own config)
    hyper: ClassVar[dict[str, Any]] = {
        "r_max": 6.0, "num_bessel": 10, "num_polynomial_cutoff": 5, "max_ell": 3,
        "num_interactions": 2, "hidden_irreps": "128x0e+128x1o", "MLP_irreps": "16x0e",
        "correlation": 3, "avg_num_neighbors": 61.96, "radial_type": "bessel",
    }

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None, allow_pickle: bool = False,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``allow_pickle``: let a whole-module ``.model`` checkpoint be unpickled (runs its
        code: only for files you trust). ``config_overrides``: hyperparameters of the
        random-init model (tests build a small instance of the same class this way)."""
        super().__init__(weights=weights, device=device)
        self.max_atoms = max_atoms
        self.allow_pickle = allow_pickle
        self.config_overrides = dict(config_overrides or {})
        self._model: Any = None
        self._z_table: Any = None
        self._cutoff = 0.0
        self._captured: list[Any] = []

    def build(self) -> Any:
        """The architecture with fresh (seeded) parameters."""
        import torch

        _import_mace()
        from e3nn import o3
        from mace import modules

        hyper = {**self.hyper, **self.config_overrides}
        zs = list(hyper.pop("atomic_numbers", MP_ELEMENTS))
        block = modules.interaction_classes
        return modules.ScaleShiftMACE(
            r_max=hyper["r_max"], num_bessel=hyper["num_bessel"],
            num_polynomial_cutoff=hyper["num_polynomial_cutoff"], max_ell=hyper["max_ell"],
            interaction_cls=block["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=block["RealAgnosticResidualInteractionBlock"],
            num_interactions=hyper["num_interactions"], num_elements=len(zs),
            hidden_irreps=o3.Irreps(hyper["hidden_irreps"]),
            MLP_irreps=o3.Irreps(hyper["MLP_irreps"]), gate=torch.nn.functional.silu,
            atomic_energies=np.zeros(len(zs)), avg_num_neighbors=hyper["avg_num_neighbors"],
            atomic_numbers=zs, correlation=hyper["correlation"],
            radial_type=hyper["radial_type"], atomic_inter_scale=1.0, atomic_inter_shift=0.0)

    def _load(self) -> None:
        import torch

        _import_mace()
        torch.manual_seed(self.seed)
        with _default_dtype(torch.float64):
            if not self.weights or self.weights == RANDOM_INIT:
                model = self.build()
            else:
                model = self._from_file(Path(self.weights))
        model = frozen(model.double(), self.device)
        model.products[-1].register_forward_hook(self._hook)
        self._model = model
        from mace.tools import AtomicNumberTable

        self._z_table = AtomicNumberTable([int(z) for z in model.atomic_numbers])
        self._cutoff = float(model.r_max)

    def _from_file(self, path: Path) -> Any:
        import torch

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a pickled module: refused by weights_only
            if not self.allow_pickle:
                raise ValueError(
                    f"{path} is not a plain state_dict (weights_only load failed: "
                    f"{str(error).splitlines()[0][:200]}); a whole-module .model file runs "
                    "code when unpickled: set allow_pickle: true in this model's config entry "
                    "only if you trust the file, or convert it to a state_dict") from None
            return torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model = self.build()
        model.load_state_dict(state)
        return model

    def _hook(self, module: Any, inputs: Any, output: Any) -> None:
        self._captured.append(output.detach())

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        atoms = record.atoms
        assert atoms is not None
        known = set(self._z_table.zs) if self._z_table is not None else set(MP_ELEMENTS)
        unknown = sorted({int(z) for z in atoms.numbers} - known)
        if unknown:
            return f"element(s) Z={unknown} outside the model's {len(known)} elements"
        return structure_problem(atoms, self.max_atoms)

    def atom_features(self, records: Sequence[Record]) -> tuple[list[np.ndarray], np.ndarray]:
        import torch
        from mace import data as mace_data
        from mace.tools.torch_geometric.batch import Batch

        with _default_dtype(torch.float64):
            graphs = [mace_data.AtomicData.from_config(
                mace_data.config_from_atoms(r.atoms), z_table=self._z_table,
                cutoff=self._cutoff) for r in records]
        batch = Batch.from_data_list(graphs).to(torch.device(self.device))
        self._captured.clear()
        with torch.no_grad():
            out = self._model(batch.to_dict(), compute_force=False)
        if len(self._captured) != 1:
            raise RuntimeError(f"expected one hooked forward pass, got {len(self._captured)}")
        counts = [len(r.atoms) for r in records]
        feats = torch.split(self._captured.pop(), counts)
        energy = out["energy"].detach().double().cpu().numpy().reshape(-1)
        return [f.double().cpu().numpy() for f in feats], energy

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        feats, energy = self.atom_features(records)
        embeddings = mean_pool(feats)
        random = not self.weights or self.weights == RANDOM_INIT
        return EmbedOutput(embeddings, None if random else energy)


def _import_mace() -> None:
    """Import mace and e3nn 0.4.4 without weakening ``torch.load`` for the rest of the process.

    e3nn 0.4.4 unpickles its own constants (they hold ``slice`` objects) on import, which
    torch >= 2.6 refuses by default; mace works around that by setting
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 for the whole process on import. Here e3nn's file is
    admitted with ``slice`` allow-listed instead, and mace's variable is removed again (it
    only affects torch.load calls that do not pass weights_only; the adapter always does).
    """
    import os

    import torch

    before = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    with torch.serialization.safe_globals([slice]):
        import e3nn.o3  # noqa: F401
        import mace  # noqa: F401
    if before is None:
        os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    else:
        os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = before


class _default_dtype:  # noqa: N801 - used as a context manager
    """Temporarily set torch's default dtype (MACE builds and featurises in it)."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype

    def __enter__(self) -> None:
        import torch

        self.previous = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_default_dtype(self.previous)
