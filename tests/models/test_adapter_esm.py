"""ESM-2 (transformers EsmModel, real architecture; random init or a local checkpoint) in the
"text" family environment: shapes, masking, special tokens out, batch independence, a local
checkpoint directory, and the published 650M configuration."""

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
    write_records,
)

FAMILY, MODEL, DIM = "text", "esm2-t6-8m", 320
PROTEINS = {
    "ubiquitin": "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQKESTLHLVLRLRGG",
    "insulin-a": "GIVEQCCTSICSLYQLENYCN",
    "odd-letters": "MKTAYIAKQRXBZUO",
}


def _extra() -> dict:
    from matteralign.records import Record

    records = {name: Record(id=name, sequence=seq, text=name) for name, seq in PROTEINS.items()}
    records["too-long"] = Record(id="too-long", sequence="A" * 1100, text="poly-alanine")
    return records


@pytest.fixture(scope="module")
def outputs(family_env, tmp_path_factory):
    python = family_env(FAMILY)
    tmp = tmp_path_factory.mktemp("esm")
    path = write_records(tmp / "structures.h5", make_records(_extra()))
    # a local checkpoint directory: the seeded random model, saved as Hugging Face saves ESM-2
    checkpoint = tmp / "esm2-local"
    run_in_env(python, f"""
from matteralign.models import get_model
a = get_model({MODEL!r}).load()
a._model.save_pretrained({str(checkpoint)!r})
a._tokenizer.save_pretrained({str(checkpoint)!r})
""")
    files = embed_in_env(python, MODEL, path,
                         {"run1": None, "run2": None, "local": str(checkpoint)})
    return {stem: read_h5(p) for stem, p in files.items()} | {"checkpoint": checkpoint}


def test_shapes_mask_and_errors(outputs):
    out = outputs["run1"]
    check_common(out, DIM, {i: i in PROTEINS for i in out["ids"]})
    errors = dict(zip(out["ids"], out["errors"], strict=True))
    assert "1100 residues > the model's context of 1022" in errors["too-long"]
    assert "no sequence" in errors["CH4"]


def test_random_init_is_labelled_and_deterministic(outputs):
    attrs = outputs["run1"]["attrs"]
    assert attrs["weights"] == "random-init" and attrs["random_init"] in (True, 1)
    assert attrs["weights_sha256"] == ""
    np.testing.assert_array_equal(outputs["run1"]["embeddings"], outputs["run2"]["embeddings"])


def test_local_checkpoint_directory(outputs):
    """weights=<a local ESM-2 directory> loads it: here the seeded random model saved to disk,
    so the vectors agree with the in-memory one, and the provenance names the file."""
    local = outputs["local"]
    assert local["attrs"]["weights"] == str(outputs["checkpoint"])
    assert local["attrs"]["random_init"] in (False, 0)
    assert len(local["attrs"]["weights_sha256"]) == 64
    np.testing.assert_allclose(local["embeddings"], outputs["run1"]["embeddings"], rtol=0,
                               atol=1e-5, equal_nan=True)


def test_pooling_batching_and_650m_config(family_env):
    """Mean over residue tokens only (checked against the hidden states), a batch equals
    one-by-one, and esm2-t33-650m is the published 650M model (counted on the meta device,
    run as a 2-layer instance of the same class)."""
    code = """
import json, numpy as np, torch
from transformers import EsmModel
from matteralign.models import get_model
from matteralign.records import Record
a = get_model("esm2-t6-8m").load()
seqs = SEQS_HERE
records = [Record(id=str(i), sequence=s) for i, s in enumerate(seqs)]
batched = a.embed_batch(records).embeddings
single = np.concatenate([a.embed_batch([r]).embeddings for r in records])
ids = a._tokenizer([seqs[1]], return_tensors="pt")
with torch.no_grad():
    hidden = a._model(**ids).last_hidden_state[0].double().numpy()
manual = hidden[1:-1].mean(0)   # drop <cls> and <eos>
with torch.device("meta"):
    big = EsmModel(get_model("esm2-t33-650m").config(), add_pooling_layer=False)
small = get_model("esm2-t33-650m", config_overrides={"num_hidden_layers": 2}).load()
out = small.embed_batch(records).embeddings
print(json.dumps({"batch": float(np.abs(batched - single).max()),
                  "pooling": float(np.abs(manual - batched[1]).max()),
                  "tokens": int(ids["input_ids"].shape[1]),
                  "params_650m": sum(p.numel() for p in big.parameters()),
                  "layers_650m": big.config.num_hidden_layers,
                  "small_shape": list(out.shape), "small_finite": bool(np.isfinite(out).all())}))
""".replace("SEQS_HERE", repr(list(PROTEINS.values())))
    result = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    assert result["batch"] <= 1e-5
    assert result["pooling"] <= 1e-5
    assert result["tokens"] == len(PROTEINS["insulin-a"]) + 2
    assert 6.45e8 < result["params_650m"] < 6.55e8 and result["layers_650m"] == 33
    assert result["small_shape"] == [len(PROTEINS), 1280] and result["small_finite"]
