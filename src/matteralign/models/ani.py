"""ANI-1x (Smith et al. 2017, Chem. Sci.; Smith et al. 2018, J. Chem. Phys.): an ensemble of 8
networks, each a set of per-element MLPs (H, C, N, O) reading Behler-Parrinello-style atomic
environment vectors (AEV, 384-d, 5.2 A radial / 3.5 A angular cutoff), trained on ~5M
wB97X/6-31G(d) conformers of organic molecules. The real ensemble ships inside the
``torchani==2.2.4`` wheel (``torchani/resources/ani-1x_8x/``, NeuroChem text/binary files:
no pickle, so loading runs no code).

torchani 2.2.4 finds that directory through an ``.info`` file the wheel ships empty (and then
tries GitHub, or ``~/.local/torchani``); the adapter needs neither: it builds the very same
``BuiltinEnsemble`` that ``torchani.models.ANI1x()`` builds, from the shipped files directly
(``neurochem.Constants``, ``load_sae``, ``load_model_ensemble``).

Last hidden layer: each atom's AEV goes through its element's MLP
384 -> 160 -> 128 -> 96 -> 1 (CELU); the embedding is the output of the last hidden layer
(``net[:-1]``, after its CELU), 96-d for every element. Each of the 8 members has its own
networks: the per-atom features are averaged over the 8 members, then over the atoms. Note
that the H, C, N and O networks are separate, so the 96 channels of different elements are
not aligned by construction (they meet only in the shared linear read-out's training signal).

Scope: molecules of H, C, N, O only (ANI-1x's training elements; others are masked with the
reason) and no periodic structures (ANI-1x was trained on isolated molecules; masked).
Energy: the ensemble-mean total energy (self-atomic energies included) in eV.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.base import (
    RANDOM_INIT,
    EmbedOutput,
    ModelAdapter,
    cache_dir,
    find_in_site_packages,
    frozen,
    mean_pool,
    register_model,
    structure_problem,
)
from matteralign.records import Record

ELEMENTS = {1: "H", 6: "C", 7: "N", 8: "O"}
#: Hartree in eV, as torchani.units.HARTREE_TO_EV (CODATA 2014)
HARTREE_TO_EV = 27.211386024367243


@register_model
class ANI1x(ModelAdapter):
    name = "ani-1x"
    family = "ani"
    modality = "atoms"
    architecture = ("ANI-1x: 8-model ensemble of per-element MLPs (384-160-128-96-1, CELU) on "
                    "384-d AEVs; H, C, N, O")
    layer = ("last hidden layer of each element's MLP (net[:-1], 96-d, after CELU), averaged "
             "over the 8 ensemble members")
    pooling = "mean over the 8 ensemble members, then mean over atoms"
    weights_name = "ANI-1x 8x ensemble (torchani 2.2.4 wheel)"
    weights_in_package = "torchani/resources/ani-1x_8x/rHCNO-5.2R_16-3.5A_a4-8.params"
    license = "MIT (torchani 2.2.4: code and bundled ANI-1x parameters)"
    key_packages = ("torchani", "torch", "ase")
    requires_module = "torchani"
    batch_size = 64
    produces_energy = True
    seed: ClassVar[int] = 0
    #: files of the NeuroChem ensemble directory
    const_file: ClassVar[str] = "rHCNO-5.2R_16-3.5A_a4-8.params"
    sae_file: ClassVar[str] = "sae_linfit.dat"
    ensemble_size: ClassVar[int] = 8

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None) -> None:
        super().__init__(weights=weights, device=device)
        self.max_atoms = max_atoms
        self._model: Any = None

    def ensemble_dir(self) -> Path:
        """The NeuroChem ensemble directory: a local ``weights`` directory (same layout:
        the .params and sae_linfit.dat files and train0..train7/networks/ANN-*.nnf) or the
        wheel's ``torchani/resources/ani-1x_8x``."""
        if self.weights and self.weights != RANDOM_INIT:
            path = Path(self.weights)
            return path if path.is_dir() else path.parent
        shipped = find_in_site_packages(self.weights_in_package or "")
        if shipped is None:
            raise FileNotFoundError(f"{self.weights_in_package} is missing: build .envs/ani")
        return shipped.parent

    def weights_path(self) -> Path | None:
        """A manifest (sha256 of every file of the ensemble directory) written to the cache:
        its own hash then pins all 8 members' parameters, not just one file."""
        if self.weights == RANDOM_INIT:
            return None
        directory = self.ensemble_dir()
        lines = []
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
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

    def _load(self) -> None:
        import torch
        from torchani.aev import AEVComputer
        from torchani.models import BuiltinEnsemble
        from torchani.neurochem import Constants, load_model_ensemble, load_sae
        from torchani.nn import SpeciesConverter

        torch.manual_seed(self.seed)
        directory = self.ensemble_dir()
        for needed in (self.const_file, self.sae_file, "train0/networks"):
            if not (directory / needed).exists():
                raise FileNotFoundError(f"{directory / needed} missing: not an ANI ensemble "
                                        "directory in NeuroChem layout")
        consts = Constants(str(directory / self.const_file))
        if list(consts.species) != list(ELEMENTS.values()):
            raise ValueError(f"{directory}: species {consts.species}, expected H, C, N, O")
        shifter, sae = load_sae(str(directory / self.sae_file), return_dict=True)
        networks = load_model_ensemble(consts.species, str(directory / "train"),
                                       self.ensemble_size)
        model = BuiltinEnsemble(SpeciesConverter(consts.species), AEVComputer(**consts),
                                networks, shifter, consts.species_to_tensor, consts, sae, True)
        if self.weights == RANDOM_INIT:
            # the same networks with fresh (seeded) parameters: PyTorch's default Linear init
            for module in model.neural_networks.modules():
                if isinstance(module, torch.nn.Linear):
                    module.reset_parameters()
        model = frozen(model, self.device)
        self._model = model

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        atoms = record.atoms
        assert atoms is not None
        if atoms.pbc.any():
            return "periodic structure: ANI-1x takes isolated molecules only"
        other = sorted({s for z, s in zip(atoms.numbers, atoms.get_chemical_symbols(),
                                          strict=True) if int(z) not in ELEMENTS})
        if other:
            return f"element(s) {','.join(other)} outside ANI-1x's H, C, N, O"
        return structure_problem(atoms, self.max_atoms, partly_periodic_ok=True)

    def atom_features(self, records: Sequence[Record]) -> tuple[list[np.ndarray], np.ndarray]:
        """Per-atom last-hidden-layer features (member mean) and ensemble energies (eV), with
        all records padded into one [B, max atoms] batch (species -1 = padding)."""
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
        with torch.no_grad():
            converted = model.species_converter((species, coords))
            index, aev = model.aev_computer(converted)
            energy = model.energy_shifter(
                (index, model.neural_networks((index, aev)).energies)).energies
            flat_index, flat_aev = index.flatten(), aev.flatten(0, 1)
            hidden = flat_aev.new_zeros((flat_index.shape[0], self._hidden_dim()),
                                        dtype=torch.float64)
            for member in model.neural_networks:
                for i, net in enumerate(member.values()):
                    rows = (flat_index == i).nonzero().flatten()
                    if rows.numel():
                        hidden[rows] += net[:-1](flat_aev[rows]).double()
            hidden /= len(model.neural_networks)
        hidden = hidden.view(len(records), max(counts), -1).cpu().numpy()
        feats = [hidden[i, :n] for i, n in enumerate(counts)]
        return feats, energy.double().cpu().numpy() * HARTREE_TO_EV

    def _hidden_dim(self) -> int:
        import torch

        net = next(iter(self._model.neural_networks[0].values()))
        return [m for m in net if isinstance(m, torch.nn.Linear)][-1].in_features

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        feats, energy = self.atom_features(records)
        embeddings = mean_pool(feats)
        return EmbedOutput(embeddings, None if self.weights == RANDOM_INIT else energy)
