"""MatterGen's denoiser (``GemNetTDenoiser``, mattergen 1.0.3): the clean crystal is presented at
a small noise level and the embedding is GemNet-T's atom embeddings after the last block
(the input of the atom-type head). The weights are on the Hugging Face hub only, so it runs
at random init or from MatterGen's own checkpoint layout; crystals only, its 76 training
elements. Details: docs/models.md.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.atoms import AtomsAdapter, outside
from matteralign.models.base import register_model
from matteralign.models.torch_utils import frozen, load_exact_state, load_torch_checkpoint
from matteralign.models.weights import RANDOM_INIT
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
class MatterGenBase(AtomsAdapter):
    name = "mattergen-base"
    family = "mattergen"
    #: a checkpoint folder is a valid ``weights:`` path (not only a single file)
    weights_folder_ok = True
    architecture = ("MatterGen denoiser (GemNetTDenoiser, mattergen 1.0.3): GemNet-T, 4 blocks, "
                    "512-d atom/edge embeddings, 7 A cutoff, 50 neighbours, noise-level "
                    "latent; the mattergen_base (Alex-MP-20) configuration")
    layer = ("GemNet-T atom embeddings h after the last interaction block (node_embeddings, "
             "the atom-type head's input; 512-d per atom)")
    weights_name = RANDOM_INIT
    license = "MIT (mattergen code and weights)"
    key_packages = ("mattergen", "torch-scatter", "torch-sparse", "torch-geometric", "torch")
    requires_module = "mattergen"
    batch_size = 16
    produces_energy = False
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
        super().__init__(weights=weights, device=device, max_atoms=max_atoms)
        if not 0.0 <= noise_level <= 1.0:
            raise ValueError(f"noise_level={noise_level} is outside MatterGen's diffusion "
                             "time [0, 1]; the default is 1e-3 (its sampler's last step)")
        self.noise_level = float(noise_level)
        self.allow_pickle = allow_pickle
        self.config_overrides = dict(config_overrides or {})

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
        if self.is_random_init:
            model = self.build(self._config(self.config_overrides))
        else:
            model = self._from_file(Path(str(self.weights)))
        model = frozen(model, self.device)
        self.hook(model.fc_atom, inputs=True)
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

    def check_atoms(self, atoms: Any) -> str | None:
        if not atoms.pbc.any():
            return ("not periodic: MatterGen takes crystals (GemNet reads the angles between "
                    "bonds and lattice vectors, which a molecule does not have)")
        unknown = outside(atoms, TRAINING_ELEMENTS)
        if unknown:
            return (f"element(s) Z={unknown} outside the {len(TRAINING_ELEMENTS)} elements "
                    "MatterGen was trained on")
        return None

    def atom_features(self, records: Sequence[Record]) -> tuple[list[np.ndarray], None]:
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
        self.start_capture()
        with torch.no_grad():
            self._model(batch, t)
        return self.take_capture([len(record.atoms) for record in records]), None


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


