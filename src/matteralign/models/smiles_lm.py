"""Chemical language models that read a molecule's SMILES string ("smiles" family).

rxnfp BERTs (Schwaller et al. 2021, "Mapping the space of chemical reactions using
attention-based neural networks", Nat. Mach. Intell. 3, 144): BERT encoders (12 layers,
hidden 256, 4 heads, intermediate 512, 512 positions, 6.6M params) trained on USPTO reaction
SMILES. The ``rxnfp==0.1.0`` wheel ships all three checkpoints with their vocab.txt (591
SMILES tokens), loaded here offline with transformers' ``BertModel``:

- ``rxnfp-bert-pretrained``: ``bert_pretrained``, masked-language-model pretraining only;
- ``rxnfp-bert-ft``: ``bert_ft``, fine-tuned on reaction-class prediction (Pistachio), the
  encoder behind rxnfp's published reaction fingerprints;
- ``rxnfp-bert-ft-10k``: ``bert_ft_10k_25s``, fine-tuned on a 10k-reaction subset (its
  50-class classifier head is not used).

Every encoder tensor comes from the file (no missing keys; the unused MLM/NSP, pooler and
classifier heads are the only unexpected ones, and anything else is an error). The models
saw reaction SMILES ("reactants>>products"); a molecule's SMILES is read as is.

Tokenisation: rxnfp's own ``SmilesTokenizer`` is a ``BertTokenizer`` subclass whose
``_tokenize`` applies rxnfp's SMILES regex. Under transformers 5 ``BertTokenizer`` is the
Rust-backed tokenizer, which never calls ``_tokenize`` (every SMILES becomes [UNK]), so this
module re-implements it exactly: the same regex (``SMI_REGEX_PATTERN``), the same vocab.txt
(token id = line number), ``[CLS] tokens [SEP]``. Checked once against rxnfp 0.1.0's own
tokenizer and model under transformers 4.57.6 (where its tokenizer still works) on 12 SMILES
and reactions: identical token ids, last hidden states within 6e-6, for all three
checkpoints; the tests pin the ids of aspirin.
Two choices where rxnfp is silent or lossy:

- characters the regex does not cover (rxnfp silently drops them; none occur in valid
  RDKit SMILES) mask the structure with the reason instead;
- regex tokens absent from vocab.txt become [UNK] as in rxnfp and are kept (an unusual
  charged or isotopic bracket atom should not mask the molecule); they are counted per
  structure in ``unknown_counts`` and the option ``allow_unknown=False`` masks them instead.

SMILES longer than the model's context (512 positions: 510 SMILES tokens + [CLS] + [SEP])
are masked with the reason, never truncated (rxnfp truncates).

ChemBERTa-2 (Ahmad et al. 2022, arXiv:2209.01712), ``chemberta-77m-mlm``: transformers'
``RobertaModel`` with DeepChem/ChemBERTa-77M-MLM's published config.json (3 layers, hidden
384, 12 heads, intermediate 464, 515 positions, vocab 600, pad id 1, type vocab 1; several
published copies agree; "77M" is the 77M PubChem molecules it saw, not its size: 3.28M
encoder parameters, and RobertaForMaskedLM's 3,428,808 float32 parameters are the 13.7 MB of
the published pytorch_model.bin). Its weights are on Hugging Face only, so it runs at random
init (the default) or from a local ``save_pretrained`` directory (``weights=DIR``, read with
its own tokenizer files when present, else with a vocab.txt through the regex tokenizer
above). At random init the token ids come from rxnfp's 591-token SMILES vocab through the
regex tokenizer: ChemBERTa-2's own tokenizer files (vocab.json with <s>/</s> added at ids
591/592) are not shipped anywhere offline, so these ids need not match its ids.

MoLFormer (Ross et al. 2022, Nat. Mach. Intell. 4, 1256), ``molformer-xl-both-10pct``
(ibm/MoLFormer-XL-both-10pct): its Hugging Face architecture and tokenizer are *remote code*
(``modeling_molformer.py`` etc. inside the checkpoint directory, ``auto_map`` in its
config.json), not part of transformers. Running that code is only allowed with the option
``trust_remote_code=True``; otherwise loading stops with an error saying why and how. It
then loads with ``AutoModel``/``AutoTokenizer``, with the config's ``deterministic_eval`` set
to True where it has one (as MoLFormer's model card asks: fixed random features in the
linear attention, so embeddings are reproducible). No random-init variant
exists (the architecture is not obtainable offline: gt4sd-molformer 0.1.3 on PyPI holds only
the original fast-transformers training code, not the Hugging Face classes). **The MoLFormer
architecture itself is untested here**: the tests prove the trust_remote_code plumbing with a
tiny checkpoint directory holding remote code of their own.

Last hidden layer (all models): ``last_hidden_state``, the output of the final encoder
layer, mean-pooled over the SMILES tokens only: [CLS]/[SEP] (<s>/</s>, <bos>/<eos>) and
padding are excluded (rxnfp's fingerprint is the [CLS] state instead; the study pools every
model's last layer the same way). Inputs are right-padded, so batching does not change the
states of real tokens.

License: rxnfp code and weights MIT; ChemBERTa-2 (DeepChem) MIT; MoLFormer Apache-2.0;
transformers Apache-2.0.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from matteralign.models.base import (
    RANDOM_INIT,
    EmbedOutput,
    ModelAdapter,
    ModelUnavailable,
    find_in_site_packages,
    register_model,
)
from matteralign.records import Record

#: rxnfp.tokenization.SMI_REGEX_PATTERN (rxnfp 0.1.0, MIT)
SMI_REGEX_PATTERN = (r"(\%\([0-9]{3}\)|\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\||\(|\)|\."
                     r"|=|#|-|\+|\\|\/|:|~|@|\?|>>?|\*|\$|\%[0-9]{2}|[0-9])")
SMI_REGEX = re.compile(SMI_REGEX_PATTERN)
#: where the rxnfp wheel keeps its checkpoints (relative to site-packages)
RXNFP_MODELS = "rxnfp/models/transformers"
#: files that make a ChemBERTa directory's tokenizer a Hugging Face one (else its vocab.txt is
#: read by the regex tokenizer)
HF_TOKENIZER_FILES = ("tokenizer.json", "vocab.json")
#: checkpoint heads BertModel/RobertaModel do not hold (anything else unexpected is an error)
UNUSED_HEADS = ("cls.", "lm_head.", "classifier.", "pooler.", "bert.pooler.", "roberta.pooler.")

#: DeepChem/ChemBERTa-77M-MLM config.json (published; dropout is irrelevant in eval mode)
CHEMBERTA_77M_CONFIG: dict[str, Any] = {
    "vocab_size": 600, "hidden_size": 384, "num_hidden_layers": 3, "num_attention_heads": 12,
    "intermediate_size": 464, "hidden_act": "gelu", "hidden_dropout_prob": 0.144,
    "attention_probs_dropout_prob": 0.109, "max_position_embeddings": 515,
    "type_vocab_size": 1, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
    "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
    "position_embedding_type": "absolute",
}


def _offline() -> None:
    # Hugging Face is never contacted: weights come from the wheel or a local directory
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a "Loading weights" bar per load clutters job logs
    hf_logging.set_verbosity_error()  # the load report is checked explicitly instead


class SmilesRegexTokenizer:
    """rxnfp's SmilesTokenizer: rxnfp's SMILES regex, then vocab.txt (id = line number),
    ``[CLS] ... [SEP]``; tokens missing from the vocab become [UNK]."""

    def __init__(self, vocab_file: str | Path) -> None:
        self.vocab_file = Path(vocab_file)
        lines = self.vocab_file.read_text(encoding="utf-8").splitlines()
        self.vocab = {token: i for i, token in enumerate(lines)}
        self.cls_id, self.sep_id = self.vocab["[CLS]"], self.vocab["[SEP]"]
        self.pad_id, self.unk_id = self.vocab["[PAD]"], self.vocab["[UNK]"]

    @staticmethod
    def tokens(smiles: str) -> list[str]:
        return SMI_REGEX.findall(smiles)

    def uncovered(self, smiles: str) -> str:
        """Characters the regex skips (rxnfp drops them silently)."""
        leftover, position = [], 0
        for match in SMI_REGEX.finditer(smiles):
            leftover.append(smiles[position:match.start()])
            position = match.end()
        leftover.append(smiles[position:])
        return "".join(leftover)

    def unknown(self, smiles: str) -> list[str]:
        return [t for t in self.tokens(smiles) if t not in self.vocab]

    def encode(self, smiles: str) -> tuple[list[int], list[bool]]:
        """Token ids and which of them are special ([CLS]/[SEP])."""
        ids = [self.vocab.get(t, self.unk_id) for t in self.tokens(smiles)]
        return [self.cls_id, *ids, self.sep_id], [True] + [False] * len(ids) + [True]

    def save(self, directory: str | Path) -> None:
        Path(directory, "vocab.txt").write_text(self.vocab_file.read_text(encoding="utf-8"),
                                                encoding="utf-8")


class HFTokenizer:
    """A checkpoint directory's own Hugging Face tokenizer behind the same interface."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.unk_id = tokenizer.unk_token_id

    def uncovered(self, smiles: str) -> str:
        return ""

    def unknown(self, smiles: str) -> list[str]:
        ids, _ = self.encode(smiles)
        return ["<unk>" for i in ids if self.unk_id is not None and i == self.unk_id]

    def encode(self, smiles: str) -> tuple[list[int], list[bool]]:
        out = self.tokenizer(smiles, add_special_tokens=True, return_special_tokens_mask=True)
        return list(out["input_ids"]), [bool(s) for s in out["special_tokens_mask"]]

    def save(self, directory: str | Path) -> None:
        self.tokenizer.save_pretrained(str(directory))


def _checkpoint_file(directory: Path) -> Path | None:
    for candidate in ("model.safetensors", "pytorch_model.bin"):
        if (directory / candidate).exists():
            return directory / candidate
    return None


def _check_load_report(info: dict[str, Any], directory: Path) -> None:
    """Every parameter of the encoder must come from the checkpoint."""
    missing = sorted(info.get("missing_keys") or [])
    mismatched = sorted(str(k) for k in info.get("mismatched_keys") or [])
    unexpected = sorted(k for k in info.get("unexpected_keys") or []
                        if not k.startswith(UNUSED_HEADS))
    if missing or mismatched or unexpected:
        raise ValueError(f"{directory} does not fit the architecture: missing {missing[:5]}, "
                         f"mismatched {mismatched[:5]}, unexpected {unexpected[:5]}")


class _SmilesLM(ModelAdapter):
    """Shared tokenising, masking and pooling of the SMILES encoders (not registered)."""

    family = "smiles"
    #: a checkpoint folder is a valid ``weights:`` path (not only a single file)
    weights_folder_ok = True
    modality = "smiles"
    pooling = "mean over SMILES tokens (special tokens and padding excluded)"
    key_packages: ClassVar[tuple[str, ...]] = ("transformers", "tokenizers", "torch")
    requires_module = "transformers"
    batch_size = 64
    produces_energy = False
    seed: ClassVar[int] = 0

    def __init__(self, weights: str | None = None, device: str = "cpu") -> None:
        super().__init__(weights=weights, device=device)
        self.allow_unknown = True
        self._model: Any = None
        self._tokenizer: Any = None
        self._context = 0
        #: unknown-token count of every structure check() saw that had any
        self.unknown_counts: dict[str, int] = {}

    # -- loading ----------------------------------------------------------------------------
    def local_dir(self) -> Path | None:
        if not self.weights or self.weights == RANDOM_INIT:
            return None
        path = Path(self.weights)
        return path if path.is_dir() else path.parent

    def weights_path(self) -> Path | None:
        directory = self.local_dir()
        if directory is not None:  # hash the weights file, not the directory
            return _checkpoint_file(directory) or Path(self.weights or "")
        return super().weights_path()

    @staticmethod
    def _regex_tokenizer(directory: Path) -> SmilesRegexTokenizer:
        if not (directory / "vocab.txt").exists():
            raise FileNotFoundError(f"{directory} has no vocab.txt for the SMILES tokenizer")
        return SmilesRegexTokenizer(directory / "vocab.txt")

    @staticmethod
    def _hf_tokenizer(directory: Path, trust_remote_code: bool = False) -> HFTokenizer:
        from transformers import AutoTokenizer

        return HFTokenizer(AutoTokenizer.from_pretrained(
            str(directory), local_files_only=True, trust_remote_code=trust_remote_code))

    def context(self) -> int:
        """Most tokens (special tokens included) the model takes."""
        return self._context

    # -- per structure ----------------------------------------------------------------------
    def check(self, record: Record) -> str | None:
        reason = super().check(record)
        if reason:
            return reason
        self.load()
        smiles = str(record.smiles).strip()
        skipped = self._tokenizer.uncovered(smiles)
        if skipped.strip():
            return f"SMILES characters the tokenizer cannot read: {skipped.strip()[:40]!r}"
        unknown = self._tokenizer.unknown(smiles)
        if unknown:
            self.unknown_counts[record.id] = len(unknown)
            if not self.allow_unknown:
                return f"{len(unknown)} SMILES tokens not in the vocabulary: " + \
                    " ".join(sorted(set(unknown)))[:120]
        ids, special = self._tokenizer.encode(smiles)
        if not any(not s for s in special):
            return "no SMILES tokens"
        if len(ids) > self.context():
            return (f"{len(ids) - sum(special)} SMILES tokens (+{sum(special)} special) > the "
                    f"model's context of {self.context()} tokens")
        return None

    def token_states(self, smiles: Sequence[str]) -> tuple[Any, Any]:
        """Last-layer states [B, T, D] (float64, CPU) and the mask of SMILES tokens [B, T]."""
        import torch

        encoded = [self._tokenizer.encode(s.strip()) for s in smiles]
        length = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(encoded), length), self._tokenizer.pad_id,
                               dtype=torch.long)
        attention = torch.zeros((len(encoded), length), dtype=torch.long)
        keep = torch.zeros((len(encoded), length), dtype=torch.bool)
        for i, (ids, special) in enumerate(encoded):  # right padding
            input_ids[i, :len(ids)] = torch.tensor(ids)
            attention[i, :len(ids)] = 1
            keep[i, :len(ids)] = ~torch.tensor(special)
        device = torch.device(self.device)
        with torch.no_grad():
            hidden = self._model(input_ids=input_ids.to(device),
                                 attention_mask=attention.to(device)).last_hidden_state
        return hidden.detach().cpu().double(), keep

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        import torch

        hidden, keep = self.token_states([str(r.smiles) for r in records])
        counts = keep.sum(dim=1, keepdim=True)
        if bool((counts == 0).any()):
            raise ValueError("a SMILES has no tokens besides the special ones")
        # where(), not a product: a NaN in a padded position must not reach the mean
        summed = torch.where(keep.unsqueeze(-1), hidden, torch.zeros_like(hidden)).sum(dim=1)
        return EmbedOutput((summed / counts.double()).numpy().astype(np.float32))


class _RxnfpBert(_SmilesLM):
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
        _offline()
        import torch
        from transformers import BertConfig, BertModel

        _quiet_transformers()
        torch.manual_seed(self.seed)
        directory = self.model_dir()
        if self.weights == RANDOM_INIT:
            config = BertConfig.from_json_file(str(directory / "config.json"))
            model = BertModel(config, add_pooling_layer=False)
        else:
            model, info = BertModel.from_pretrained(
                str(directory), local_files_only=True, add_pooling_layer=False,
                output_loading_info=True, weights_only=True)
            _check_load_report(info, directory)
        # rxnfp's tokenizer, whatever else the folder holds (bert_ft_10k_25s has an empty
        # tokenizer_config.json that would make AutoTokenizer a plain WordPiece BERT one)
        self._tokenizer = self._regex_tokenizer(directory)
        self._model = model.to(torch.device(self.device)).eval()
        self._context = int(model.config.max_position_embeddings)


@register_model
class RxnfpBertPretrained(_RxnfpBert):
    name = "rxnfp-bert-pretrained"
    weights_name = "rxnfp bert_pretrained (USPTO reaction SMILES, MLM; rxnfp 0.1.0 wheel)"
    weights_in_package = f"{RXNFP_MODELS}/bert_pretrained/pytorch_model.bin"
    checkpoint = "bert_pretrained"


@register_model
class RxnfpBertFt(_RxnfpBert):
    name = "rxnfp-bert-ft"
    weights_name = ("rxnfp bert_ft (MLM + reaction-class fine-tuning, rxnfp's fingerprint "
                    "model; rxnfp 0.1.0 wheel)")
    weights_in_package = f"{RXNFP_MODELS}/bert_ft/pytorch_model.bin"
    checkpoint = "bert_ft"


@register_model
class RxnfpBertFt10k(_RxnfpBert):
    name = "rxnfp-bert-ft-10k"
    weights_name = ("rxnfp bert_ft_10k_25s (fine-tuned on a 10k-reaction subset; rxnfp "
                    "0.1.0 wheel)")
    weights_in_package = f"{RXNFP_MODELS}/bert_ft_10k_25s/pytorch_model.bin"
    checkpoint = "bert_ft_10k_25s"


@register_model
class ChemBERTa77MMLM(_SmilesLM):
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
        _offline()
        import torch
        from transformers import RobertaModel

        _quiet_transformers()
        torch.manual_seed(self.seed)
        directory = self.local_dir()
        if directory is None:
            model = RobertaModel(self.config(), add_pooling_layer=False)
            vocab = find_in_site_packages(f"{RXNFP_MODELS}/bert_ft/vocab.txt")
            if vocab is None:
                raise ModelUnavailable("the random-init ChemBERTa reads rxnfp's SMILES vocab, "
                                       "missing here: build .envs/smiles")
            self._tokenizer = SmilesRegexTokenizer(vocab)
        else:
            model, info = RobertaModel.from_pretrained(
                str(directory), local_files_only=True, add_pooling_layer=False,
                output_loading_info=True, weights_only=True)
            _check_load_report(info, directory)
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


@register_model
class MoLFormerXL(_SmilesLM):
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
        _offline()
        import torch
        from transformers import AutoConfig, AutoModel

        _quiet_transformers()
        torch.manual_seed(self.seed)
        config = AutoConfig.from_pretrained(str(directory), local_files_only=True,
                                            trust_remote_code=True)
        if hasattr(config, "deterministic_eval"):  # MolformerConfig: fixed random features
            config.deterministic_eval = True
        model, info = AutoModel.from_pretrained(
            str(directory), config=config, local_files_only=True, trust_remote_code=True,
            output_loading_info=True, weights_only=True)
        _check_load_report(info, directory)
        self._tokenizer = self._hf_tokenizer(directory, trust_remote_code=True)
        self._model = model.to(torch.device(self.device)).eval()
        positions = getattr(model.config, "max_position_embeddings", None)
        limit = getattr(self._tokenizer.tokenizer, "model_max_length", None) \
            if isinstance(self._tokenizer, HFTokenizer) else None
        candidates = [int(v) for v in (positions, limit) if isinstance(v, int) and 0 < v < 10**6]
        self._context = min(candidates) if candidates else 10**6
