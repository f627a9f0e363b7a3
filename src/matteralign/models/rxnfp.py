"""rxnfp BERTs (Schwaller et al. 2021, Nat. Mach. Intell. 3, 144): BERT encoders trained on
USPTO reaction SMILES, read here on a molecule's SMILES. The ``rxnfp==0.1.0`` wheel ships
three checkpoints with their vocab.txt (591 SMILES tokens): ``bert_pretrained`` (masked-LM
only), ``bert_ft`` (fine-tuned on reaction classes: the encoder behind rxnfp's fingerprints)
and ``bert_ft_10k_25s`` (fine-tuned on a 10k-reaction subset). Every encoder tensor must come
from the file; the unused heads are the only keys allowed to be left over.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from matteralign.models import hf
from matteralign.models.smiles import UNUSED_HEADS, SmilesLM
from matteralign.models.weights import find_in_site_packages

#: where the rxnfp wheel keeps its checkpoints (relative to site-packages)
RXNFP_MODELS = "rxnfp/models/transformers"


class RxnfpBert(SmilesLM):
    """An rxnfp BERT checkpoint folder of the wheel (``checkpoint``) or a local one."""


    architecture = ("BERT encoder (rxnfp): 12 layers, hidden 256, 4 heads, intermediate 512, "
                    "512 positions, 591-token SMILES vocab, 6.6M params")
    layer = "last_hidden_state (output of encoder layer 12), [CLS]/[SEP]/padding excluded"
    license = "MIT (rxnfp code and weights); Apache-2.0 (transformers)"
    key_packages = ("rxnfp", "transformers", "tokenizers", "torch")
    requires_module = "rxnfp"
    #: the checkpoint folder inside the rxnfp wheel
    checkpoint: ClassVar[str] = ""

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 allow_unknown: bool = True) -> None:
        """``allow_unknown``: embed SMILES whose regex tokens are missing from the vocab as
        [UNK] (rxnfp's behaviour, the default) or mask them with the tokens named."""
        super().__init__(weights=weights, device=device)
        self.allow_unknown = allow_unknown

    def model_dir(self) -> Path:
        directory = self.local_dir()
        if directory is not None:
            return directory
        shipped = find_in_site_packages(f"{RXNFP_MODELS}/{self.checkpoint}")
        if shipped is None:
            raise FileNotFoundError(f"rxnfp's bundled {self.checkpoint} directory is missing "
                                    "(build .envs/smiles)")
        return shipped

    def _load(self) -> None:
        hf.offline()
        import torch
        from transformers import BertConfig, BertModel

        hf.ready(self.seed, errors_only=True)
        directory = self.model_dir()
        if self.is_random_init:
            config = BertConfig.from_json_file(str(directory / "config.json"))
            model = BertModel(config, add_pooling_layer=False)
        else:
            model = hf.load_pretrained(BertModel, directory, "an rxnfp BERT checkpoint",
                                       UNUSED_HEADS, add_pooling_layer=False)
        # rxnfp's tokenizer, whatever else the folder holds (bert_ft_10k_25s has an empty
        # tokenizer_config.json that would make AutoTokenizer a plain WordPiece BERT one)
        self._tokenizer = self._regex_tokenizer(directory)
        self._model = model.to(torch.device(self.device)).eval()
        self._context = int(model.config.max_position_embeddings)
