"""MoLFormer-XL (Ross et al. 2022, Nat. Mach. Intell. 4, 1256), ibm/MoLFormer-XL-both-10pct.

Its Hugging Face architecture and tokenizer are remote code inside the checkpoint folder
(``auto_map`` in its config.json), so there is no random-init variant and loading runs only
with the option ``trust_remote_code=True``; ``deterministic_eval`` is set where the config
has it (fixed random features in the linear attention, as its model card asks).
"""

from __future__ import annotations

import json
from typing import ClassVar

from matteralign.models import hf
from matteralign.models.base import ModelUnavailable, register_model
from matteralign.models.smiles import UNUSED_HEADS, HFTokenizer, SmilesLM
from matteralign.models.weights import RANDOM_INIT


@register_model
class MoLFormerXL(SmilesLM):
    name = "molformer-xl-both-10pct"
    architecture = ("MoLFormer-XL (Hugging Face remote code): 12-layer linear-attention "
                    "transformer encoder with rotary positions, hidden 768, 47M params")
    layer = "last_hidden_state (output of the final encoder layer), special tokens excluded"
    #: no weights nor architecture offline: needs a local checkpoint directory
    weights_name = RANDOM_INIT
    license = "Apache-2.0 (MoLFormer code and weights, IBM); Apache-2.0 (transformers)"
    hub_id: ClassVar[str] = "ibm/MoLFormer-XL-both-10pct"
    batch_size = 32

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 trust_remote_code: bool = False) -> None:
        """``trust_remote_code``: allow the checkpoint directory's own Python code (MoLFormer's
        architecture and tokenizer live there) to be imported and run."""
        super().__init__(weights=weights, device=device)
        self.trust_remote_code = trust_remote_code

    requires_checkpoint = True

    def _load(self) -> None:
        directory = self.local_dir()
        if directory is None:
            raise ModelUnavailable(
                f"{self.name}: MoLFormer's architecture is remote code inside its Hugging Face "
                f"checkpoint ({self.hub_id}), so there is no random-init variant; download it "
                "elsewhere, then set this model's weights to the local directory and "
                "options: {trust_remote_code: true}")
        config_file = directory / "config.json"
        auto_map = json.loads(config_file.read_text()).get("auto_map") \
            if config_file.exists() else None
        code = sorted(p.name for p in directory.glob("*.py"))
        if not self.trust_remote_code:
            raise PermissionError(
                f"{self.name}: {directory} defines its architecture in its own Python code "
                f"({', '.join(code) or 'auto_map ' + str(auto_map)}); loading it runs that "
                "code. Only if you trust the directory, set options: {trust_remote_code: true} "
                "in this model's config entry")
        hf.offline()
        import torch
        from transformers import AutoConfig, AutoModel

        hf.ready(self.seed, errors_only=True)
        config = AutoConfig.from_pretrained(str(directory), local_files_only=True,
                                            trust_remote_code=True)
        if hasattr(config, "deterministic_eval"):  # MolformerConfig: fixed random features
            config.deterministic_eval = True
        model = hf.load_pretrained(AutoModel, directory, "a MoLFormer checkpoint", UNUSED_HEADS,
                                   config=config, trust_remote_code=True)
        self._tokenizer = self._hf_tokenizer(directory, trust_remote_code=True)
        self._model = model.to(torch.device(self.device)).eval()
        positions = getattr(model.config, "max_position_embeddings", None)
        limit = getattr(self._tokenizer.tokenizer, "model_max_length", None) \
            if isinstance(self._tokenizer, HFTokenizer) else None
        candidates = [int(v) for v in (positions, limit) if isinstance(v, int) and 0 < v < 10**6]
        self._context = min(candidates) if candidates else 10**6
