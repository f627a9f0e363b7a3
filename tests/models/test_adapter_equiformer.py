"""EquiformerV2 (fairchem-core 1.10's EquiformerV2Backbone, the real architecture) in its own
environment (torch-scatter compiled for torch 2.13): no weights offline, so the full-size
31M backbone runs at random init (labelled), plus a small instance of the same class for the
checkpoint round trips and the invariances."""

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

FAMILY, MODEL, DIM = "equiformer", "equiformer-v2-31m", 128
SMALL = {"num_layers": 2, "sphere_channels": 32, "attn_hidden_channels": 32, "num_heads": 2,
         "attn_alpha_channels": 8, "attn_value_channels": 8, "ffn_hidden_channels": 32,
         "lmax_list": [2], "mmax_list": [1], "edge_channels": 32, "num_distance_basis": 64,
         "num_sphere_samples": 32, "max_radius": 5.0,
         # no neighbour truncation: with the 20-neighbour cap, crystals whose cap falls
         # inside a shell of equidistant atoms keep an order-dependent subset (see the
         # adapter), which no invariance can survive
         "max_neighbors": 200}


def _extra() -> dict:
    # Z=95 (Am) is beyond the 90-element embedding
    return problem_records("Am2", "slab", "no-atoms", *GEOMETRY_PROBLEMS)


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
    assert "Z=[95]" in errors["Am2"]
    assert "partly periodic" in errors["slab"] and "no atoms" in errors["no-atoms"]
    attrs = out["attrs"]
    assert attrs["weights"] == "random-init" and attrs["random_init"] in (True, 1)
    assert attrs["weights_sha256"] == "" and attrs["version_fairchem-core"] == "1.10.0"
    assert attrs["version_torch"].startswith("2.13.0")


def test_architecture_layer_and_checkpoints(family_env, tmp_path):
    """The 31M configuration's size, the embedding is node_embedding's l=0 channel (the
    energy head's input), a fairchem-style checkpoint (config + hydra 'backbone.' keys) and a
    plain state_dict load with weights_only (same vectors), the config in the checkpoint
    wins over the defaults, and a foreign state_dict is refused with its keys named."""
    code = """
import json, os, numpy as np, torch
from ase.build import bulk, molecule
from fairchem.core.models.equiformer_v2.heads import EqV2ScalarHead
from matteralign.models import get_model
from matteralign.models.equiformer import EQV2_31M
from matteralign.records import Record
full = get_model("equiformer-v2-31m").load()
b = full._backbone
params = sum(p.numel() for p in b.parameters())
small = get_model("equiformer-v2-31m", config_overrides=SMALL_HERE).load()
records = [Record(id="Si", atoms=bulk("Si", "diamond", a=5.43)),
           Record(id="H2O", atoms=molecule("H2O"))]
emb = small.embed_batch(records).embeddings
head = EqV2ScalarHead(small._backbone)
seen = []
hook = head.energy_block.register_forward_pre_hook(lambda m, i: seen.append(i[0]))
from fairchem.core.preprocessing import AtomsToGraphs
from torch_geometric.data import Batch
batch = Batch.from_data_list([AtomsToGraphs(r_edges=False, r_pbc=True).convert(
    bulk("Si", "diamond", a=5.43))])
with torch.no_grad():
    out = small._backbone(batch)
    head(batch, out)
hook.remove()
node = out["node_embedding"].embedding
ckpt, plain, foreign = (os.path.join(TMP, f) for f in ("ckpt.pt", "sd.pt", "foreign.pt"))
sd = small._backbone.state_dict()
torch.save({"state_dict": {"module.backbone." + k: v for k, v in sd.items()},
            "config": {"model": {"name": "hydra",
                                 "backbone": {**EQV2_31M, **SMALL_HERE}}}}, ckpt)
torch.save(sd, plain)
torch.save({"state_dict": {"blocks.0.weight": torch.zeros(3)}}, foreign)
from_ckpt = get_model("equiformer-v2-31m", weights=ckpt).load()
from_plain = get_model("equiformer-v2-31m", weights=plain, config_overrides=SMALL_HERE)
try:
    get_model("equiformer-v2-31m", weights=foreign).load()
    refused = ""
except ValueError as error:
    refused = str(error)
print(json.dumps({
    "params": params, "layers": len(b.blocks), "lmax": b.lmax_list, "radius": b.max_radius,
    "node_shape": list(node.shape),
    "l0": float(np.abs(node[:, 0, :].double().numpy().mean(0) - emb[0]).max()),
    "head_input": float(np.abs(seen[0].embedding[:, 0, :] - node[:, 0, :]).max()),
    "ckpt": float(np.abs(from_ckpt.embed_batch(records).embeddings - emb).max()),
    "ckpt_layers": len(from_ckpt._backbone.blocks),
    "refused": refused}))
""".replace("SMALL_HERE", repr(SMALL)).replace("TMP", repr(str(tmp_path)))
    r = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    assert 27e6 < r["params"] < 29e6  # backbone of the 31M model (heads excluded)
    assert (r["layers"], r["lmax"], r["radius"]) == (8, [4], 12.0)
    assert r["node_shape"] == [2, 9, 32] and r["l0"] < 1e-6
    assert r["head_input"] == 0.0
    assert r["ckpt"] < 1e-6 and r["ckpt_layers"] == 2  # the checkpoint's config was used
    assert "not an EquiformerV2 backbone" in r["refused"] and "missing" in r["refused"]


def test_invariances(family_env):
    """Batch = one-by-one, atom order, rotation, translation, supercell (small instance)."""
    assert_invariant(invariances(family_env(FAMILY), MODEL, config_overrides=SMALL),
                     repeat_atol=1e-6)
