"""MatterSim v1 (the real M3Gnet architecture of mattersim-v1.0.0-1M) in its own environment:
no weights can be had offline, so it runs at random init: the features are the last block's
atom features (what the energy readout reads), a local checkpoint loads (weights_only; a
pickled one only with allow_pickle) and its energy equals mattersim's own ASE calculator,
masking, labelling and invariances; torch stays the CPU 2.13.0 build."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.models.conftest import (
    GEOMETRY_PROBLEMS,
    assert_invariant,
    check_common,
    check_geometry_masked,
    invariances,
    make_records,
    problem_records,
    read_h5,
    run_in_env,
    sha256,
    write_records,
)

FAMILY, MODEL, DIM = "mattersim", "mattersim-v1-1m", 128


def _extra() -> dict:
    # Z=95 is outside MatterSim's element embedding (Z 1-94)
    return problem_records("Am2", "slab", "no-atoms", *GEOMETRY_PROBLEMS)


@pytest.fixture(scope="module")
def outputs(family_env, tmp_path_factory):
    python = family_env(FAMILY)
    tmp = tmp_path_factory.mktemp(FAMILY)
    path = write_records(tmp / "structures.h5", make_records(_extra()))
    checkpoint = tmp / "mattersim-random.pth"
    files = {stem: tmp / f"{stem}.h5" for stem in ("run1", "local")}
    # one process: save the seeded model as mattersim's Potential.save does, embed twice
    run_in_env(python, f"""
from mattersim.forcefield.potential import Potential
from matteralign.embed import embed_dataset
from matteralign.models import get_model
Potential(get_model({MODEL!r}).load()._model, device="cpu").save({str(checkpoint)!r})
runs = ((None, {str(files["run1"])!r}), ({str(checkpoint)!r}, {str(files["local"])!r}))
for weights, out in runs:
    embed_dataset({MODEL!r}, {str(path)!r}, out, weights=weights, progress=False)
""")
    return {stem: read_h5(p) for stem, p in files.items()} | {"checkpoint": checkpoint}


def test_shapes_mask_and_labels(outputs):
    out = outputs["run1"]
    check_common(out, DIM, {i: i not in _extra() for i in out["ids"]})
    check_geometry_masked(out)
    errors = dict(zip(out["ids"], out["errors"], strict=True))
    assert "Z=[95]" in errors["Am2"]
    assert "partly periodic" in errors["slab"] and "no atoms" in errors["no-atoms"]
    attrs = out["attrs"]
    assert attrs["weights"] == "random-init" and attrs["random_init"] in (True, 1)
    assert attrs["weights_sha256"] == "" and attrs["version_mattersim"] == "1.2.3"
    assert attrs["version_torch"] == "2.13.0+cpu"  # its deps did not pull a CUDA torch
    assert np.all(np.isnan(out["energy"]))  # random weights: no energy


def test_local_checkpoint(outputs):
    """weights=<a local MatterSim .pth> (the seeded random model saved by Potential.save, the
    format of mattersim's released checkpoints) loads with weights_only: same vectors, its
    hash recorded, and an energy now reported."""
    local, run1 = outputs["local"], outputs["run1"]
    assert local["attrs"]["weights"] == str(outputs["checkpoint"])
    assert local["attrs"]["weights_sha256"] == sha256(outputs["checkpoint"])
    np.testing.assert_allclose(local["embeddings"], run1["embeddings"], rtol=0, atol=1e-6,
                               equal_nan=True)
    assert np.all(np.isfinite(local["energy"][local["valid"]]))


def test_layer_energy_and_checkpoint_safety(family_env, tmp_path):
    """The features are the input of MatterSim's energy readout (final) after the last block;
    the energy equals mattersim's own MatterSimCalculator (same checkpoint); the architecture
    has the 1M model's hyperparameters; a checkpoint holding a pickled object is refused
    unless allow_pickle=True; a missing parameter is an error."""
    code = """
import argparse, json, numpy as np, torch
from pathlib import Path
from ase.build import bulk, molecule
from mattersim.forcefield.potential import MatterSimCalculator, Potential
from matteralign.models import get_model
from matteralign.records import Record
records = [Record(id="Si", atoms=bulk("Si", "diamond", a=5.43)),
           Record(id="C6H6", atoms=molecule("C6H6")),
           Record(id="NaCl", atoms=bulk("NaCl", "rocksalt", a=5.64))]
ckpt = str(Path(TMP) / "ckpt.pth")
Potential(get_model("mattersim-v1-1m").load()._model, device="cpu").save(ckpt)
a = get_model("mattersim-v1-1m", weights=ckpt).load()
seen = []
h = a._model.final.register_forward_pre_hook(lambda m, i: seen.append(i[0]))
feats, energy = a.atom_features(records)
h.remove()
calc = MatterSimCalculator.from_checkpoint(ckpt, device="cpu")
own = []
for r in records:
    atoms = r.atoms.copy(); atoms.calc = calc; own.append(atoms.get_potential_energy())
state = torch.load(ckpt, weights_only=True)
pickled = str(Path(TMP) / "pickled.pth")
torch.save({**state, "args": argparse.Namespace(lr=0.1)}, pickled)
partial = str(Path(TMP) / "partial.pth")
torch.save({**state, "model": {k: v for k, v in state["model"].items()
                               if not k.startswith("final.")}}, partial)
errors = []
for path, kwargs in ((pickled, {}), (pickled, {"allow_pickle": True}), (partial, {})):
    try:
        get_model("mattersim-v1-1m", weights=path, **kwargs).load()
        errors.append("")
    except ValueError as exc:
        errors.append(str(exc))
args = a._model.model_args
print(json.dumps({
    "readout_input": float(np.abs(seen[0].double().numpy() - np.concatenate(feats)).max()),
    "energy": float(np.abs(np.array(own) - energy).max()),
    "args": [args[k] for k in ("num_blocks", "units", "max_l", "max_n", "cutoff",
                                "threebody_cutoff", "max_z")],
    "params": sum(p.numel() for p in a._model.parameters()), "errors": errors,
}))
""".replace("TMP", repr(str(tmp_path)))
    result = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    assert result["readout_input"] == 0.0
    assert result["energy"] < 1e-4
    assert result["args"] == [4, 128, 4, 4, 5.0, 4.0, 94]
    assert 1.1e6 < result["params"] < 1.2e6
    assert "allow_pickle" in result["errors"][0] and result["errors"][1] == ""
    assert "parameter(s) missing" in result["errors"][2]


def test_invariances(family_env):
    """Batch = one-by-one, deterministic, atom order, rotation, translation and a 2x2x1
    supercell give the same vector (MatterSim's inputs are distances and angles)."""
    assert_invariant(invariances(family_env(FAMILY), MODEL))
