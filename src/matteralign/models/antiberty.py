"""AntiBERTy (Ruffolo, Gray & Sulam 2021, arXiv:2112.07782, "Deciphering antibody affinity
maturation with language models and weakly supervised learning"), an antibody language model.

Weights: ``AntiBERTy_md_smooth``, shipped in the antiberty 0.1.3 wheel
(``antiberty/trained_models/AntiBERTy_md_smooth/pytorch_model.bin`` + config.json, and the
25-token ``vocab.txt``; antiberty 1.x no longer ships them). transformers 4.57 reads the .bin
with ``torch.load(weights_only=True)``. License: MIT (LICENSE.MD of the wheel, Jeffrey
Ruffolo).

AntiBERTy is trained by masked language modelling (plus species/chain classification heads) on
558M natural antibody sequences from the Observed Antibody Space, heavy and light chains
only. For other proteins its representations are out of distribution: they are still the
model's vectors, but a comparison with general protein models measures that mismatch too.

Model: AntiBERTy's own ``AntiBERTy`` class (a transformers ``BertPreTrainedModel``: BERT
encoder, 8 layers, hidden 512, 8 heads, 512 absolute positions). Tokens: one per residue
(transformers' ``BertTokenizer`` with the shipped vocab on the space-separated sequence, as
``AntiBERTyRunner`` does), ``[CLS]`` first and ``[SEP]`` last.

Last hidden layer: ``bert`` ``last_hidden_state``, the output of the 8th transformer layer
(BERT has no further norm; ``AntiBERTyRunner.embed``'s default ``hidden_layer=-1`` is the same
tensor), mean-pooled over the residue tokens: [CLS], [SEP] and padding are excluded.
Masked with the reason: sequences longer than the 510 residues the positions allow (not cut),
and sequences with letters outside its 20-amino-acid vocabulary (X, B, Z, U, O would become
[UNK], a token the model never learnt).
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
    find_in_site_packages,
    frozen,
    register_model,
)
from matteralign.records import Record

_MODEL_DIR = "antiberty/trained_models/AntiBERTy_md_smooth"
_VOCAB = "antiberty/trained_models/vocab.txt"
AMINO_ACIDS = frozenset("ACDEFGHIKLMNPQRSTVWY")


@register_model
class AntiBERTy(ModelAdapter):
    name = "antiberty"
    family = "protein"
    #: a checkpoint folder is a valid ``weights:`` path (not only a single file)
    weights_folder_ok = True
    modality = "sequence"
    architecture = ("AntiBERTy: BERT encoder, 8 layers, hidden 512, 8 heads, 512 absolute "
                    "positions, 25-token amino-acid vocabulary; masked-LM on 558M antibody "
                    "sequences (OAS)")
    layer = ("bert last_hidden_state (output of transformer layer 8 of 8), [CLS]/[SEP]/"
             "padding excluded")
    pooling = "mean over residues"
    weights_name = "AntiBERTy_md_smooth"
    weights_in_package = f"{_MODEL_DIR}/pytorch_model.bin"
    license = "MIT (antiberty 0.1.3 wheel, LICENSE.MD: code and shipped weights)"
    key_packages = ("antiberty", "transformers", "tokenizers", "torch")
    requires_module = "antiberty"
    batch_size = 16
    seed: ClassVar[int] = 0

    def __init__(self, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__(weights=weights, device=device)
        self._model: Any = None
        self._tokenizer: Any = None

    def weights_path(self) -> Path | None:
        path = super().weights_path()
        if path is not None and path.is_dir():  # a checkpoint folder: hash its weights file
            for candidate in ("model.safetensors", "pytorch_model.bin"):
                if (path / candidate).exists():
                    return path / candidate
        return path

    def _shipped(self, relative: str) -> Path:
        path = find_in_site_packages(relative)
        if path is None:
            raise FileNotFoundError(f"{relative} not found in site-packages (antiberty==0.1.3)")
        return path

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from antiberty import AntiBERTy as AntiBERTyModel
        from transformers import BertConfig, BertTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        torch.manual_seed(self.seed)
        vocab = self._shipped(_VOCAB)
        if self.weights == RANDOM_INIT:
            config = BertConfig.from_json_file(str(self._shipped(f"{_MODEL_DIR}/config.json")))
            model = AntiBERTyModel(config)
        else:
            path = Path(self.weights) if self.weights else self._shipped(_MODEL_DIR)
            directory = path if path.is_dir() else path.parent
            model = AntiBERTyModel.from_pretrained(str(directory), local_files_only=True)
            if (directory / "vocab.txt").is_file():  # a checkpoint folder with its own vocab
                vocab = directory / "vocab.txt"
        self._tokenizer = BertTokenizer(vocab_file=str(vocab), do_lower_case=False)
        self._model = frozen(model, self.device)

    def max_residues(self) -> int:
        """Residues that fit the 512 positions next to [CLS] and [SEP]."""
        config = self._model.config if self._model is not None else None
        return (int(config.max_position_embeddings) if config else 512) - 2

    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        sequence = str(record.sequence).strip().upper()
        unknown = sorted(set(sequence) - AMINO_ACIDS)
        if unknown:
            return (f"letters outside AntiBERTy's 20-amino-acid vocabulary: "
                    f"{''.join(unknown)}")
        if len(sequence) > self.max_residues():
            return f"{len(sequence)} residues > the model's context of {self.max_residues()}"
        return None

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        import torch

        spaced = [" ".join(str(r.sequence).strip().upper()) for r in records]
        batch = self._tokenizer(spaced, padding=True, return_tensors="pt",
                                return_special_tokens_mask=True)
        special = batch.pop("special_tokens_mask").bool()
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with torch.no_grad():
            hidden = self._model.bert(**batch).last_hidden_state.cpu().double()
        keep = (batch["attention_mask"].cpu().bool() & ~special).double().unsqueeze(-1)
        counts = keep.sum(dim=1)
        if bool((counts == 0).any()):
            raise ValueError("a sequence has no residue tokens")
        pooled = (hidden * keep).sum(dim=1) / counts
        return EmbedOutput(pooled.numpy().astype(np.float32))
