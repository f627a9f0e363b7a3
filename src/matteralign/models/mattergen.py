"""MatterGen (Zeni et al. 2025, Nature, arXiv:2312.03687): a diffusion model that generates
inorganic crystals. Its score network ("denoiser") is ``mattergen.denoiser.GemNetTDenoiser``:
a GemNet-T graph network (Gasteiger et al. 2021) over the periodic crystal graph, whose atom
features feed the atom-type head and whose edge features give the position and lattice
scores. Its own family environment (workflow/envs/mattergen.yaml: mattergen 1.0.3 beside a
torch-scatter and torch-sparse compiled for torch 2.13; mattergen's wheel pins a CUDA torch
2.2.1, so it is installed without its declared dependencies).

Hyperparameters: those of the released ``mattergen_base`` model (Alex-MP-20, unconditional),
as its ``checkpoints/mattergen_base/config.yaml`` gives them: GemNet-T with 4 blocks, 512-d
atom and edge embeddings, 7 A cutoff, at most 50 neighbours, 5 cell images per dimension, a
512-d noise-level encoding as the per-crystal latent, the atom-type head over 100 elements +
the mask token (``MAX_ATOMIC_NUM``). The weights are not on PyPI (mattergen downloads them
from the Hugging Face hub ``microsoft/mattergen``), so

- ``weights=PATH``: MatterGen's own layout, a folder with ``config.yaml`` and
  ``checkpoints/last.ckpt`` (what ``matteralign weights fetch`` writes, with the same files
  mattergen's ``MatterGenCheckpointInfo.from_hf_hub`` downloads), a ``.ckpt`` file, or a
  ``state_dict`` of the denoiser. Read with ``torch.load(weights_only=True)``; a checkpoint
  that needs unpickling loads only with ``allow_pickle=True`` (its config entry must say so).
  The hyperparameters come from the checkpoint's ``config`` or the folder's ``config.yaml``.
  Only unconditional models are taken (no property embeddings: ``mattergen_base``,
  ``mp_20_base``).
- otherwise (the default while no checkpoint is configured): random init, labelled
  ``random-init``. GemNet's scaling factors then start from MatterGen's
  ``gemnet-dT.json`` (which the PyPI wheel lacks; the env's post-deploy step restores it); a
  checkpoint brings its own.

Input: the clean crystal at noise level ``noise_level`` (default 1e-3: the last step of
MatterGen's sampler, eps_t = 1/N with N = 1000 steps), unconditional, fractional coordinates
wrapped into the cell. Only fully periodic structures are taken: GemNet here reads the
cosines between bonds and lattice vectors, which a molecule in a vacuum box would tie to the
box's orientation; molecules are masked with that reason. Elements outside the 76 MatterGen
was trained on (``SELECTED_ATOMIC_NUMBERS``: no noble gases, Tc, Pm, or Z > 83) are masked.
MatterGen keeps at most 50 neighbours per atom, the nearest; where the cap falls inside a
shell of equidistant atoms the subset kept depends on the order of the neighbour search (the
model's own behaviour, as for EquiformerV2).

Last hidden layer: GemNet-T's atom embeddings ``h`` after the last interaction block (512-d
per atom), the ``node_embeddings`` that the atom-type head ``fc_atom`` reads, caught with a
forward pre-hook on that head. No energy is reported (MatterGen predicts scores, not
energies). License: MIT (mattergen code and weights).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.base import (
    RANDOM_INIT,
    EmbedOutput,
    InputKeeper,
    ModelAdapter,
    frozen,
    load_exact_state,
    load_torch_checkpoint,
    mean_pool,
    register_model,
    structure_problem,
)
from matteralign.records import Record

#: checkpoints/mattergen_base/config.yaml, lightning_module.diffusion_module.model
MATTERGEN_BASE: dict[str, Any] = {
    "hidden_dim": 512, "denoise_atom_types": True, "atom_type_diffusion": "mask",
    "gemnet": {"num_targets": 1, "latent_dim": 512, "emb_size_atom": 512,
               "emb_size_edge": 512, "max_neighbors": 50, "max_cell_images_per_dim": 5,
               "cutoff": 7.0, "num_blocks": 4, "regress_stress": True, "otf_graph": True},
}
#: where a MatterGen checkpoint keeps the denoiser's weights
STATE_PREFIX = "diffusion_module.model."
#: MatterGen's sampler: N = 1000 steps, the last at eps_t = 1/N
DEFAULT_NOISE_LEVEL = 1e-3
#: the elements MatterGen was trained on: mattergen.common.utils.globals.
#: SELECTED_ATOMIC_NUMBERS (the tests check the copy), here so that check() needs no import
TRAINING_ELEMENTS = frozenset((
    1, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27,
    28, 29, 30, 31, 32, 33, 34, 35, 37, 38, 39, 40, 41, 42, 44, 45, 46, 47, 48, 49, 50, 51,
    52, 53, 55, 56, 57, 58, 59, 60, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75,
    76, 77, 78, 79, 80, 81, 82, 83))


@register_model
class MatterGenBase(ModelAdapter):
    name = "mattergen-base"
    family = "mattergen"
    #: a checkpoint folder is a valid ``weights:`` path (not only a single file)
    weights_folder_ok = True
    modality = "atoms"
    architecture = ("MatterGen denoiser (GemNetTDenoiser, mattergen 1.0.3): GemNet-T, 4 blocks, "
                    "512-d atom/edge embeddings, 7 A cutoff, 50 neighbours, noise-level "
                    "latent; the mattergen_base (Alex-MP-20) configuration")
    layer = ("GemNet-T atom embeddings h after the last interaction block (node_embeddings, "
             "the atom-type head's input; 512-d per atom)")
    pooling = "mean over atoms"
    weights_name = RANDOM_INIT
    license = "MIT (mattergen code and weights)"
    key_packages = ("mattergen", "torch-scatter", "torch-sparse", "torch-geometric", "torch")
    requires_module = "mattergen"
    batch_size = 16
    produces_energy = False
    seed: ClassVar[int] = 0
    hub_id: ClassVar[str] = "microsoft/mattergen (checkpoints/mattergen_base)"
    weights_source = "https://huggingface.co/microsoft/mattergen (checkpoints/mattergen_base)"
    #: the folder of the released model under checkpoints/ in the hub repository
    hub_model: ClassVar[str] = "mattergen_base"
    config: ClassVar[dict[str, Any]] = MATTERGEN_BASE

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 max_atoms: int | None = None, noise_level: float = DEFAULT_NOISE_LEVEL,
                 allow_pickle: bool = False,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``noise_level``: the diffusion time t in [0, 1] the clean crystal is presented at.
        ``allow_pickle``: let a checkpoint that weights_only refuses be unpickled (runs its
        code: only for files you trust). ``config_overrides``: hyperparameters over the
        mattergen_base defaults, in the layout of MatterGen's model config (the random-init
        model's; a checkpoint's own config wins over them). Tests build a small instance of
        the same classes this way."""
        super().__init__(weights=weights, device=device)
        if not 0.0 <= noise_level <= 1.0:
            raise ValueError(f"noise_level={noise_level} is outside MatterGen's diffusion "
                             "time [0, 1]; the default is 1e-3 (its sampler's last step)")
        self.max_atoms = max_atoms
        self.noise_level = float(noise_level)
        self.allow_pickle = allow_pickle
        self.config_overrides = dict(config_overrides or {})
        self._model: Any = None
        self._captured: list[Any] = []

    def fetch_weights(self, dest: Path) -> Path:
        """``config.yaml`` and ``checkpoints/last.ckpt`` of the released model from the
        Hugging Face hub (the files mattergen's own ``from_hf_hub`` downloads), into the
        folder ``dest/{name}``."""
        import os
        import shutil

        from huggingface_hub import hf_hub_download

        target = dest / self.name
        tmp = dest / f".{self.name}.tmp{os.getpid()}"
        (tmp / "checkpoints").mkdir(parents=True, exist_ok=True)
        for relative in ("checkpoints/last.ckpt", "config.yaml"):
            source = hf_hub_download(repo_id="microsoft/mattergen",
                                     filename=f"checkpoints/{self.hub_model}/{relative}")
            shutil.copyfile(source, tmp / relative)
        if target.exists():
            shutil.rmtree(target)
        tmp.replace(target)
        return target

    def build(self, config: dict[str, Any]) -> Any:
        """The denoiser of ``config`` (MatterGen's model section) with fresh parameters."""
        with _quiet():  # mattergen prints its install path on import
            from mattergen.common.gemnet.gemnet import GemNetT
            from mattergen.common.gemnet.layers.embedding_block import AtomEmbedding
            from mattergen.denoiser import GemNetTDenoiser

        conditioned = sorted({*(config.get("property_embeddings") or {}),
                              *(config.get("property_embeddings_adapt") or {})})
        if conditioned:
            raise ValueError(f"this MatterGen checkpoint is conditioned on properties "
                             f"({conditioned}); the adapter runs unconditional models only "
                             "(mattergen_base, mp_20_base)")
        hidden = int(config["hidden_dim"])
        with_mask = bool(config["denoise_atom_types"]) and config["atom_type_diffusion"] == "mask"
        gemnet_args = {k: v for k, v in config["gemnet"].items()
                       if k not in ("_target_", "atom_embedding", "scale_file")}
        gemnet = GemNetT(atom_embedding=AtomEmbedding(emb_size=hidden, with_mask_type=with_mask),
                         **gemnet_args)
        return GemNetTDenoiser(gemnet=gemnet, hidden_dim=hidden,
                               denoise_atom_types=config["denoise_atom_types"],
                               atom_type_diffusion=config["atom_type_diffusion"])

    def _config(self, *layers: dict[str, Any]) -> dict[str, Any]:
        """The defaults with each layer of hyperparameters over them (the gemnet section is
        merged key by key)."""
        config = {**self.config, "gemnet": dict(self.config["gemnet"])}
        for layer in layers:
            config.update({k: v for k, v in layer.items() if k != "gemnet"})
            config["gemnet"].update(layer.get("gemnet") or {})
        return config

    def _load(self) -> None:
        import torch

        torch.manual_seed(self.seed)
        if not self.weights or self.weights == RANDOM_INIT:
            model = self.build(self._config(self.config_overrides))
        else:
            model = self._from_file(Path(self.weights))
        model = frozen(model, self.device)
        model.fc_atom.register_forward_pre_hook(InputKeeper(self._captured))
        self._model = model

    def _from_file(self, path: Path) -> Any:
        folder_config: dict[str, Any] = {}
        if path.is_dir():
            folder_config = _read_config_yaml(path / "config.yaml")
            path = path / "checkpoints" / "last.ckpt"
        elif (path.parent.parent / "config.yaml").exists():  # .../checkpoints/last.ckpt
            folder_config = _read_config_yaml(path.parent.parent / "config.yaml")
        checkpoint = load_torch_checkpoint(path, self.allow_pickle)
        state = checkpoint.get("state_dict", checkpoint)
        model_config = _model_section(checkpoint.get("config")) or \
            _model_section(folder_config) or {}
        config = self._config(self.config_overrides, {
            k: v for k, v in model_config.items()
            if k in ("hidden_dim", "denoise_atom_types", "atom_type_diffusion", "gemnet",
                     "property_embeddings", "property_embeddings_adapt")})
        model = self.build(config)
        if any(k.startswith(STATE_PREFIX) for k in state):
            state = {k.removeprefix(STATE_PREFIX): v for k, v in state.items()
                     if k.startswith(STATE_PREFIX)}
        load_exact_state(model, state, path, "a MatterGen denoiser of this configuration")
        return model

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        atoms = record.atoms
        assert atoms is not None
        if not atoms.pbc.any():
            return ("not periodic: MatterGen takes crystals (GemNet reads the angles between "
                    "bonds and lattice vectors, which a molecule does not have)")
        unknown = sorted({int(z) for z in atoms.numbers} - TRAINING_ELEMENTS)
        if unknown:
            return (f"element(s) Z={unknown} outside the {len(TRAINING_ELEMENTS)} elements "
                    "MatterGen was trained on")
        return structure_problem(atoms, self.max_atoms)

    def atom_features(self, records: Sequence[Record]) -> list[np.ndarray]:
        import torch
        from mattergen.common.data.chemgraph import ChemGraph
        from mattergen.common.data.collate import collate

        graphs = []
        for record in records:
            atoms = record.atoms
            frac = np.asarray(atoms.get_scaled_positions(wrap=True), dtype=np.float64) % 1.0
            graphs.append(ChemGraph(
                pos=torch.tensor(frac, dtype=torch.float32),
                cell=torch.tensor(np.asarray(atoms.cell), dtype=torch.float32)[None],
                atomic_numbers=torch.tensor(atoms.numbers, dtype=torch.long),
                num_atoms=torch.tensor([len(atoms)]), num_nodes=len(atoms)))
        batch = collate(graphs).to(torch.device(self.device))
        t = torch.full((len(records),), self.noise_level, device=torch.device(self.device))
        self._captured.clear()
        with torch.no_grad():
            self._model(batch, t)
        if len(self._captured) != 1:
            raise RuntimeError(f"expected one hooked forward pass, got {len(self._captured)}")
        counts = [len(record.atoms) for record in records]
        features = self._captured.pop().double().cpu()
        if features.shape[0] != sum(counts):
            raise RuntimeError(f"{features.shape[0]} atom features for {sum(counts)} atoms")
        return [f.numpy() for f in torch.split(features, counts)]

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        return EmbedOutput(mean_pool(self.atom_features(records)))


def _read_config_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.exists():
        return {}
    with open(path) as handle:
        return yaml.safe_load(handle) or {}


def _model_section(config: Any) -> dict[str, Any]:
    """``lightning_module.diffusion_module.model`` of a MatterGen run config, or {}."""
    try:
        section = config["lightning_module"]["diffusion_module"]["model"]
    except (KeyError, TypeError):
        return {}
    return dict(section) if isinstance(section, dict) else {}


@contextlib.contextmanager
def _quiet() -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        yield


