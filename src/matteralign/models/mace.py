"""MACE (Batatia et al. 2022): higher-order equivariant message passing, two families here.

MACE-MP-0 (Batatia et al. 2023, arXiv:2401.00096), trained on MPtrj, the "medium" model:
2 residual interactions, hidden irreps 128x0e+128x1o, correlation order 3, 6 A cutoff, 89
elements; 4,688,656 parameters, the published 4.69M.

MACE-OFF23 (Kovacs et al. 2023, arXiv:2312.15211; JACS 2025), trained on SPICE v1 (+ QMugs
and water clusters, wB97M-D3(BJ)/def2-TZVPPD) for neutral organic molecules of the ten
elements H C N O F P S Cl Br I, in three sizes. The released ``MACE-OFF23_*.model`` files are
``ScaleShiftMACE`` modules (mace's own tests assert it) trained with ``--model="MACE"``
(github.com/ACEsuit/mace-off, mace_off23/train_scripts): a non-residual
``RealAgnosticInteractionBlock`` first, ``RealAgnosticResidualInteractionBlock`` after it,
shift 0, scale = the RMS of the training forces, E0s = SPICE's isolated-atom energies (given
in that script), 2 interactions, correlation 3, max_ell 3, 8 Bessel functions, p=5 envelope,
radial MLP [64, 64, 64], readout MLP 16x0e, float64, the 2023 (non-reduced) symmetric
contraction basis. The sizes (the paper's table of models; the small one's values also as
read from the released checkpoint, the medium one's from the training script; large's L=2
is not confirmed from its file here: ``mace.tools.scripts_utils.extract_config_mace_model``
on the released ``MACE-OFF23_large.model`` says, and a checkpoint brings its own):

- small: 4.5 A cutoff, 96 channels, L=0 (hidden 96x0e), 694,320 parameters;
- medium: 5.0 A, 128 channels, L=1 (128x0e+128x1o), 1,428,368 parameters;
- large: 5.0 A, 192 channels, L=2 (192x0e+192x1o+192x2e), 3,551,952 parameters.

Only the small model's force RMS (1.0757) is known here; the others use 1, and every
model's average neighbour count is a placeholder (``MACE_OFF_AVG_NEIGHBORS``): both are
training-set statistics that only matter at random init (a checkpoint brings its own).
Structures with other elements are masked with the reason. MACE-OFF takes molecules and
molecular crystals (periodic cells of those elements); it has no charge input (trained on
neutral molecules).

No MACE weights ship in any wheel (mace_mp()/mace_off() download them from GitHub), so each
adapter builds the real ``mace.modules.ScaleShiftMACE`` with the model's hyperparameters and

- ``weights=PATH``: loads a local checkpoint. A ``state_dict`` file (``torch.save(
  model.state_dict())``) is read with ``torch.load(weights_only=True)`` into that
  architecture. The ``.model`` files that mace_mp()/mace_off() download are whole pickled
  modules (a pickle can run code): they load only with ``allow_pickle=True`` (the model's
  config entry must say so), and their own hyperparameters then apply.
- otherwise (the default while no checkpoint is configured): random init, labelled
  ``random-init``. MACE-MP-0's training-set statistics are then placeholders too: E0 = 0,
  61.96 neighbours (reported for MACE-MP-0), scale 1, shift 0.

Last hidden layer: the invariant node features after the last interaction block, i.e. the
output of ``products[-1]`` (MACE keeps only the l=0 channels in its last layer: 128 for
MACE-MP-0 medium, 96/128/192 for MACE-OFF23 small/medium/large), caught with a forward hook;
what MACE's ``get_descriptors(invariants_only=True)`` returns for the last layer.
Structures are batched into one disjoint graph with mace's own data pipeline, float64.
License: MIT (mace-torch code, MACE-MP-0 weights); MACE-OFF23 weights: Academic Software
License (non-commercial).
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
    OutputKeeper,
    frozen,
    load_torch_checkpoint,
    mean_pool,
    register_model,
    structure_problem,
)
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


class _MACEAdapter(ModelAdapter):
    """A ``mace.modules.ScaleShiftMACE`` built from ``hyper`` (or loaded from a checkpoint);
    the embedding is the hooked output of ``products[-1]``."""

    family = "mace"
    modality = "atoms"
    pooling = "mean over atoms"
    weights_name = RANDOM_INIT
    key_packages = ("mace-torch", "e3nn", "torch", "ase")
    requires_module = "mace"
    batch_size = 16
    produces_energy = True
    seed: ClassVar[int] = 0
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
            if not self.weights or self.weights == RANDOM_INIT:
                model = self.build()
            else:
                model = self._from_file(Path(self.weights))
        model = frozen(model.double(), self.device)
        model.products[-1].register_forward_hook(OutputKeeper(self._captured))
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

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        atoms = record.atoms
        assert atoms is not None
        known = set(self._z_table.zs) if self._z_table is not None else set(self.elements)
        unknown = sorted({int(z) for z in atoms.numbers} - known)
        if unknown:
            label = self.elements_label or f"{len(known)} elements"
            return f"element(s) Z={unknown} outside the model's {label}"
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


@register_model
class MACEMP0Medium(_MACEAdapter):
    name = "mace-mp-0-medium"
    architecture = ("MACE (ScaleShiftMACE): 2 interactions, hidden 128x0e+128x1o, max_ell 3, "
                    "correlation 3, 6 A cutoff, 89 elements, 4.69M params (MACE-MP-0 medium)")
    layer = "products[-1] output: 128 invariant (0e) node features after the last interaction"
    license = "MIT (mace-torch code and MACE-MP-0 weights)"
    hub_id = "mace_mp(model='medium') (github.com/ACEsuit/mace-mp)"
    elements = MP_ELEMENTS
    #: MACE-MP-0 medium's hyperparameters (mace-mp README / the .model's own config)
    hyper = {
        "r_max": 6.0, "num_bessel": 10, "num_polynomial_cutoff": 5, "max_ell": 3,
        "num_interactions": 2, "hidden_irreps": "128x0e+128x1o", "MLP_irreps": "16x0e",
        "correlation": 3, "avg_num_neighbors": 61.96, "radial_type": "bessel",
    }


#: what the three MACE-OFF23 sizes share (mace_off23 training script + mace defaults)
_OFF_COMMON: dict[str, Any] = {
    "num_bessel": 8, "num_polynomial_cutoff": 5, "max_ell": 3, "num_interactions": 2,
    "MLP_irreps": "16x0e", "correlation": 3, "radial_type": "bessel",
    "radial_MLP": [64, 64, 64], "interaction_first": "RealAgnosticInteractionBlock",
    "atomic_energies": OFF_E0S, "atomic_inter_shift": 0.0, "use_reduced_cg": False,
    "avg_num_neighbors": MACE_OFF_AVG_NEIGHBORS,
}


class _MACEOFF23(_MACEAdapter):
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


@register_model
class MACEOFF23Small(_MACEOFF23):
    name = "mace-off23-small"
    architecture = ("MACE-OFF23 small (ScaleShiftMACE): 2 interactions (first non-residual), "
                    "hidden 96x0e (L=0), max_ell 3, correlation 3, 4.5 A cutoff, 10 organic "
                    "elements, 0.69M params")
    layer = "products[-1] output: 96 invariant (0e) node features after the last interaction"
    hub_id = "mace_off(model='small') (github.com/ACEsuit/mace-off, MACE-OFF23_small.model)"
    size = "small"
    hyper = {**_OFF_COMMON, "r_max": 4.5, "hidden_irreps": "96x0e",
             "atomic_inter_scale": 1.0757}


@register_model
class MACEOFF23Medium(_MACEOFF23):
    name = "mace-off23-medium"
    architecture = ("MACE-OFF23 medium (ScaleShiftMACE): 2 interactions (first non-residual), "
                    "hidden 128x0e+128x1o (L=1), max_ell 3, correlation 3, 5 A cutoff, 10 "
                    "organic elements, 1.43M params")
    layer = "products[-1] output: 128 invariant (0e) node features after the last interaction"
    hub_id = "mace_off(model='medium') (github.com/ACEsuit/mace-off, MACE-OFF23_medium.model)"
    size = "medium"
    hyper = {**_OFF_COMMON, "r_max": 5.0, "hidden_irreps": "128x0e+128x1o",
             "atomic_inter_scale": 1.0}


@register_model
class MACEOFF23Large(_MACEOFF23):
    name = "mace-off23-large"
    architecture = ("MACE-OFF23 large (ScaleShiftMACE): 2 interactions (first non-residual), "
                    "hidden 192x0e+192x1o+192x2e (L=2), max_ell 3, correlation 3, 5 A cutoff, "
                    "10 organic elements, 3.55M params")
    layer = "products[-1] output: 192 invariant (0e) node features after the last interaction"
    hub_id = "mace_off(model='large') (github.com/ACEsuit/mace-off, MACE-OFF23_large.model)"
    size = "large"
    hyper = {**_OFF_COMMON, "r_max": 5.0, "hidden_irreps": "192x0e+192x1o+192x2e",
             "atomic_inter_scale": 1.0}


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
