"""ChemBERTa-2 (Ahmad et al. 2022, arXiv:2209.01712), 77M-MLM: transformers' ``RobertaModel``
with DeepChem/ChemBERTa-77M-MLM's published config. Its weights are on Hugging Face only, so
it runs at random init (the default; token ids from rxnfp's SMILES vocab through the regex
tokenizer, which need not match ChemBERTa's own ids) or from a local ``save_pretrained``
folder (read with its own tokenizer files when present, else its vocab.txt).
"""

from __future__ import annotations

from typing import Any, ClassVar

from matteralign.models import hf
from matteralign.models.base import ModelUnavailable, register_model
from matteralign.models.rxnfp import RXNFP_MODELS
from matteralign.models.smiles import UNUSED_HEADS, SmilesLM, SmilesRegexTokenizer
from matteralign.models.weights import RANDOM_INIT, find_in_site_packages

#: files that make a ChemBERTa directory's tokenizer a Hugging Face one (else its vocab.txt is
#: read by the regex tokenizer)
HF_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")

#: DeepChem/ChemBERTa-77M-MLM config.json (published; dropout is irrelevant in eval mode)
CHEMBERTA_77M_CONFIG: dict[str, Any] = {
    "vocab_size": 600, "hidden_size": 384, "num_hidden_layers": 3, "num_attention_heads": 12,
    "intermediate_size": 464, "hidden_act": "gelu", "hidden_dropout_prob": 0.144,
    "attention_probs_dropout_prob": 0.109, "max_position_embeddings": 515,
    "type_vocab_size": 1, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
    "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
    "position_embedding_type": "absolute",
}



@register_model
class ChemBERTa77MMLM(SmilesLM):
    name = "chemberta-77m-mlm"
    architecture = ("RoBERTa encoder (ChemBERTa-2 77M-MLM config): 3 layers, hidden 384, 12 "
                    "heads, intermediate 464, 515 positions, vocab 600, 3.3M params "
                    "(transformers RobertaModel)")
    layer = "last_hidden_state (output of encoder layer 3), special tokens/padding excluded"
    #: no weights obtainable offline: random init unless a local checkpoint is configured
    weights_name = RANDOM_INIT
    license = "MIT (ChemBERTa-2, DeepChem); Apache-2.0 (transformers)"
    hub_id: ClassVar[str] = "DeepChem/ChemBERTa-77M-MLM"

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 allow_unknown: bool = True,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``allow_unknown``: as for the rxnfp models. ``config_overrides``: change
        hyperparameters of the random-init model (tests build a small instance this way)."""
        super().__init__(weights=weights, device=device)
        self.allow_unknown = allow_unknown
        self.config_overrides = dict(config_overrides or {})

    def config(self) -> Any:
        from transformers import RobertaConfig

        return RobertaConfig(**{**CHEMBERTA_77M_CONFIG, **self.config_overrides})

    def _load(self) -> None:
        hf.offline()
        import torch
        from transformers import RobertaModel

        hf.ready(self.seed, errors_only=True)
        directory = self.local_dir()
        if directory is None:
            model = RobertaModel(self.config(), add_pooling_layer=False)
            vocab = find_in_site_packages(f"{RXNFP_MODELS}/bert_ft/vocab.txt")
            if vocab is None:
                raise ModelUnavailable("the random-init ChemBERTa reads rxnfp's SMILES vocab, "
                                       "missing here: build .envs/smiles")
            self._tokenizer = SmilesRegexTokenizer(vocab)
        else:
            model = hf.load_pretrained(RobertaModel, directory, "a ChemBERTa checkpoint",
                                       UNUSED_HEADS, add_pooling_layer=False)
            own = any((directory / name).exists() for name in HF_TOKENIZER_FILES)
            self._tokenizer = self._hf_tokenizer(directory) if own else \
                self._regex_tokenizer(directory)
        self._model = model.to(torch.device(self.device)).eval()
        # RoBERTa's positions start after the padding index: 515 - 1 - 1 = 513 tokens
        config = model.config
        self._context = int(config.max_position_embeddings) - int(config.pad_token_id) - 1
        limit = getattr(getattr(self._tokenizer, "tokenizer", None), "model_max_length", None)
        if isinstance(limit, int) and 0 < limit < self._context:
            self._context = limit
