"""SMILES language models in the "smiles" environment: the rxnfp BERTs (real weights shipped in
the rxnfp wheel), ChemBERTa-2 (real architecture, random init or a local checkpoint) and
MoLFormer (remote code, only with trust_remote_code; its plumbing proven with a tiny
checkpoint directory of our own)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.models.conftest import (
    check_common,
    embed_in_env,
    make_records,
    read_h5,
    run_in_env,
    sha256,
    site_packages,
    write_records,
)

FAMILY, MODEL, DIM = "smiles", "rxnfp-bert-ft", 256
RXNFP = "rxnfp/models/transformers"
WEIGHTS = f"{RXNFP}/bert_ft/pytorch_model.bin"
EMBEDDED = {"H2O", "CH4", "NH3", "C6H6", "CH3CH2OH", "aspirin", "isotope"}


def _extra() -> dict:
    from matteralign.records import Record

    smiles = {"aspirin": "CC(=O)Oc1ccccc1C(=O)O", "isotope": "[13CH4]",  # [13CH4]: not in vocab
              "too-long": "C" * 511, "bad-chars": "CC^C"}
    return {name: Record(id=name, smiles=s, text=name) for name, s in smiles.items()}


def _json(python, code: str) -> dict:
    return json.loads(run_in_env(python, code).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def outputs(family_env, tmp_path_factory):
    python = family_env(FAMILY)
    path = write_records(tmp_path_factory.mktemp(FAMILY) / "structures.h5",
                         make_records(_extra()))
    files = embed_in_env(python, MODEL, path,
                         {"run1": None, "run2": None, "random": "random-init",
                          "local": str((site_packages(FAMILY) / WEIGHTS).parent)})
    return {stem: read_h5(p) for stem, p in files.items()}


def test_shapes_mask_and_errors(outputs):
    out = outputs["run1"]
    check_common(out, DIM, {i: i in EMBEDDED for i in out["ids"]})
    errors = dict(zip(out["ids"], out["errors"], strict=True))
    assert "no smiles input" in errors["Si"] and "no smiles input" in errors["NaCl"]
    assert "511 SMILES tokens (+2 special) > the model's context of 512" in errors["too-long"]
    assert "cannot read: '^'" in errors["bad-chars"]
    assert "energy" not in out


def test_real_weights_deterministic_and_provenance(outputs):
    run1, run2 = outputs["run1"], outputs["run2"]
    np.testing.assert_array_equal(run1["embeddings"], run2["embeddings"])
    attrs = run1["attrs"]
    assert attrs["weights_sha256"] == sha256(site_packages(FAMILY) / WEIGHTS)
    assert attrs["random_init"] in (False, 0) and attrs["version_rxnfp"] == "0.1.0"
    assert attrs["version_transformers"] == "5.23.0"
    rand = outputs["random"]
    assert rand["attrs"]["weights"] == "random-init" and rand["attrs"]["weights_sha256"] == ""
    ok = run1["valid"]
    assert not np.allclose(rand["embeddings"][ok], run1["embeddings"][ok], atol=1e-3)


def test_local_checkpoint_directory(outputs):
    """weights=<a local rxnfp/BERT directory> (here the shipped one) gives the same vectors."""
    local, real = outputs["local"], outputs["run1"]
    assert local["attrs"]["weights"] == str((site_packages(FAMILY) / WEIGHTS).parent)
    assert local["attrs"]["weights_sha256"] == real["attrs"]["weights_sha256"]
    np.testing.assert_array_equal(local["embeddings"], real["embeddings"])


RXNFP_CHECK = """
import json, numpy as np, torch
from transformers import BertForMaskedLM
from matteralign.models import get_model
from matteralign.records import Record
smiles = ["CC(=O)Oc1ccccc1C(=O)O", "CCO", "c1ccc2[nH]ccc2c1", "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
          "O=C(O)CCC(=O)O", "N#C[C@@H](O)C1CC1", "[NH3+]CC([O-])=O", "[13CH4]"]
records = [Record(id=str(i), smiles=s) for i, s in enumerate(smiles)]
result = {}
vectors = {}
for name in ["rxnfp-bert-pretrained", "rxnfp-bert-ft-10k", "rxnfp-bert-ft"]:  # ft: used below
    a = get_model(name).load()  # raises if a single encoder tensor is missing from the file
    assert all(not a.check(r) for r in records)
    batched = a.embed_batch(records).embeddings
    if name == "rxnfp-bert-ft":
        single = np.concatenate([a.embed_batch([r]).embeddings for r in records])
        result["batch"] = float(np.abs(batched - single).max())
    vectors[name] = batched
    result[name + "_unknown"] = a.unknown_counts
ids, special = a._tokenizer.encode(smiles[0])
with torch.no_grad():
    hidden = a._model(input_ids=torch.tensor([ids])).last_hidden_state[0].double().numpy()
result["pooling"] = float(np.abs(hidden[1:-1].mean(0) - vectors["rxnfp-bert-ft"][0]).max())
result["ids_aspirin"] = ids
result["special"] = special
result["differ"] = min(float(np.abs(vectors[x] - vectors[y]).max()) for x, y in [
    ("rxnfp-bert-pretrained", "rxnfp-bert-ft"), ("rxnfp-bert-ft", "rxnfp-bert-ft-10k")])
strict = get_model("rxnfp-bert-ft", allow_unknown=False).load()
result["strict"] = strict.check(records[-1])
# the shipped MLM head predicts masked SMILES tokens (real weights); a random one cannot
directory = a.model_dir().parent / "bert_pretrained"
hits = {}
for label in ("real", "random"):
    torch.manual_seed(0)
    mlm = BertForMaskedLM.from_pretrained(str(directory), local_files_only=True)
    if label == "random":
        mlm = BertForMaskedLM(mlm.config)
    mlm.eval()
    hit = total = 0
    for s in smiles[:5]:  # one batch per SMILES: row j has token j masked
        ids, _ = a._tokenizer.encode(s)
        positions = torch.arange(1, len(ids) - 1)
        x = torch.tensor([ids]).repeat(len(positions), 1)
        x[torch.arange(len(positions)), positions] = a._tokenizer.vocab["[MASK]"]
        with torch.no_grad():
            logits = mlm(input_ids=x).logits[torch.arange(len(positions)), positions]
        hit += int((logits.argmax(-1) == torch.tensor(ids)[positions]).sum())
        total += len(positions)
    hits[label] = hit / total
result["mlm"] = hits
print(json.dumps(result))
"""


def test_rxnfp_checkpoints_tokens_pooling_and_batching(family_env):
    """All three shipped checkpoints load completely and differ; rxnfp's regex tokenizer
    (the ids rxnfp's own SmilesTokenizer gives under transformers 4.57.6); the mean excludes
    [CLS]/[SEP]; a batch equals one-by-one; unknown tokens are counted or masked; and the
    pretrained MLM head recovers masked tokens, which random parameters do not."""
    result = _json(family_env(FAMILY), RXNFP_CHECK)
    assert result["batch"] <= 1e-5, result
    for name in ("rxnfp-bert-pretrained", "rxnfp-bert-ft", "rxnfp-bert-ft-10k"):
        assert result[name + "_unknown"] == {"7": 1}
    assert result["differ"] > 1e-2
    assert result["pooling"] <= 1e-5
    # [CLS] C C ( = O ) O c 1 c c c c c 1 C ( = O ) O [SEP], ids from rxnfp's vocab.txt
    assert result["ids_aspirin"] == [12, 16, 16, 17, 22, 19, 18, 19, 15, 20, 15, 15, 15, 15,
                                     15, 20, 16, 17, 22, 19, 18, 19, 13]
    assert result["special"] == [True] + [False] * 21 + [True]
    assert result["strict"] == "1 SMILES tokens not in the vocabulary: [13CH4]"
    assert result["mlm"]["real"] > 0.8 and result["mlm"]["random"] < 0.2, result["mlm"]


CHEMBERTA_CHECK = """
import json, numpy as np, torch
from pathlib import Path
from transformers import RobertaForMaskedLM
from matteralign.models import get_model
from matteralign.records import Record
checkpoint = CHECKPOINT
small = {"num_hidden_layers": 2, "hidden_size": 48, "num_attention_heads": 4,
         "intermediate_size": 64}
smiles = ["CC(=O)Oc1ccccc1C(=O)O", "CCO", "c1ccc2[nH]ccc2c1", "O"]
records = [Record(id=str(i), smiles=s) for i, s in enumerate(smiles)]
a = get_model("chemberta-77m-mlm", config_overrides=small).load()
batched = a.embed_batch(records).embeddings
single = np.concatenate([a.embed_batch([r]).embeddings for r in records])
again = get_model("chemberta-77m-mlm", config_overrides=small).load().embed_batch(records)
a._model.save_pretrained(checkpoint)
a._tokenizer.save(checkpoint)
local = get_model("chemberta-77m-mlm", weights=checkpoint).load()
loaded = local.embed_batch(records).embeddings
# the same model with a Hugging Face tokenizer.json (what a real ChemBERTa folder has): the
# rxnfp vocab as a WordLevel model behind the SMILES regex, [CLS] ... [SEP]
import shutil
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast
from matteralign.models.smiles import SMI_REGEX_PATTERN
vocab = a._tokenizer.vocab
tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
tok.pre_tokenizer = pre_tokenizers.Split(Regex(SMI_REGEX_PATTERN), behavior="isolated")
tok.post_processor = processors.TemplateProcessing(
    single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]),
                                             ("[SEP]", vocab["[SEP]"])])
hf_dir = checkpoint + "-hf"
shutil.copytree(checkpoint, hf_dir)
(Path(hf_dir) / "vocab.txt").unlink()
PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                        cls_token="[CLS]", sep_token="[SEP]").save_pretrained(hf_dir)
with_hf = get_model("chemberta-77m-mlm", weights=hf_dir).load()
hf_vectors = with_hf.embed_batch(records).embeddings
long = Record(id="long", smiles="C" * 512)
with torch.device("meta"):
    full = RobertaForMaskedLM(get_model("chemberta-77m-mlm").config())
print(json.dumps({
    "shape": list(batched.shape), "batch": float(np.abs(batched - single).max()),
    "repeat": float(np.abs(batched - again.embeddings).max()),
    "local": float(np.abs(batched - loaded).max()),
    "hf_tokenizer": type(with_hf._tokenizer).__name__,
    "hf_local": float(np.abs(batched - hf_vectors).max()),
    "weights_file": str(local.weights_path()),
    "context": a.context(), "long": a.check(long),
    "mlm_params": sum(p.numel() for p in full.parameters()),
    "layers": full.config.num_hidden_layers, "hidden": full.config.hidden_size,
}))
"""


def test_chemberta_random_init_and_local_checkpoint(family_env, tmp_path):
    """A small random instance of ChemBERTa's RobertaModel: batch == one-by-one, seeded, and
    a save_pretrained directory loads back to the same vectors, with a vocab.txt (regex
    tokenizer) or a tokenizer.json (Hugging Face tokenizer, [CLS]/[SEP] found by its
    special-tokens mask). The published 77M-MLM config
    has RobertaForMaskedLM's 3,428,808 parameters: 13.7 MB in float32, the size of
    DeepChem/ChemBERTa-77M-MLM's pytorch_model.bin."""
    code = CHEMBERTA_CHECK.replace("CHECKPOINT", repr(str(tmp_path / "chemberta")))
    result = _json(family_env(FAMILY), code)
    assert result["shape"] == [4, 48]
    assert result["batch"] <= 1e-5 and result["repeat"] == 0.0 and result["local"] <= 1e-6
    assert result["weights_file"].endswith("model.safetensors")
    assert result["hf_tokenizer"] == "HFTokenizer" and result["hf_local"] <= 1e-6
    assert result["context"] == 513  # 515 positions after RoBERTa's padding offset (1 + 1)
    assert result["long"] == "512 SMILES tokens (+2 special) > the model's context of 513 tokens"
    assert result["mlm_params"] == 3_428_808
    assert (result["layers"], result["hidden"]) == (3, 384)


#: the remote code of a tiny stand-in checkpoint (NOT MoLFormer): proves that the adapter runs
#: a directory's own architecture code only with trust_remote_code=True
TINY_CONFIG_CODE = '''
from transformers import PretrainedConfig


class TinyMolConfig(PretrainedConfig):
    model_type = "tinymol"

    def __init__(self, vocab_size=600, hidden_size=16, max_position_embeddings=202, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.max_position_embeddings = max_position_embeddings
        super().__init__(**kwargs)
'''
TINY_MODEL_CODE = '''
import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from .configuration_tinymol import TinyMolConfig


class TinyMolModel(PreTrainedModel):
    config_class = TinyMolConfig
    base_model_prefix = "tinymol"

    def __init__(self, config):
        super().__init__(config)
        self.embed = torch.nn.Embedding(config.vocab_size, config.hidden_size)
        self.mix = torch.nn.Linear(config.hidden_size, config.hidden_size)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        hidden = torch.tanh(self.mix(self.embed(input_ids)))
        return BaseModelOutput(last_hidden_state=hidden)
'''

MOLFORMER_CHECK = """
import json, sys, numpy as np, torch
from pathlib import Path
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast
from matteralign.models import ModelUnavailable, get_model
from matteralign.models.smiles import SMI_REGEX_PATTERN
from matteralign.records import Record
directory = Path(DIRECTORY)
source = directory.parent / "source" / "tinymol_code"  # the code, as a package
source.mkdir(parents=True)
(source / "__init__.py").write_text("")
(source / "configuration_tinymol.py").write_text(CONFIG_CODE)
(source / "modeling_tinymol.py").write_text(MODEL_CODE)
sys.path.insert(0, str(source.parent))
from tinymol_code.configuration_tinymol import TinyMolConfig
from tinymol_code.modeling_tinymol import TinyMolModel
TinyMolConfig.register_for_auto_class()
TinyMolModel.register_for_auto_class("AutoModel")
torch.manual_seed(1)
model = TinyMolModel(TinyMolConfig())
model.save_pretrained(str(directory))  # copies the code files and writes auto_map
sys.path.remove(str(source.parent))
vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<bos>", "<eos>", "C", "O", "(", ")",
                                     "=", "c", "1", "N"])}
tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
tok.pre_tokenizer = pre_tokenizers.Split(Regex(SMI_REGEX_PATTERN), behavior="isolated")
tok.post_processor = processors.TemplateProcessing(
    single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 3)])
PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                        bos_token="<bos>", eos_token="<eos>").save_pretrained(str(directory))
for name in [m for m in sys.modules if "tinymol" in m]:
    del sys.modules[name]
result = {"config": json.loads((directory / "config.json").read_text())["auto_map"]}
try:
    get_model("molformer-xl-both-10pct").load()
except ModelUnavailable as err:
    result["no_weights"] = str(err)
try:
    get_model("molformer-xl-both-10pct", weights=str(directory)).load()
except PermissionError as err:
    result["refused"] = str(err)
a = get_model("molformer-xl-both-10pct", weights=str(directory), trust_remote_code=True).load()
smiles = ["CCO", "c1ccccc1", "CC(=O)N", "OCS"]
records = [Record(id=str(i), smiles=s) for i, s in enumerate(smiles)]
result["checks"] = [a.check(r) for r in records]
batched = a.embed_batch(records).embeddings
single = np.concatenate([a.embed_batch([r]).embeddings for r in records])
# by hand: tanh(mix(embed(token))) averaged over the SMILES tokens (no <bos>/<eos>)
state = model.state_dict()
def manual(tokens):
    e = state["embed.weight"][[vocab[t] for t in tokens]]
    return torch.tanh(e @ state["mix.weight"].T + state["mix.bias"]).double().mean(0).numpy()
result["manual"] = float(np.abs(manual(list("CCO")) - batched[0]).max())
result["batch"] = float(np.abs(batched - single).max())
result["model_class"] = type(a._model).__name__
result["context"] = a.context()
result["unknown"] = a.unknown_counts
result["status"] = type(a).weights_status()
print(json.dumps(result))
"""


def test_molformer_remote_code_only_when_trusted(family_env, tmp_path):
    """MoLFormer itself cannot be had offline: no weights -> a clear error; a checkpoint
    directory with remote code -> refused unless trust_remote_code=True; trusted -> loaded
    with AutoModel/AutoTokenizer, mean over real tokens (<bos>/<eos>/padding out)."""
    directory = tmp_path / "tinymol"
    directory.mkdir()
    code = (MOLFORMER_CHECK.replace("DIRECTORY", repr(str(directory)))
            .replace("CONFIG_CODE", repr(TINY_CONFIG_CODE))
            .replace("MODEL_CODE", repr(TINY_MODEL_CODE)))
    result = _json(family_env(FAMILY), code)
    assert result["config"]["AutoModel"] == "modeling_tinymol.TinyMolModel"
    assert "no random-init variant" in result["no_weights"]
    assert "trust_remote_code: true" in result["no_weights"]
    assert "modeling_tinymol.py" in result["refused"]
    assert "trust_remote_code: true" in result["refused"]
    assert result["checks"] == [None, None, None, None]
    assert result["unknown"] == {"3": 1}  # "S" is not in the tiny vocab
    assert result["model_class"] == "TinyMolModel"
    assert result["manual"] <= 1e-6 and result["batch"] <= 1e-6
    assert result["context"] == 202
    assert result["status"].startswith("missing: needs a local checkpoint")
