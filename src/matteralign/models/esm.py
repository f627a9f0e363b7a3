"""ESM-2 protein language models (transformers ``EsmModel``): the real architecture from the
published config, at random init or from a local (or fetched) checkpoint folder. The
embedding is the last hidden state over the residues; longer sequences are masked, never
cut. Details: docs/models.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from matteralign.models import hf
from matteralign.models.base import EmbedOutput, ModelAdapter
from matteralign.models.weights import RANDOM_INIT, cache_dir
from matteralign.records import Record

#: the published facebook/esm2_t33_650M_UR50D config.json (ESM-2 hyperparameters shared by
#: all sizes); subclasses override the size
ESM2_CONFIG: dict[str, Any] = {
    "vocab_size": 33, "mask_token_id": 32, "pad_token_id": 1, "eos_token_id": 2,
    "hidden_size": 1280, "num_hidden_layers": 33, "num_attention_heads": 20,
    "intermediate_size": 5120, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0, "max_position_embeddings": 1026,
    "position_embedding_type": "rotary", "layer_norm_eps": 1e-5,
    "emb_layer_norm_before": False, "token_dropout": True, "initializer_range": 0.02,
}


class ESM2(ModelAdapter):
    """ESM-2 of one size (``size`` over the 650M config); the sizes are rows of
    :mod:`~matteralign.models.checkpoints`."""

    family = "text"
    #: a checkpoint folder is a valid ``weights:`` path (not only a single file)
    weights_folder_ok = True
    modality = "sequence"
    layer = "last_hidden_state (after emb_layer_norm_after), <cls>/<eos>/padding excluded"
    pooling = "mean over residues"
    #: no weights obtainable offline: random init unless a local checkpoint is configured
    weights_name = RANDOM_INIT
    license = "MIT (ESM-2 code and weights, facebookresearch/esm); Apache-2.0 (transformers)"
    key_packages = ("transformers", "tokenizers", "torch")
    requires_module = "transformers"
    batch_size = 8
    produces_energy = False
    #: the published checkpoint this architecture is (for ``matteralign weights fetch``)
    hub_id: ClassVar[str] = ""
    size: ClassVar[dict[str, int]] = {}

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``config_overrides``: change hyperparameters of the random-init model (tests build
        a small instance of the same class this way)."""
        super().__init__(weights=weights, device=device)
        self.config_overrides = dict(config_overrides or {})
        self._model: Any = None
        self._tokenizer: Any = None

    def weights_path(self) -> Path | None:
        path = super().weights_path()
        if path is not None and path.is_dir():  # hash the weights file, not the folder
            return hf.checkpoint_file(path) or path
        return path

    def fetch_weights(self, dest: Path) -> Path:
        """transformers' own download (``from_pretrained``), saved as a checkpoint folder
        ``dest/{name}`` that this adapter loads by default from then on."""
        from transformers import EsmModel, EsmTokenizer

        target = dest / self.name
        tmp = dest / f".{self.name}.tmp{os.getpid()}"
        EsmModel.from_pretrained(self.hub_id, add_pooling_layer=False).save_pretrained(tmp)
        EsmTokenizer.from_pretrained(self.hub_id).save_pretrained(tmp)
        tmp.replace(target)
        return target

    def config(self) -> Any:
        from transformers import EsmConfig

        return EsmConfig(**{**ESM2_CONFIG, **self.size, **self.config_overrides})

    def _vocab_file(self) -> Path:
        from transformers.models.esm.configuration_esm import get_default_vocab_list

        vocab = "\n".join(get_default_vocab_list()) + "\n"
        path = cache_dir() / "vocab" / "esm2-vocab.txt"
        if not path.exists() or path.read_text() != vocab:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(vocab)
            tmp.replace(path)
        return path

    def _load(self) -> None:
        hf.offline()
        import torch
        from transformers import EsmModel, EsmTokenizer

        hf.ready(self.seed)
        if not self.is_random_init:
            directory = hf.folder_of(str(self.weights))
            model = EsmModel.from_pretrained(str(directory), local_files_only=True,
                                             add_pooling_layer=False)
            vocab = directory / "vocab.txt"
            self._tokenizer = EsmTokenizer(str(vocab if vocab.exists() else self._vocab_file()))
        else:
            model = EsmModel(self.config(), add_pooling_layer=False)
            self._tokenizer = EsmTokenizer(str(self._vocab_file()))
        self._model = model.to(torch.device(self.device)).eval()

    def max_residues(self) -> int:
        """Residues ESM-2 was trained on: 1,024 tokens (<cls> + 1,022 + <eos>); the config's
        1,026 positions count the padding offset of ESM's position scheme too."""
        config = self._model.config if self._model is not None else None
        positions = config.max_position_embeddings if config else ESM2_CONFIG[
            "max_position_embeddings"]
        return int(positions) - 4

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        n = len(record.sequence or "")
        if n > self.max_residues():
            return f"{n} residues > the model's context of {self.max_residues()}"
        return None

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        import torch

        sequences = [str(r.sequence).strip().upper() for r in records]
        batch = self._tokenizer(sequences, padding=True, return_tensors="pt",
                                return_special_tokens_mask=True)
        special = batch.pop("special_tokens_mask").bool()
        batch = {k: v.to(self.device) for k, v in batch.items() if k != "token_type_ids"}
        with torch.no_grad():
            hidden = self._model(**batch).last_hidden_state.cpu().double()
        keep = batch["attention_mask"].cpu().bool() & ~special
        return EmbedOutput(hf.masked_mean(hidden, keep, "a sequence has no residue tokens"))
