"""Prompted causal LLMs: the model reads an instruction plus a description of the structure
(:func:`structure_prompt`, from the record's own fields) and its last hidden layer is pooled
over the description's tokens only. Padding either side gives what one by one gives
(positions follow the attention mask). Qwen2.5-0.5B's real architecture runs at random init
(byte-level stand-in tokenizer) or from a local checkpoint; ``causal-lm-prompted`` takes any
local causal LM. Details: docs/models.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from matteralign.models import hf
from matteralign.models.base import EmbedOutput, ModelAdapter, ModelUnavailable, register_model
from matteralign.models.weights import RANDOM_INIT
from matteralign.records import Record

INSTRUCTION = ("You are an expert in chemistry and materials science. Consider the following "
               "structure.\n")

#: Qwen/Qwen2.5-0.5B config.json (published)
QWEN25_05B_CONFIG: dict[str, Any] = {
    "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
    "hidden_act": "silu", "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0, "tie_word_embeddings": True, "use_sliding_window": False,
    "sliding_window": None, "max_window_layers": 24, "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151643, "initializer_range": 0.02,
}


def structure_prompt(record: Record) -> str | None:
    """The description of ``record`` the LLM reads (without the instruction), or None."""
    if record.sequence:
        return f"Protein with amino-acid sequence {record.sequence.strip()}."
    atoms = record.atoms
    if atoms is not None and len(atoms) and bool(atoms.pbc.any()):
        a, b, c, alpha, beta, gamma = atoms.cell.cellpar()
        return (f"Crystal with formula {atoms.get_chemical_formula(mode='hill')} "
                f"({len(atoms)} atoms per cell) and lattice a = {a:.3f} Å, b = {b:.3f} Å, "
                f"c = {c:.3f} Å, α = {alpha:.2f}°, β = {beta:.2f}°, γ = {gamma:.2f}°.")
    if record.smiles or (atoms is not None and len(atoms)):
        parts = []
        if atoms is not None and len(atoms):
            parts.append(f"formula {atoms.get_chemical_formula(mode='hill')}")
        if record.smiles:
            parts.append(f"SMILES {record.smiles.strip()}")
        text = "Molecule with " + " and ".join(parts)
        if atoms is not None:
            charge = int(round(float(atoms.info.get("charge", 0) or 0)))
            spin = atoms.info.get("spin")
            if charge:
                text += f", charge {charge:+d}"
            if spin is not None and int(spin) != 1:
                text += f", spin multiplicity {int(spin)}"
        return text + "."
    return record.text.strip() or None


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map (what byte-level BPE vocabularies use)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return chars


def byte_tokenizer() -> Any:
    """The random-init stand-in tokenizer: token id = UTF-8 byte (0-255), a byte-level BPE
    without merges, as a transformers tokenizer (so it saves with the model)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {char: byte for byte, char in _bytes_to_unicode().items()}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend)


#: a checkpoint folder's weights file, or the index of a sharded one
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


class _PromptedLM(ModelAdapter):
    """Prompting, batching and pooling shared by the LLM adapters (not registered)."""

    family = "text"
    #: a checkpoint folder is a valid ``weights:`` path (not only a single file)
    weights_folder_ok = True
    modality = "text"
    layer = ("last_hidden_state of the base model (final decoder layer after the final norm), "
             "description tokens only")
    pooling = "mean over the tokens of the structure description (instruction/BOS/padding out)"
    key_packages: ClassVar[tuple[str, ...]] = ("transformers", "tokenizers", "safetensors",
                                               "torch")
    requires_module = "transformers"
    batch_size = 8
    produces_energy = False

    def __init__(self, weights: str | None = None, device: str = "cpu",
                 padding_side: str = "right", max_tokens: int = 4096,
                 dtype: str = "float32", trust_remote_code: bool = False,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``padding_side``: "right" or "left" (results agree). ``max_tokens``: longer prompts
        are masked with the reason (also capped by the model's positions). ``dtype``:
        "float32", "bfloat16" or "float16" for the model's weights. ``trust_remote_code``:
        let a checkpoint directory's own Python code run. ``config_overrides``: change
        hyperparameters of the random-init model (tests build a small instance this way)."""
        super().__init__(weights=weights, device=device)
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', not {padding_side!r}")
        if dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, not {dtype!r}")
        self.padding_side = padding_side
        self.max_tokens = int(max_tokens)
        self.dtype = dtype
        self.trust_remote_code = trust_remote_code
        self.config_overrides = dict(config_overrides or {})
        self._model: Any = None
        self._tokenizer: Any = None
        self._prefix: list[int] = []
        self._context = 0

    # -- loading ----------------------------------------------------------------------------
    def local_dir(self) -> Path | None:
        """The configured (or cached) checkpoint folder; None: random init."""
        return None if self.is_random_init else hf.folder_of(str(self.weights))

    def weights_path(self) -> Path | None:
        directory = self.local_dir()
        if directory is None:
            return None
        # hash the weights file (or a sharded checkpoint's index), not the folder
        return hf.checkpoint_file(directory, WEIGHT_FILES) or Path(str(self.weights))

    def random_model(self) -> Any:
        raise ModelUnavailable(
            f"{self.name} has no default architecture: set its weights to a local Hugging "
            "Face checkpoint directory of a causal LM")

    def _from_directory(self, directory: Path) -> Any:
        import torch
        from transformers import AutoConfig, AutoModel

        config_file = directory / "config.json"
        auto_map = json.loads(config_file.read_text()).get("auto_map") \
            if config_file.exists() else None
        if auto_map and not self.trust_remote_code:
            raise PermissionError(
                f"{self.name}: {directory} defines its architecture in its own Python code "
                f"(auto_map {auto_map}); loading it runs that code. Only if you trust the "
                "directory, set options: {trust_remote_code: true} in this model's config "
                "entry")
        config = AutoConfig.from_pretrained(str(directory), local_files_only=True,
                                            trust_remote_code=self.trust_remote_code)
        self._check_config(config)
        # unexpected keys are heads the base model does not hold (lm_head, ...): all allowed
        return hf.load_pretrained(AutoModel, directory, "a checkpoint of this causal LM",
                                  ("",), config=config, dtype=getattr(torch, self.dtype),
                                  trust_remote_code=self.trust_remote_code)

    def _check_config(self, config: Any) -> None:
        """Refuse a checkpoint of another architecture than the adapter's name says."""

    def _load(self) -> None:
        hf.offline()
        import torch
        from transformers import AutoTokenizer

        hf.ready(self.seed, errors_only=True)
        directory = self.local_dir()
        if directory is None:
            model = self.random_model().to(getattr(torch, self.dtype))
            self._tokenizer = byte_tokenizer()
        else:
            model = self._from_directory(directory)
            self._tokenizer = AutoTokenizer.from_pretrained(
                str(directory), local_files_only=True, trust_remote_code=self.trust_remote_code)
        self._model = model.to(torch.device(self.device)).eval()
        positions = getattr(model.config, "max_position_embeddings", None)
        self._context = min(self.max_tokens, int(positions)) if positions else self.max_tokens
        self._prefix = self._bos() + self._encode(INSTRUCTION)

    def _encode(self, text: str) -> list[int]:
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _bos(self) -> list[int]:
        """[BOS] when the tokenizer adds one by default (Llama does, Qwen2 does not)."""
        bos = self._tokenizer.bos_token_id
        if bos is None:
            return []
        with_special = list(self._tokenizer("a", add_special_tokens=True)["input_ids"])
        return [bos] if with_special and with_special[0] == bos else []

    def context(self) -> int:
        return self._context

    # -- per structure ----------------------------------------------------------------------
    def prompt(self, record: Record) -> str:
        """The whole text the model reads for ``record``."""
        return INSTRUCTION + (structure_prompt(record) or "")

    def check(self, record: Record) -> str | None:
        description = structure_prompt(record)
        if not description:
            return "nothing to describe: no sequence, atoms, SMILES or text"
        n = len(self._prefix) + len(self._encode(description))
        if n > self.context():
            return f"prompt of {n} tokens > max_tokens={self.context()}"
        return None

    def token_states(self, records: Sequence[Record]) -> tuple[Any, Any]:
        """Last-layer states [B, T, D] (float64, CPU) and the mask of description tokens."""
        import torch

        parts = [(self._prefix, self._encode(structure_prompt(r) or "")) for r in records]
        length = max(len(p) + len(d) for p, d in parts)
        pad = self._tokenizer.pad_token_id
        pad = pad if pad is not None else (self._tokenizer.eos_token_id or 0)
        input_ids = torch.full((len(parts), length), int(pad), dtype=torch.long)
        attention = torch.zeros((len(parts), length), dtype=torch.long)
        keep = torch.zeros((len(parts), length), dtype=torch.bool)
        for i, (prefix, described) in enumerate(parts):
            n = len(prefix) + len(described)
            start = length - n if self.padding_side == "left" else 0
            input_ids[i, start:start + n] = torch.tensor(prefix + described)
            attention[i, start:start + n] = 1
            keep[i, start + len(prefix):start + n] = True
        # positions count real tokens only: left padding must not shift them
        positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
        device = torch.device(self.device)
        with torch.no_grad():
            hidden = self._model(input_ids=input_ids.to(device),
                                 attention_mask=attention.to(device),
                                 position_ids=positions.to(device),
                                 use_cache=False).last_hidden_state
        return hidden.detach().float().cpu().double(), keep

    def embed_batch(self, records: Sequence[Record]) -> EmbedOutput:
        # padded rows may hold NaN (fully masked attention): masked_mean never reads them
        hidden, keep = self.token_states(records)
        return EmbedOutput(hf.masked_mean(hidden, keep, "a structure description has no "
                                                        "tokens"))


@register_model
class Qwen25HalfBPrompted(_PromptedLM):
    name = "qwen2.5-0.5b-prompted"
    architecture = ("Qwen2.5-0.5B decoder (transformers Qwen2Model): 24 layers, hidden 896, "
                    "14 query / 2 key-value heads, intermediate 4864, RoPE, vocab 151,936, "
                    "494M params; prompted with a structure description")
    #: no LLM weights obtainable offline: random init unless a local checkpoint is configured
    weights_name = RANDOM_INIT
    license = "Apache-2.0 (Qwen2.5-0.5B weights and code; transformers)"
    hub_id: ClassVar[str] = "Qwen/Qwen2.5-0.5B"
    model_type: ClassVar[str] = "qwen2"

    def config(self) -> Any:
        from transformers import Qwen2Config

        return Qwen2Config(**{**QWEN25_05B_CONFIG, **self.config_overrides})

    def random_model(self) -> Any:
        from transformers import Qwen2Model

        return Qwen2Model(self.config())

    def _check_config(self, config: Any) -> None:
        if config.model_type != self.model_type:
            raise ValueError(
                f"{self.name} reads Qwen2/Qwen2.5 checkpoints; {self.weights} holds a "
                f"{config.model_type!r} model (use causal-lm-prompted for other causal LMs)")


@register_model
class CausalLMPrompted(_PromptedLM):
    name = "causal-lm-prompted"
    architecture = ("any transformers causal LM from a local checkpoint directory (AutoModel "
                    "base model), prompted with a structure description")
    #: no default: a local checkpoint directory must be configured
    weights_name = RANDOM_INIT
    license = "that of the configured checkpoint; Apache-2.0 (transformers)"

    requires_checkpoint = True
