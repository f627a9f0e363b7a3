"""UMA-S 1.1 (fairchem-core eSCNMDMoeBackbone, the real architecture) in its own environment:
no weights can be had offline, so the full-size backbone runs at random init (labelled),
plus a small instance of the same class for the local-checkpoint round trip and the
invariances."""

from __future__ import annotations

import json

import pytest

from tests.models.conftest import (
    GEOMETRY_PROBLEMS,
    assert_invariant,
    check_common,
    check_geometry_masked,
    embed_in_env,
    invariances,
    make_records,
    problem_records,
    read_h5,
    run_in_env,
    write_records,
)

FAMILY, MODEL, DIM = "fairchem", "uma-s-1p1", 128
SMALL = {"num_layers": 2, "num_experts": 4, "sphere_channels": 32, "hidden_channels": 32,
         "edge_channels": 32, "num_distance_basis": 32}


def _extra() -> dict:
    return problem_records("slab", "no-atoms", *GEOMETRY_PROBLEMS)


@pytest.fixture(scope="module")
def outputs(family_env, tmp_path_factory):
    python = family_env(FAMILY)
    path = write_records(tmp_path_factory.mktemp(FAMILY) / "structures.h5",
                         make_records(_extra()))
    files = embed_in_env(python, MODEL, path, {"run1": None})
    return {stem: read_h5(p) for stem, p in files.items()}


def test_shapes_mask_and_labels(outputs):
    out = outputs["run1"]
    check_common(out, DIM, {i: i not in _extra() for i in out["ids"]})
    check_geometry_masked(out)
    errors = dict(zip(out["ids"], out["errors"], strict=True))
    assert "partly periodic" in errors["slab"] and "no atoms" in errors["no-atoms"]
    attrs = out["attrs"]
    assert attrs["weights"] == "random-init" and attrs["random_init"] in (True, 1)
    assert attrs["weights_sha256"] == "" and attrs["version_fairchem-core"] == "2.24.0"


def test_architecture_layer_and_checkpoints(family_env, tmp_path):
    """UMA-S's parameter count, the embedding is node_embedding's l=0 channel, a backbone
    state_dict loads with weights_only (same vectors), a pickle is refused unless allowed."""
    code = """
import json, os, numpy as np, torch
from ase.build import bulk, molecule
from fairchem.core.datasets.atomic_data import AtomicData, atomicdata_list_to_batch
from matteralign.models import get_model
from matteralign.records import Record
full = get_model("uma-s-1p1").load()
params = sum(p.numel() for p in full._backbone.parameters())
small = get_model("uma-s-1p1", config_overrides=SMALL_HERE).load()
records = [Record(id="Si", atoms=bulk("Si", "diamond", a=5.43)),
           Record(id="H2O", atoms=molecule("H2O"))]
emb = small.embed_batch(records).embeddings
datas = [AtomicData.from_ase(bulk("Si", "diamond", a=5.43), task_name="omat", radius=6.0,
                             max_neigh=30)]
with torch.no_grad():
    node = small._backbone(atomicdata_list_to_batch(datas))["node_embedding"]
state, pickled = os.path.join(TMP, "sd.pt"), os.path.join(TMP, "whole.pt")
torch.save(small._backbone.state_dict(), state)
torch.save({"model": small._backbone}, pickled)
again = get_model("uma-s-1p1", weights=state, config_overrides=SMALL_HERE).load()
try:
    get_model("uma-s-1p1", weights=pickled, config_overrides=SMALL_HERE).load()
    refused = ""
except ValueError as error:
    refused = str(error)
print(json.dumps({"params": params, "tasks": [small.task_for(r.atoms) for r in records],
                  "l0": float(np.abs(node[:, 0, :].double().numpy().mean(0) - emb[0]).max()),
                  "node_shape": list(node.shape),
                  "state": float(np.abs(again.embed_batch(records).embeddings - emb).max()),
                  "refused": refused}))
""".replace("SMALL_HERE", repr(SMALL)).replace("TMP", repr(str(tmp_path)))
    r = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    assert r["params"] == 146_533_664  # UMA-S: ~150M parameters in total
    assert r["tasks"] == ["omat", "omol"]
    assert r["node_shape"] == [2, 9, 32] and r["l0"] < 1e-6
    assert r["state"] < 1e-6  # a second instance: float summation order may differ
    assert "allow_pickle" in r["refused"]


def test_invariances(family_env):
    """Batch = one-by-one, atom order, rotation, translation, supercell; a repeated call
    agrees to float32 round-off (fairchem's CPU scatter/MoLE sums are not bit-reproducible)."""
    assert_invariant(invariances(family_env(FAMILY), MODEL, config_overrides=SMALL),
                     repeat_atol=1e-6)


# -- eSEN-sm (OMol25, conserving): eSCNMDBackbone with the released hyperparameters -------------
ESEN = "esen-sm-conserving-all-omol"


def test_esen_architecture_layer_and_checkpoints(family_env, tmp_path):
    """eSEN-sm's class and parameter count, the embedding is node_embedding's l=0 channel, a
    backbone state_dict loads with weights_only (same vectors), a pickle is refused unless
    allowed, crystals are masked (OMol25: molecules only), and charge/spin from atoms.info
    reach the model (also UMA's)."""
    code = """
import json, os, numpy as np, torch
from ase.build import bulk, molecule
from fairchem.core.datasets.atomic_data import AtomicData, atomicdata_list_to_batch
from matteralign.models import get_model
from matteralign.records import Record
a = get_model("ESEN").load()
b = a._backbone
records = [Record(id=n, atoms=molecule(n)) for n in ("H2O", "CH3CH2OH", "C6H6")]
emb = a.embed_batch(records).embeddings
water = molecule("H2O")
water.info.update(charge=0, spin=1)  # the adapter's defaults for task omol
data = AtomicData.from_ase(water, task_name="omol", radius=6.0, max_neigh=300,
                           r_data_keys=["charge", "spin"])
with torch.no_grad():
    node = b(atomicdata_list_to_batch([data]))["node_embedding"]
state, pickled = os.path.join(TMP, "sd.pt"), os.path.join(TMP, "whole.pt")
torch.save(b.state_dict(), state)
torch.save({"model": b}, pickled)
again = get_model("ESEN", weights=state).load()
try:
    get_model("ESEN", weights=pickled).load()
    refused = ""
except ValueError as error:
    refused = str(error)
cation = molecule("CH4")
cation.info.update(charge=1, spin=2)
neutral = Record(id="CH4", atoms=molecule("CH4"))
uma = get_model("uma-s-1p1", config_overrides=SMALL_HERE).load()
def charge_effect(adapter):
    return float(np.abs(adapter.embed_batch([Record(id="c", atoms=cation)]).embeddings
                        - adapter.embed_batch([neutral]).embeddings).max())
print(json.dumps({
    "class": type(b).__name__, "params": sum(p.numel() for p in b.parameters()),
    "layers": len(b.blocks), "lmax": b.lmax, "cutoff": b.cutoff, "channels": b.sphere_channels,
    "node_shape": list(node.shape),
    "l0": float(np.abs(node[:, 0, :].double().numpy().mean(0) - emb[0]).max()),
    "state": float(np.abs(again.embed_batch(records).embeddings - emb).max()),
    "refused": refused, "charge": charge_effect(a), "uma_charge": charge_effect(uma),
    "task": a.task_for(bulk("Si", "diamond", a=5.43)),
    "mask_si": a.check(Record(id="Si", atoms=bulk("Si", "diamond", a=5.43))),
    "mask_none": [a.check(r) for r in records]}))
""".replace("ESEN", ESEN).replace("SMALL_HERE", repr(SMALL)).replace("TMP", repr(str(tmp_path)))
    r = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    assert r["class"] == "eSCNMDBackbone"
    assert r["params"] == 6_299_648  # eSEN-sm: 6.3M parameters
    assert (r["layers"], r["lmax"], r["cutoff"], r["channels"]) == (4, 2, 6.0, 128)
    assert r["node_shape"] == [3, 9, 128] and r["l0"] < 1e-5
    assert r["state"] < 1e-5
    assert "allow_pickle" in r["refused"]
    assert r["charge"] > 1e-3 and r["uma_charge"] > 1e-3
    assert r["task"] == "omol"
    assert "periodic structure" in r["mask_si"] and r["mask_none"] == [None] * 3


def test_esen_invariances(family_env):
    """eSEN-sm (full size), molecules: batch = one-by-one, atom order, rotation, translation;
    a repeated call agrees to float32 round-off."""
    assert_invariant(invariances(family_env(FAMILY), ESEN, kinds=("molecule",)),
                     repeat_atol=1e-6)
