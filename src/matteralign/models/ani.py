"""ANI (torchani): ensembles of per-element MLPs on atomic environment vectors, for isolated
molecules of their elements. ANI-1x is built from the NeuroChem files the torchani 2.2.4 wheel
ships; ANI-2x (weights not shipped) is its real architecture at random init, or a NeuroChem
folder / state_dict. The embedding is each element network's last hidden layer, one block
per ensemble member side by side (units of independently trained members are unrelated, so
they are never averaged): shared channels for ANI-1x, per-element blocks for ANI-2x. Each
ANI-1x member is also a model of its own (``ani-1x-m0`` ... ``ani-1x-m7``, rows in
checkpoints.py): eight seed replicates, the study's noise ceiling. Details: docs/models.md.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.atoms import AtomsAdapter
from matteralign.models.base import register_model, register_model_family
from matteralign.models.torch_utils import frozen
from matteralign.models.weights import RANDOM_INIT, cache_dir, find_in_site_packages
from matteralign.records import Record

ELEMENTS = {1: "H", 6: "C", 7: "N", 8: "O"}
#: ANI-2x's elements in its model order (H C N O S F Cl)
ELEMENTS_2X = {1: "H", 6: "C", 7: "N", 8: "O", 16: "S", 9: "F", 17: "Cl"}
#: Hartree in eV, as torchani.units.HARTREE_TO_EV (CODATA 2014)
HARTREE_TO_EV = 27.211386024367243


class _ANIEnsemble(AtomsAdapter):
    """An ensemble of per-element ANI networks (all members, or the one ``member``); the
    embedding is each element network's last hidden layer, one block per member, in shared
    channels or in per-element blocks."""

    family = "ani"
    #: a checkpoint folder is a valid ``weights:`` path (not only a single file)
    weights_folder_ok = True
    key_packages = ("torchani", "torch", "ase")
    requires_module = "torchani"
    batch_size = 64
    produces_energy = True
    partly_periodic_ok = True  # periodic structures of any kind are masked by check_atoms
    #: the model's elements (atomic number -> symbol) in its network order
    elements: ClassVar[dict[int, str]] = ELEMENTS
    label: ClassVar[str] = "ANI"
    #: files of the NeuroChem ensemble directory
    const_file: ClassVar[str] = ""
    sae_file: ClassVar[str] = "sae_linfit.dat"
    ensemble_size: ClassVar[int] = 8
    #: all elements' last hidden layers share one set of channels (same width), else blocks
    shared_channels: ClassVar[bool] = True
    #: the one ensemble member this model runs (trainK/ of the ensemble); None: all members
    member: ClassVar[int | None] = None

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None) -> None:
        super().__init__(weights=weights, device=device, max_atoms=max_atoms)
        #: per member, per element network: (offset, width) of its last hidden layer
        self._blocks: list[list[tuple[int, int]]] = []

    def members(self) -> tuple[int, ...]:
        """The ensemble members this model runs, by index (their trainK/ folders)."""
        if self.member is None:
            return tuple(range(self.ensemble_size))
        if not 0 <= self.member < self.ensemble_size:
            raise ValueError(f"{self.name}: member {self.member} outside the "
                             f"{self.ensemble_size}-member ensemble")
        return (self.member,)

    def member_files(self, directory: Path) -> list[Path]:
        """The files of an ensemble directory this model reads: the constants, the
        self-atomic energies and its members' trainK/ folders (an ensemble: every file)."""
        if self.member is None:
            return sorted(p for p in directory.rglob("*") if p.is_file())
        files = [directory / self.const_file, directory / self.sae_file]
        return files + sorted(p for p in (directory / f"train{self.member}").rglob("*")
                              if p.is_file())

    def weights_label(self) -> str:
        """The weights label, naming the member where a local directory holds the ensemble."""
        label = super().weights_label()
        if self.member is not None and self.resolved.kind == "local":
            return f"{label} (member {self.member}: train{self.member}/)"
        return label

    def manifest(self, directory: Path) -> Path:
        """A manifest (sha256 of every file this model reads from an ensemble directory,
        :meth:`member_files`) written to the cache: its own hash then pins all the members'
        parameters it runs, not just one file."""
        lines = []
        for path in self.member_files(directory):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            lines.append(f"{digest}  {path.relative_to(directory).as_posix()}\n")
        text = "".join(lines)
        manifest = cache_dir() / "weights" / "ani" / (
            f"{self.name}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.sha256")
        if not manifest.exists():
            manifest.parent.mkdir(parents=True, exist_ok=True)
            tmp = manifest.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(text)
            tmp.replace(manifest)
        return manifest

    def from_neurochem(self, directory: Path) -> Any:
        """The ensemble in a NeuroChem directory (its :meth:`members` only), as torchani's
        BuiltinEnsemble; all members: what torchani's ``load_model_ensemble`` builds."""
        from torchani.aev import AEVComputer
        from torchani.models import BuiltinEnsemble
        from torchani.neurochem import Constants, load_model, load_sae
        from torchani.nn import Ensemble, SpeciesConverter

        networks = [f"train{k}/networks" for k in self.members()]
        for needed in (self.const_file, self.sae_file, *networks):
            if not (directory / needed).exists():
                raise FileNotFoundError(f"{directory / needed} missing: not an {self.label} "
                                        "ensemble directory in NeuroChem layout")
        for needed in (self.const_file, self.sae_file):
            if (directory / needed).stat().st_size == 0:
                raise ValueError(f"{directory / needed} is empty: a placeholder (torchani "
                                 f"downloads the real {self.label} files), not parameters")
        consts = Constants(str(directory / self.const_file))
        if list(consts.species) != list(self.elements.values()):
            raise ValueError(f"{directory}: species {consts.species}, expected "
                             f"{', '.join(self.elements.values())}")
        shifter, sae = load_sae(str(directory / self.sae_file), return_dict=True)
        ensemble = Ensemble([load_model(consts.species, str(directory / n)) for n in networks])
        return BuiltinEnsemble(SpeciesConverter(consts.species), AEVComputer(**consts),
                               ensemble, shifter, consts.species_to_tensor, consts, sae, True)

    def randomize(self, model: Any, members: Sequence[int]) -> None:
        """Fresh parameters (PyTorch's default Linear init) for each of ``model``'s members,
        seeded by its index: member K at random init is block K of the random-init ensemble."""
        import torch

        for index, member in zip(members, model.neural_networks, strict=True):
            torch.manual_seed(self.seed * self.ensemble_size + index)
            for module in member.modules():
                if isinstance(module, torch.nn.Linear):
                    module.reset_parameters()

    def _layout(self) -> list[list[tuple[int, int]]]:
        """Per member, per element network: (offset, width) of its last hidden layer in the
        embedding; each member fills a block of its own, the blocks side by side."""
        import torch

        layouts = []
        for member in self._model.neural_networks:
            widths = [[m for m in net if isinstance(m, torch.nn.Linear)][-1].in_features
                      for net in member.values()]
            if self.shared_channels:
                if len(set(widths)) != 1:
                    raise ValueError(f"{self.name}: last hidden layers differ in width "
                                     f"{widths}")
                layouts.append([(0, widths[0])] * len(widths))
            else:
                offsets = np.concatenate([[0], np.cumsum(widths)[:-1]])
                layouts.append([(int(o), int(w)) for o, w in zip(offsets, widths, strict=True)])
        start = 0
        blocks = []
        for layout in layouts:
            blocks.append([(start + offset, width) for offset, width in layout])
            start += max(offset + width for offset, width in layout)
        return blocks

    def check_atoms(self, atoms: Any) -> str | None:
        if atoms.pbc.any():
            return f"periodic structure: {self.label} takes isolated molecules only"
        other = sorted({s for z, s in zip(atoms.numbers, atoms.get_chemical_symbols(),
                                          strict=True) if int(z) not in self.elements})
        if other:
            return (f"element(s) {','.join(other)} outside {self.label}'s "
                    f"{', '.join(self.elements.values())}")
        return None

    def atom_features(self, records: Sequence[Record]) -> tuple[list[np.ndarray], np.ndarray]:
        """Per-atom last-hidden-layer features (the members' blocks side by side) and
        ensemble-mean energies (eV), with all records padded into one [B, max atoms] batch
        (species -1 = padding)."""
        import torch

        model = self._model
        device = torch.device(self.device)
        counts = [len(r.atoms) for r in records]
        species = torch.full((len(records), max(counts)), -1, dtype=torch.long)
        coords = torch.zeros((len(records), max(counts), 3), dtype=torch.float32)
        for i, record in enumerate(records):
            species[i, :counts[i]] = torch.as_tensor(record.atoms.numbers, dtype=torch.long)
            coords[i, :counts[i]] = torch.as_tensor(record.atoms.positions,
                                                    dtype=torch.float32)
        species, coords = species.to(device), coords.to(device)
        dim = max(offset + width for blocks in self._blocks for offset, width in blocks)
        with torch.no_grad():
            converted = model.species_converter((species, coords))
            index, aev = model.aev_computer(converted)
            flat_index, flat_aev = index.flatten(), aev.flatten(0, 1)
            hidden = flat_aev.new_zeros((flat_index.shape[0], dim), dtype=torch.float64)
            # one pass per element network gives both outputs: the last hidden layer, and
            # through the final Linear the atomic energies that torchani's ANIModel sums
            # (running the ensemble again for the energy doubled the cost)
            atomic = flat_aev.new_zeros(flat_index.shape[0])
            element_rows = [(flat_index == i).nonzero().flatten()
                            for i in range(len(self._blocks[0]))]
            for blocks, member in zip(self._blocks, model.neural_networks, strict=True):
                for i, net in enumerate(member.values()):
                    rows = element_rows[i]
                    if rows.numel():
                        offset, width = blocks[i]
                        h = net[:-1](flat_aev[rows])
                        hidden[rows, offset:offset + width] = h.double()
                        atomic[rows] += net[-1](h).flatten()
            members = len(model.neural_networks)
            molecular = atomic.view(index.shape).sum(1) / members  # padding rows stay 0
            energy = model.energy_shifter((index, molecular)).energies
        hidden = hidden.view(len(records), max(counts), -1).cpu().numpy()
        feats = [hidden[i, :n] for i, n in enumerate(counts)]
        return feats, energy.double().cpu().numpy() * HARTREE_TO_EV


@register_model
class ANI1x(_ANIEnsemble):
    name = "ani-1x"
    architecture = ("ANI-1x: 8-model ensemble of per-element MLPs (384-160-128-96-1, CELU) on "
                    "384-d AEVs; H, C, N, O")
    layer = ("last hidden layer of each element's MLP (net[:-1], 96-d, after CELU), the 8 "
             "ensemble members' blocks side by side (768-d: member K in columns 96K..96K+95)")
    pooling = "mean over atoms (of each member's block)"
    weights_name = "ANI-1x 8x ensemble (torchani 2.2.4 wheel)"
    weights_in_package = "torchani/resources/ani-1x_8x/rHCNO-5.2R_16-3.5A_a4-8.params"
    license = "MIT (torchani 2.2.4: code and bundled ANI-1x parameters)"
    elements = ELEMENTS
    label = "ANI-1x"
    const_file = "rHCNO-5.2R_16-3.5A_a4-8.params"

    def ensemble_dir(self) -> Path:
        """The NeuroChem ensemble directory: a local ``weights`` directory (same layout:
        the .params and sae_linfit.dat files and train0..train7/networks/ANN-*.nnf) or the
        wheel's ``torchani/resources/ani-1x_8x``."""
        if self.resolved.kind == "local":
            path = Path(str(self.weights))
            return path if path.is_dir() else path.parent
        shipped = find_in_site_packages(self.weights_in_package or "")
        if shipped is None:
            raise FileNotFoundError(f"{self.weights_in_package} is missing: build .envs/ani")
        return shipped.parent

    def weights_path(self) -> Path | None:
        """The manifest of the ensemble directory's files this model reads (see
        :meth:`manifest`)."""
        if self.is_random_init:
            return None
        return self.manifest(self.ensemble_dir())

    def _load(self) -> None:
        model = self.from_neurochem(self.ensemble_dir())
        if self.is_random_init:  # the same networks with fresh (seeded) parameters
            self.randomize(model, self.members())
        self._model = frozen(model, self.device)
        self._blocks = self._layout()


#: ANI-2x's element networks: hidden layer widths (torchani ANINetworks.like_2x)
ANI2X_HIDDEN: dict[str, tuple[int, ...]] = {
    "H": (256, 192, 160), "C": (224, 192, 160), "N": (192, 160, 128), "O": (192, 160, 128),
    "S": (160, 128, 96), "F": (160, 128, 96), "Cl": (160, 128, 96),
}
#: placeholder self-atomic energies (Hartree) of the random-init ANI-2x: torchani's
#: ground-state atomic energies at wB97X/6-31G(d) (a checkpoint brings its own)
ANI2X_GSAES: dict[str, float] = {
    "H": -0.4993212, "C": -37.8338334, "N": -54.5732825, "O": -75.0424519,
    "S": -398.0814169, "F": -99.6949007, "Cl": -460.1167006,
}


@register_model
class ANI2x(_ANIEnsemble):
    name = "ani-2x"
    architecture = ("ANI-2x: 8-model ensemble of per-element MLPs (1008-256/224/192/160-...-1, "
                    "CELU) on 1008-d AEVs (5.1 A radial / 3.5 A angular); H, C, N, O, S, F, Cl")
    layer = ("last hidden layer of each element's MLP (net[:-1], after CELU: 160-d H, C; 128-d "
             "N, O; 96-d S, F, Cl) in per-element blocks (864-d per member), the 8 members' "
             "blocks side by side (6912-d)")
    pooling = "mean over atoms (per-element blocks of each member)"
    weights_name = RANDOM_INIT
    license = "MIT (torchani code and ANI-2x parameters)"
    elements = ELEMENTS_2X
    label = "ANI-2x"
    const_file = "rHCNOSFCl-5.1R_16-3.5A_a8-4.params"
    shared_channels = False
    hub_id: ClassVar[str] = "torchani.models.ANI2x() (downloads ani-2x_8x / ani2x_state_dict.pt)"

    weights_source = "https://github.com/aiqm/ani-model-zoo/archive/ani-2x.zip"

    def weights_path(self) -> Path | None:
        if self.is_random_init:
            return None
        path = Path(str(self.weights))
        return self.manifest(path) if path.is_dir() else path

    def fetch_weights(self, dest: Path) -> Path:
        """The archive torchani 2.2.4 itself downloads for ANI-2x (its
        ``neurochem.parse_neurochem_resources``), with only ``resources/ani-2x_8x``
        extracted to ``dest/{name}`` (a NeuroChem directory) instead of into site-packages."""
        import io
        import os
        import shutil
        import zipfile

        import requests

        response = requests.get(str(self.weights_source), timeout=300)
        response.raise_for_status()
        prefix = "ani-model-zoo-ani-2x/resources/ani-2x_8x/"
        tmp = dest / f".{self.name}.tmp{os.getpid()}"
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            for member in archive.namelist():
                if member.startswith(prefix) and not member.endswith("/"):
                    out = tmp / member[len(prefix):]
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(archive.read(member))
        target = dest / self.name
        if target.exists():
            shutil.rmtree(target)
        tmp.replace(target)
        return target

    def build(self, members: Sequence[int]) -> Any:
        """ANI-2x's modules with the given members, fresh (seeded) parameters."""
        from collections import OrderedDict

        import torch
        from torchani.aev import AEVComputer
        from torchani.nn import ANIModel, Ensemble, SpeciesConverter
        from torchani.utils import EnergyShifter

        symbols = list(self.elements.values())
        aev = AEVComputer.cover_linearly(
            radial_cutoff=5.1, angular_cutoff=3.5, radial_eta=19.7, angular_eta=12.5,
            radial_dist_divisions=16, angular_dist_divisions=8, zeta=14.1, angle_sections=4,
            num_species=len(symbols), angular_start=0.8, radial_start=0.8)

        def network(widths: tuple[int, ...]) -> Any:
            layers: list[Any] = []
            sizes = (aev.aev_length, *widths)
            for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
                layers += [torch.nn.Linear(n_in, n_out), torch.nn.CELU(0.1)]
            return torch.nn.Sequential(*layers, torch.nn.Linear(widths[-1], 1))

        networks = [ANIModel(OrderedDict((s, network(ANI2X_HIDDEN[s])) for s in symbols))
                    for _ in members]
        model = torch.nn.ModuleDict({
            "species_converter": SpeciesConverter(symbols), "aev_computer": aev,
            "neural_networks": Ensemble(networks),
            "energy_shifter": EnergyShifter([ANI2X_GSAES[s] for s in symbols])})
        self.randomize(model, members)
        return model

    def _load(self) -> None:
        import torch
        from torchani.nn import Ensemble

        if self.is_random_init:
            model = self.build(self.members())
        elif Path(str(self.weights)).is_dir():
            model = self.from_neurochem(Path(self.weights))
        else:  # a state_dict of the whole ensemble, then the members this model runs
            state = torch.load(Path(self.weights), map_location="cpu", weights_only=True)
            model = self.build(range(self.ensemble_size))
            model.load_state_dict(state, strict=True)
            if self.member is not None:
                model["neural_networks"] = Ensemble([model.neural_networks[self.member]])
        self._model = frozen(model, self.device)
        self._blocks = self._layout()


@register_model
class ANIQM9(_ANIEnsemble):
    """The ANI-1x architecture trained by the study on QM9 (a ladder rung, see
    :mod:`matteralign.training`): one network per element, built by torchani's NeuroChem
    trainer from the rung folder's training input, with the best checkpoint of its training.
    Registered as ``ani-qm9`` (random init: the ANI-1x widths); each rung is a model of its
    own, ``ani-qm9-n{size}-s{seed}``, whose weights are its folder."""

    name = "ani-qm9"
    architecture = ("ANI-1x architecture (per-element MLPs, CELU, on ANI-1x's 384-d AEVs; "
                    "H, C, N, O) trained by this study on QM9 U0 (torchani NeuroChem trainer)")
    layer = "last hidden layer of each element's MLP (net[:-1], after CELU), shared channels"
    pooling = "mean over atoms"
    weights_name = RANDOM_INIT
    license = "MIT (torchani code); weights trained by this study on QM9 (CC0 data)"
    elements = ELEMENTS
    label = "ANI (QM9 ladder)"
    const_file = "rHCNO-5.2R_16-3.5A_a4-8.params"
    ensemble_size = 1

    def rung_folder(self) -> Path | None:
        return None if self.is_random_init else Path(str(self.weights))

    def weights_path(self) -> Path | None:
        """The rung's checkpoint (its training input and AEV constants are hashed into
        training.json beside it)."""
        from matteralign.training.ani_input import CHECKPOINT

        folder = self.rung_folder()
        return None if folder is None else folder / CHECKPOINT

    def _load(self) -> None:
        import tempfile

        import torch
        from torchani.neurochem import Trainer, load_sae
        from torchani.nn import Ensemble, SpeciesConverter

        from matteralign.datasets.qm9 import ATOM_U0_HARTREE
        from matteralign.training import ani_input
        from matteralign.training.ladder import ANI1X_HIDDEN

        folder = self.rung_folder()
        with tempfile.TemporaryDirectory() as scratch:
            if folder is None:  # the ANI-1x widths, free atoms' U0 as self energies
                folder = Path(scratch)
                shipped = find_in_site_packages(f"torchani/resources/ani-1x_8x/{self.const_file}")
                if shipped is None:
                    raise FileNotFoundError(f"{self.const_file} missing: build .envs/ani")
                (folder / self.const_file).write_bytes(shipped.read_bytes())
                ani_input.write_sae(folder / ani_input.SAE_FILE, ATOM_U0_HARTREE)
                training = {"steps": 1, "patience": 1, "learning_rate": 1e-3,
                            "min_learning_rate": 1e-5, "batch_size": 1, "weight_decay": 0.0}
                ani_input.write_input(folder, ani_input.trainer_input(training, ANI1X_HIDDEN,
                                                                      size=1))
            for needed in (ani_input.INPUT_FILE, ani_input.SAE_FILE, self.const_file):
                if not (folder / needed).is_file():
                    raise FileNotFoundError(f"{folder / needed} missing: not a ladder rung "
                                            "folder (train it with the workflow's train_model)")
            torch.manual_seed(self.seed)
            trainer = Trainer(str(folder / ani_input.INPUT_FILE), device=torch.device("cpu"))
            if self.rung_folder() is not None:
                state = torch.load(folder / ani_input.CHECKPOINT, map_location="cpu",
                                   weights_only=True)
                trainer.nn.load_state_dict(state, strict=True)
            shifter = load_sae(str(folder / ani_input.SAE_FILE))
        model = torch.nn.ModuleDict({
            "species_converter": SpeciesConverter(list(self.elements.values())),
            "aev_computer": trainer.aev_computer, "neural_networks": Ensemble([trainer.nn]),
            "energy_shifter": shifter})
        self._model = frozen(model, self.device)
        self._blocks = self._layout()


@register_model_family
def rung_adapter(name: str) -> type[ANIQM9] | None:
    """The adapter of a ladder rung ``ani-qm9[-no{X}]-n{size}-s{seed}`` (None: not a rung
    name)."""
    from matteralign.training.ladder import parse_rung_name

    rung = parse_rung_name(name)
    if rung is None:
        return None
    without = f" without {rung.excluded}" if rung.excluded else ""
    return type(name.replace("-", "_"), (ANIQM9,), {
        "name": name, "__module__": __name__,
        "weights_name": f"trained by this study: QM9, {rung.size} molecules{without}, "
                        f"seed {rung.seed}",
        "__doc__": f"ladder rung {name}: ANI-1x architecture trained on {rung.size} QM9 "
                   f"molecules{without}, seed {rung.seed}"})
