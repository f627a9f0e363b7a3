"""ESM-2 protein language models (Lin et al. 2023, Science), as transformers' ``EsmModel``.

No ESM weights can be had offline (fair-esm and Hugging Face download them at run time), so
the adapter builds the real architecture from an ``EsmConfig`` equal to the published
``facebook/esm2_*`` config.json and runs it

- with ``weights=PATH``: a local Hugging Face ESM-2 directory (config.json,
  model.safetensors or pytorch_model.bin, vocab.txt), loaded with ``local_files_only``; or
- at random init (``weights="random-init"``, also the default while no checkpoint is
  configured): every output is then labelled ``random-init``.

They live in the "text" family environment (transformers 5.23.0 + torch 2.13.0), which has
everything EsmModel needs: no environment of their own.

Last hidden layer: ``last_hidden_state`` (after the final layer's output and ESM's
``emb_layer_norm_after``), mean-pooled over the residues only: <cls>, <eos> and padding are
excluded. The tokenizer is transformers' ``EsmTokenizer`` with the ESM-2 alphabet
(``get_default_vocab_list``; one token per residue letter, unknown letters -> <unk>).
Sequences longer than the model's 1,022-residue context are masked with the reason, not cut.
"""

from __future__ import annotations

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
    register_model,
)
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


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


@register_model
class ESM2T33(ModelAdapter):
    name = "esm2-t33-650m"
    family = "text"
    #: a checkpoint folder is a valid ``weights:`` path (not only a single file)
    weights_folder_ok = True
    modality = "sequence"
    architecture = ("ESM-2 650M: transformer encoder, 33 layers, hidden 1280, 20 heads, "
                    "rotary positions (transformers EsmModel)")
    layer = "last_hidden_state (after emb_layer_norm_after), <cls>/<eos>/padding excluded"
    pooling = "mean over residues"
    #: no weights obtainable offline: random init unless a local checkpoint is configured
    weights_name = RANDOM_INIT
    license = "MIT (ESM-2 code and weights, facebookresearch/esm); Apache-2.0 (transformers)"
    key_packages = ("transformers", "tokenizers", "torch")
    requires_module = "transformers"
    batch_size = 8
    produces_energy = False
    seed: ClassVar[int] = 0
    #: the published checkpoint this architecture is (for ``matteralign weights fetch``)
    hub_id: ClassVar[str] = "facebook/esm2_t33_650M_UR50D"
    weights_source = "https://huggingface.co/facebook/esm2_t33_650M_UR50D"
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
        if not self.weights or self.weights == RANDOM_INIT:
            return None
        path = Path(self.weights)
        if path.is_dir():  # hash the weights file, not the directory
            for candidate in ("model.safetensors", "pytorch_model.bin"):
                if (path / candidate).exists():
                    return path / candidate
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
        _offline()
        import torch
        from transformers import EsmModel, EsmTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        torch.manual_seed(self.seed)
        if self.weights and self.weights != RANDOM_INIT:
            directory = Path(self.weights)
            directory = directory if directory.is_dir() else directory.parent
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
        keep = (batch["attention_mask"].cpu().bool() & ~special).double().unsqueeze(-1)
        counts = keep.sum(dim=1)
        if bool((counts == 0).any()):
            raise ValueError("a sequence has no residue tokens")
        pooled = (hidden * keep).sum(dim=1) / counts
        return EmbedOutput(pooled.numpy().astype(np.float32))


@register_model
class ESM2T6(ESM2T33):
    """ESM-2 8M (6 layers, hidden 320): the smallest ESM-2, same architecture."""

    name = "esm2-t6-8m"
    architecture = ("ESM-2 8M: transformer encoder, 6 layers, hidden 320, 20 heads, rotary "
                    "positions (transformers EsmModel)")
    batch_size = 32
    hub_id = "facebook/esm2_t6_8M_UR50D"
    weights_source = "https://huggingface.co/facebook/esm2_t6_8M_UR50D"
    size = {"hidden_size": 320, "num_hidden_layers": 6, "num_attention_heads": 20,
            "intermediate_size": 1280}
