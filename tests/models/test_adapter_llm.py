"""Prompted causal LLMs in the "text" environment: the structure prompt, pooling over the
description tokens only, left/right padding, a local checkpoint round trip, the published
Qwen2.5-0.5B size, and refusal of remote code unless trusted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.models.conftest import (
    check_common,
    make_records,
    read_h5,
    run_in_env,
    write_records,
)

FAMILY, MODEL = "text", "qwen2.5-0.5b-prompted"
SMALL = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
         "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512,
         "max_position_embeddings": 256}
DIM = SMALL["hidden_size"]


def _extra() -> dict:
    from ase import Atoms

    from matteralign.records import Record

    return {"protein": Record(id="protein", sequence="MQIFVKTLTGKTITLEV", text="ubiquitin"),
            "text-only": Record(id="text-only", text="a polymer of unknown structure"),
            "nothing": Record(id="nothing", atoms=Atoms()),
            "too-long": Record(id="too-long", sequence="A" * 300)}


def _json(python, code: str) -> dict:
    return json.loads(run_in_env(python, code).strip().splitlines()[-1])


def test_structure_prompt():
    """What the LLM reads, from the record's own fields (no model needed)."""
    from ase.build import bulk, molecule

    from matteralign.models.llm import INSTRUCTION, structure_prompt
    from matteralign.records import Record

    ethanol = molecule("CH3CH2OH")
    assert structure_prompt(Record(id="e", atoms=ethanol, smiles="CCO", text="x")) == \
        "Molecule with formula C2H6O and SMILES CCO."
    ion = ethanol.copy()
    ion.info.update(charge=1, spin=2)
    assert structure_prompt(Record(id="i", atoms=ion)) == \
        "Molecule with formula C2H6O, charge +1, spin multiplicity 2."
    assert structure_prompt(Record(id="s", smiles="c1ccccc1")) == "Molecule with SMILES c1ccccc1."
    assert structure_prompt(Record(id="nacl", atoms=bulk("NaCl", "rocksalt", a=5.64))) == (
        "Crystal with formula ClNa (2 atoms per cell) and lattice a = 3.988 Å, b = 3.988 Å, "
        "c = 3.988 Å, α = 60.00°, β = 60.00°, γ = 60.00°.")
    assert structure_prompt(Record(id="p", sequence="MKT", atoms=ethanol, text="x")) == \
        "Protein with amino-acid sequence MKT."
    assert structure_prompt(Record(id="t", text=" a polymer ")) == "a polymer"
    assert structure_prompt(Record(id="n")) is None
    assert INSTRUCTION.endswith("\n")


@pytest.fixture(scope="module")
def outputs(family_env, tmp_path_factory):
    """embed_dataset with a small random Qwen2 (config_overrides) and the same model saved
    as a local checkpoint directory (model + tokenizer, as Hugging Face saves them)."""
    python = family_env(FAMILY)
    tmp = tmp_path_factory.mktemp("llm")
    path = write_records(tmp / "structures.h5", make_records(_extra()))
    checkpoint = tmp / "qwen-local"
    files = {stem: tmp / f"{stem}.h5" for stem in ("run1", "run2", "local", "left")}
    run_in_env(python, f"""
from matteralign.embed import embed_dataset
from matteralign.models import get_model
small = {SMALL!r}
a = get_model({MODEL!r}, config_overrides=small).load()
a._model.save_pretrained({str(checkpoint)!r})
a._tokenizer.save_pretrained({str(checkpoint)!r})
for stem, weights, options in [("run1", None, {{"config_overrides": small}}),
                               ("run2", None, {{"config_overrides": small}}),
                               ("local", {str(checkpoint)!r}, {{"max_tokens": 256}}),
                               ("left", None, {{"config_overrides": small,
                                               "padding_side": "left"}})]:
    embed_dataset({MODEL!r}, {str(path)!r}, str({str(tmp)!r} + "/" + stem + ".h5"),
                  weights=weights, options=options, progress=False)
""")
    return {stem: read_h5(p) for stem, p in files.items()} | {"checkpoint": checkpoint}


def test_shapes_mask_and_errors(outputs):
    out = outputs["run1"]
    masked = {"nothing", "too-long"}
    check_common(out, DIM, {i: i not in masked for i in out["ids"]})
    errors = dict(zip(out["ids"], out["errors"], strict=True))
    assert errors["nothing"] == "nothing to describe: no sequence, atoms, SMILES or text"
    assert errors["too-long"].startswith("prompt of ") and "> max_tokens=256" in \
        errors["too-long"]
    assert "energy" not in out


def test_random_init_labelled_deterministic_padding_independent(outputs):
    run1 = outputs["run1"]
    assert run1["attrs"]["weights"] == "random-init" and run1["attrs"]["weights_sha256"] == ""
    assert run1["attrs"]["version_transformers"] == "5.23.0"
    np.testing.assert_array_equal(run1["embeddings"], outputs["run2"]["embeddings"])
    np.testing.assert_allclose(outputs["left"]["embeddings"], run1["embeddings"], rtol=0,
                               atol=1e-5, equal_nan=True)


def test_local_checkpoint_directory(outputs):
    local = outputs["local"]
    assert local["attrs"]["weights"] == str(outputs["checkpoint"])
    assert local["attrs"]["random_init"] in (False, 0)
    assert len(local["attrs"]["weights_sha256"]) == 64
    np.testing.assert_allclose(local["embeddings"], outputs["run1"]["embeddings"], rtol=0,
                               atol=1e-6, equal_nan=True)


LLM_CHECK = """
import json, shutil, numpy as np, torch
from pathlib import Path
from ase.build import bulk, molecule
from matteralign.models import ModelUnavailable, get_model
from matteralign.models.llm import INSTRUCTION, structure_prompt
from matteralign.records import Record
small = SMALL
checkpoint = Path(CHECKPOINT)
records = [Record(id="e", atoms=molecule("CH3CH2OH"), smiles="CCO"),
           Record(id="nacl", atoms=bulk("NaCl", "rocksalt", a=5.64)),
           Record(id="p", sequence="MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEG"),
           Record(id="w", atoms=molecule("H2O"))]
result = {}
for side in ("right", "left"):
    a = get_model("qwen2.5-0.5b-prompted", config_overrides=small, padding_side=side).load()
    batched = a.embed_batch(records).embeddings
    single = np.concatenate([a.embed_batch([r]).embeddings for r in records])
    result[side] = float(np.abs(batched - single).max())
    result[side + "_vector"] = batched.tolist()
# by hand: the whole prompt, one structure, mean over the description's bytes only
prompt = (INSTRUCTION + structure_prompt(records[0])).encode()
with torch.no_grad():
    hidden = a._model(input_ids=torch.tensor([list(prompt)])).last_hidden_state[0]
manual = hidden[len(INSTRUCTION.encode()):].double().mean(0).numpy()
result["manual"] = float(np.abs(manual - np.array(result["right_vector"][0])).max())
result["with_instruction"] = float(np.abs(hidden.double().mean(0).numpy() - manual).max())
result["prefix_len"] = len(a._prefix)
# the same checkpoint through the generic adapter
generic = get_model("causal-lm-prompted", weights=str(checkpoint)).load()
result["generic"] = float(np.abs(generic.embed_batch(records).embeddings
                                 - np.array(result["right_vector"])).max())
try:
    get_model("causal-lm-prompted").load()
except ModelUnavailable as err:
    result["no_default"] = str(err)
# a directory whose architecture is remote code is refused unless trusted
remote = checkpoint.parent / "remote"
shutil.copytree(checkpoint, remote)
config = json.loads((remote / "config.json").read_text())
config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
(remote / "config.json").write_text(json.dumps(config))
try:
    get_model("causal-lm-prompted", weights=str(remote)).load()
except PermissionError as err:
    result["refused"] = str(err)
# absolute learned positions (GPT-2): left padding is only harmless with position_ids
from transformers import GPT2Config, GPT2Model
from matteralign.models.llm import byte_tokenizer
torch.manual_seed(0)
gpt2 = checkpoint.parent / "gpt2"
GPT2Model(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=256,
                     n_positions=256)).save_pretrained(str(gpt2))
byte_tokenizer().save_pretrained(str(gpt2))
for side in ("right", "left"):
    g = get_model("causal-lm-prompted", weights=str(gpt2), padding_side=side).load()
    batched = g.embed_batch(records).embeddings
    single = np.concatenate([g.embed_batch([r]).embeddings for r in records])
    result["gpt2_" + side] = float(np.abs(batched - single).max())
# Qwen2.5-0.5B as published, counted on the meta device
from transformers import Qwen2Model
with torch.device("meta"):
    full = Qwen2Model(get_model("qwen2.5-0.5b-prompted").config())
result["params"] = sum(p.numel() for p in full.parameters())
result["status"] = get_model("causal-lm-prompted").weights_status()
print(json.dumps(result))
"""


def test_pooling_padding_generic_and_published_size(family_env, outputs):
    """Mean over the description tokens only (checked by hand), a batch equals one-by-one
    with right and left padding (Qwen2's rotary positions, and GPT-2's learned absolute
    ones, which left padding would shift without position_ids), the generic adapter reads
    the same checkpoint, remote code is refused unless trusted, and the named model is
    Qwen2.5-0.5B's 494,032,768 params."""
    code = (LLM_CHECK.replace("SMALL", repr(SMALL))
            .replace("CHECKPOINT", repr(str(outputs["checkpoint"]))))
    result = _json(family_env(FAMILY), code)
    assert result["right"] <= 1e-5 and result["left"] <= 1e-5, result
    assert result["gpt2_right"] <= 1e-5 and result["gpt2_left"] <= 1e-5, result
    assert np.abs(np.array(result["right_vector"]) - np.array(result["left_vector"])).max() \
        <= 1e-5
    assert result["manual"] <= 1e-5
    assert result["with_instruction"] > 1e-3  # the instruction tokens are really left out
    assert result["prefix_len"] == len(
        "You are an expert in chemistry and materials science. Consider the following "
        "structure.\n")  # byte tokens, no BOS for the stand-in tokenizer
    assert result["generic"] <= 1e-6
    assert "local Hugging Face checkpoint directory" in result["no_default"]
    assert "trust_remote_code: true" in result["refused"]
    assert result["params"] == 494_032_768
    assert result["status"].startswith("missing: needs a local checkpoint")
