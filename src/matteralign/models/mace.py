"""MACE (mace-torch ``ScaleShiftMACE``): MACE-MP-0 medium and the three MACE-OFF23 sizes (rows
of :mod:`~matteralign.models.checkpoints`). No weights ship in a wheel, so the real
architecture runs at random init, from a state_dict, or from a downloaded ``.model`` pickle
only with ``allow_pickle``. The embedding is the l=0 output of ``products[-1]`` (what
``get_descriptors`` returns), in float64. Hyperparameter sources: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.atoms import AtomsAdapter, outside
from matteralign.models.torch_utils import frozen, load_torch_checkpoint
from matteralign.models.weights import RANDOM_INIT
from matteralign.records import Record

#: MPtrj's 89 elements: H..Bi (1-83) and Ac..Pu (89-94)
MP_ELEMENTS = list(range(1, 84)) + list(range(89, 95))
#: MACE-OFF23's ten elements, in the order of its released models: H C N O F P S Cl Br I
OFF_ELEMENTS = [1, 6, 7, 8, 9, 15, 16, 17, 35, 53]
#: SPICE isolated-atom energies (eV) that MACE-OFF23 was trained with (--E0s of
#: mace_off23/train_scripts/*.sh in github.com/ACEsuit/mace-off), by atomic number
OFF_E0S: dict[int, float] = {
    1: -13.571964772646918, 6: -1030.5671648271828, 7: -1486.3750255780376,
    8: -2043.933693071156, 9: -2715.318528602957, 15: -9287.407133426237,
    16: -10834.4844708122, 17: -12522.649269035726, 35: -70045.28385080204,
    53: -8102.524593409054,
}
#: placeholder average neighbour count of the random-init MACE-OFF models (a training-set
#: statistic that is not published; a checkpoint brings its own)
MACE_OFF_AVG_NEIGHBORS = 10.0


class MACE(AtomsAdapter):
    """A ``mace.modules.ScaleShiftMACE`` built from ``hyper`` (or loaded from a checkpoint);
    the embedding is the hooked output of ``products[-1]``. The released models are rows of
    :mod:`~matteralign.models.checkpoints`."""

    family = "mace"
    weights_name = RANDOM_INIT
    key_packages = ("mace-torch", "e3nn", "torch", "ase")
    requires_module = "mace"
    batch_size = 16
    produces_energy = True
    hub_id: ClassVar[str] = ""
    #: the model's elements (atomic numbers) when no checkpoint says otherwise
    elements: ClassVar[list[int]] = MP_ELEMENTS
    #: what the elements are called in a masking reason
    elements_label: ClassVar[str] = ""
    hyper: ClassVar[dict[str, Any]] = {}

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None, allow_pickle: bool = False,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``allow_pickle``: let a whole-module ``.model`` checkpoint be unpickled (runs its
        code: only for files you trust). ``config_overrides``: hyperparameters of the
        random-init model (tests build a small instance of the same class this way)."""
        super().__init__(weights=weights, device=device, max_atoms=max_atoms)
        self.allow_pickle = allow_pickle
        self.config_overrides = dict(config_overrides or {})
        self._z_table: Any = None
        self._cutoff = 0.0

    def build(self) -> Any:
        """The architecture with fresh (seeded) parameters."""
        import torch

        _import_mace()
        from e3nn import o3
        from mace import modules

        hyper = {**self.hyper, **self.config_overrides}
        zs = list(hyper.pop("atomic_numbers", self.elements))
        e0s = hyper.get("atomic_energies")
        energies = np.zeros(len(zs)) if e0s is None else np.array([e0s[z] for z in zs])
        block = modules.interaction_classes
        return modules.ScaleShiftMACE(
            r_max=hyper["r_max"], num_bessel=hyper["num_bessel"],
            num_polynomial_cutoff=hyper["num_polynomial_cutoff"], max_ell=hyper["max_ell"],
            interaction_cls=block["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=block[hyper.get("interaction_first",
                                                  "RealAgnosticResidualInteractionBlock")],
            num_interactions=hyper["num_interactions"], num_elements=len(zs),
            hidden_irreps=o3.Irreps(hyper["hidden_irreps"]),
            MLP_irreps=o3.Irreps(hyper["MLP_irreps"]), gate=torch.nn.functional.silu,
            atomic_energies=energies, avg_num_neighbors=hyper["avg_num_neighbors"],
            atomic_numbers=zs, correlation=hyper["correlation"],
            radial_type=hyper["radial_type"], radial_MLP=hyper.get("radial_MLP"),
            use_reduced_cg=hyper.get("use_reduced_cg", True),
            atomic_inter_scale=hyper.get("atomic_inter_scale", 1.0),
            atomic_inter_shift=hyper.get("atomic_inter_shift", 0.0))

    def _load(self) -> None:
        import torch

        _import_mace()
        torch.manual_seed(self.seed)
        with _default_dtype(torch.float64):
            if self.is_random_init:
                model = self.build()
            else:
                model = self._from_file(Path(self.weights))
        model = frozen(model.double(), self.device)
        self.hook(model.products[-1])
        self._model = model
        from mace.tools import AtomicNumberTable

        self._z_table = AtomicNumberTable([int(z) for z in model.atomic_numbers])
        self._cutoff = float(model.r_max)

    def _from_file(self, path: Path) -> Any:
        import torch

        state = load_torch_checkpoint(path, self.allow_pickle,
                                      "a whole-module .model file is a pickle (or convert it "
                                      "to a state_dict)")
        if isinstance(state, torch.nn.Module):  # mace_mp()/mace_off()'s .model files
            return state
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model = self.build()
        model.load_state_dict(state)
        return model

    def check_atoms(self, atoms: Any) -> str | None:
        known = set(self._z_table.zs) if self._z_table is not None else set(self.elements)
        unknown = outside(atoms, known)
        if unknown:
            label = self.elements_label or f"{len(known)} elements"
            return f"element(s) Z={unknown} outside the model's {label}"
        return None

    def atom_features(self, records: Sequence[Record]) -> tuple[list[np.ndarray], np.ndarray]:
        import torch
        from mace import data as mace_data
        from mace.tools.torch_geometric.batch import Batch

        with _default_dtype(torch.float64):
            graphs = [mace_data.AtomicData.from_config(
                mace_data.config_from_atoms(r.atoms), z_table=self._z_table,
                cutoff=self._cutoff) for r in records]
        batch = Batch.from_data_list(graphs).to(torch.device(self.device))
        self.start_capture()
        with torch.no_grad():
            out = self._model(batch.to_dict(), compute_force=False)
        feats = self.take_capture([len(r.atoms) for r in records])
        energy = out["energy"].detach().double().cpu().numpy().reshape(-1)
        return feats, energy


#: what the three MACE-OFF23 sizes share (mace_off23 training script + mace defaults)
OFF_COMMON: dict[str, Any] = {
    "num_bessel": 8, "num_polynomial_cutoff": 5, "max_ell": 3, "num_interactions": 2,
    "MLP_irreps": "16x0e", "correlation": 3, "radial_type": "bessel",
    "radial_MLP": [64, 64, 64], "interaction_first": "RealAgnosticInteractionBlock",
    "atomic_energies": OFF_E0S, "atomic_inter_shift": 0.0, "use_reduced_cg": False,
    "avg_num_neighbors": MACE_OFF_AVG_NEIGHBORS,
}


class MACEOFF23(MACE):
    """The MACE-OFF23 models: organic elements, weights fetched from mace-off's releases."""


    elements = OFF_ELEMENTS
    elements_label = "organic elements H, C, N, O, F, P, S, Cl, Br, I (MACE-OFF23)"
    license = ("Academic Software License, non-commercial (MACE-OFF23 weights); "
               "MIT (mace-torch code)")
    weights_source = "https://github.com/ACEsuit/mace-off (mace_off23/MACE-OFF23_*.model)"
    #: the size's key in mace's own mace_off_urls table
    size: ClassVar[str] = ""

    def fetch_weights(self, dest: Path) -> Path:
        """The released ``MACE-OFF23_{size}.model`` from the URL mace_off() uses, into
        ``dest/{name}.model`` (a pickled module: load it with ``allow_pickle: true``)."""
        import os
        import urllib.request

        from mace.calculators.foundations_models import mace_off_urls

        target = dest / f"{self.name}.model"
        tmp = dest / f".{self.name}.tmp{os.getpid()}"
        urllib.request.urlretrieve(mace_off_urls[self.size], tmp)  # noqa: S310 - fixed https URL
        tmp.replace(target)
        return target


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
