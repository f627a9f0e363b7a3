"""AntiBERTy (antiberty 0.1.3 wheel, weights shipped): an antibody language model, BERT with
one token per residue. The embedding is ``bert``'s last hidden state over the residues;
sequences beyond its context or with letters outside its 20 amino acids are masked.
Details: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matteralign.models import hf
from matteralign.models.base import EmbedOutput, ModelAdapter, register_model
from matteralign.models.torch_utils import frozen
from matteralign.models.weights import find_in_site_packages
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

    def __init__(self, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__(weights=weights, device=device)
        self._model: Any = None
        self._tokenizer: Any = None

    def weights_path(self) -> Path | None:
        path = super().weights_path()
        if path is not None and path.is_dir():  # a checkpoint folder: hash its weights file
            return hf.checkpoint_file(path) or path
        return path

    def _shipped(self, relative: str) -> Path:
        path = find_in_site_packages(relative)
        if path is None:
            raise FileNotFoundError(f"{relative} not found in site-packages (antiberty==0.1.3)")
        return path

    def _load(self) -> None:
        hf.offline()
        from antiberty import AntiBERTy as AntiBERTyModel
        from transformers import BertConfig, BertTokenizer

        hf.ready(self.seed)
        vocab = self._shipped(_VOCAB)
        if self.is_random_init:
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
        keep = batch["attention_mask"].cpu().bool() & ~special
        return EmbedOutput(hf.masked_mean(hidden, keep, "a sequence has no residue tokens"))
