"""What the SMILES encoders share ("smiles" family): rxnfp's SMILES tokenizer, a checkpoint's
own Hugging Face tokenizer behind the same interface, and the checks, masking and pooling of
:class:`SmilesLM`. The models: :mod:`~matteralign.models.rxnfp`,
:mod:`~matteralign.models.chemberta`, :mod:`~matteralign.models.molformer`.

rxnfp's own ``SmilesTokenizer`` is a ``BertTokenizer`` subclass that the Rust-backed
tokenizer of transformers 5 never calls (every SMILES would become [UNK]), so
:class:`SmilesRegexTokenizer` re-implements it: the same regex, the same vocab.txt (token id =
line number), ``[CLS] tokens [SEP]``. Characters the regex skips mask the structure (rxnfp
drops them); tokens missing from the vocab become [UNK] and are counted (``unknown_counts``);
SMILES longer than the context are masked, never truncated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from matteralign.models import hf
from matteralign.models.base import EmbedOutput, ModelAdapter
from matteralign.records import Record

#: rxnfp.tokenization.SMI_REGEX_PATTERN (rxnfp 0.1.0, MIT)
SMI_REGEX_PATTERN = (r"(\%\([0-9]{3}\)|\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\||\(|\)|\."
                     r"|=|#|-|\+|\\|\/|:|~|@|\?|>>?|\*|\$|\%[0-9]{2}|[0-9])")
SMI_REGEX = re.compile(SMI_REGEX_PATTERN)
#: checkpoint heads BertModel/RobertaModel do not hold (anything else unexpected is an error)
UNUSED_HEADS = ("cls.", "lm_head.", "classifier.", "pooler.", "bert.pooler.", "roberta.pooler.")


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


class SmilesLM(ModelAdapter):
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
        """The configured (or cached) checkpoint folder; None: shipped weights or random."""
        if self.resolved.kind not in ("local", "cached"):
            return None
        return hf.folder_of(str(self.weights))

    def weights_path(self) -> Path | None:
        directory = self.local_dir()
        if directory is not None:  # hash the weights file, not the directory
            return hf.checkpoint_file(directory) or Path(str(self.weights))
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
        hidden, keep = self.token_states([str(r.smiles) for r in records])
        return EmbedOutput(hf.masked_mean(hidden, keep, "a SMILES has no tokens besides the "
                                                        "special ones"))
