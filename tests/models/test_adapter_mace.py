"""MACE (mace-torch ScaleShiftMACE, the real architecture) in its own environment: no weights
can be had offline, so a small random instance of the same class is checked: the hooked
layer equals mace's own get_descriptors, local checkpoints (state_dict: weights_only; pickled
.model: refused unless allowed), masking, labelling and the invariances."""

from __future__ import annotations

import json

from tests.models.conftest import assert_invariant, invariances, run_in_env

FAMILY, MODEL = "mace", "mace-mp-0-medium"
#: a small instance of the same class (MACE-MP-0 medium's block types, fewer channels)
SMALL = {"hidden_irreps": "32x0e+32x1o", "max_ell": 2, "correlation": 2,
         "atomic_numbers": [1, 6, 7, 8, 11, 14, 17]}
DIM = 32


def test_small_instance(family_env, tmp_path):
    code = """
import json, os, warnings, numpy as np, torch
warnings.simplefilter("ignore")
from ase import Atoms
from ase.build import bulk, molecule
from matteralign.models import get_model
from matteralign.records import Record
small = SMALL_HERE
a = get_model("mace-mp-0-medium", config_overrides=small).load()
records = [Record(id="Si", atoms=bulk("Si", "diamond", a=5.43)),
           Record(id="NaCl", atoms=bulk("NaCl", "rocksalt", a=5.64)),
           Record(id="H2O", atoms=molecule("H2O")), Record(id="C6H6", atoms=molecule("C6H6"))]
out = a.embed_batch(records)
feats, energy = a.atom_features(records)
torch_env = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")  # before mace.calculators
pickled, state = os.path.join(TMP, "m.model"), os.path.join(TMP, "sd.pt")
torch.save(a._model, pickled)
torch.save(a._model.state_dict(), state)
from mace.calculators import MACECalculator
calc = MACECalculator(model_paths=pickled, device="cpu", default_dtype="float64")
desc = [calc.get_descriptors(r.atoms, invariants_only=True, num_layers=-1)[:, -DIM_HERE:]
        for r in records]
try:
    get_model("mace-mp-0-medium", weights=pickled).load()
    refused = ""
except ValueError as error:
    refused = str(error)
from_state = get_model("mace-mp-0-medium", weights=state, config_overrides=small).load()
from_pickle = get_model("mace-mp-0-medium", weights=pickled, allow_pickle=True).load()
s_out, p_out = from_state.embed_batch(records), from_pickle.embed_batch(records)
full = get_model("mace-mp-0-medium").load()
full_out = full.embed_batch(records).embeddings
print(json.dumps({
    "full_params": sum(p.numel() for p in full._model.parameters()),
    "full_shape": list(full_out.shape), "full_finite": bool(np.isfinite(full_out).all()),
    "shape": list(out.embeddings.shape), "energy": out.energy,
    "label": a.weights_label(), "path": a.weights_path(),
    "vs_descriptors": max(float(np.abs(f - d).max()) for f, d in zip(feats, desc)),
    "refused": refused, "torch_env": torch_env,
    "state": float(np.abs(s_out.embeddings - out.embeddings).max()),
    "pickle": float(np.abs(p_out.embeddings - out.embeddings).max()),
    "state_energy_finite": bool(np.isfinite(s_out.energy).all()),
    "mask_fe": a.check(Record(id="Fe", atoms=bulk("Fe"))),
    "mask_2d": a.check(Record(id="slab", atoms=Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]],
                                                      cell=[5, 5, 5], pbc=[1, 1, 0])))}))
"""
    code = (code.replace("SMALL_HERE", repr(SMALL)).replace("DIM_HERE", str(DIM))
            .replace("TMP", repr(str(tmp_path))))
    r = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    assert r["shape"] == [4, DIM]
    # the default model is MACE-MP-0 medium's architecture: 4.69M parameters as published
    assert r["full_params"] == 4_688_656
    assert r["full_shape"] == [4, 128] and r["full_finite"]
    assert r["energy"] is None  # random weights: no energy
    assert r["label"] == "random-init" and r["path"] is None
    assert r["vs_descriptors"] < 1e-10  # the hooked layer is get_descriptors' last block
    assert "allow_pickle" in r["refused"]
    assert r["torch_env"] is None  # mace's process-wide weights_only override undone
    assert r["state"] == 0.0 and r["pickle"] == 0.0 and r["state_energy_finite"]
    assert "Z=[26]" in r["mask_fe"]
    assert "partly periodic" in r["mask_2d"]


def test_invariances(family_env):
    """Batch = one-by-one, deterministic, atom order, rotation/translation, supercell."""
    assert_invariant(invariances(family_env(FAMILY), MODEL, config_overrides=SMALL),
                     atol=1e-9, batch_atol=1e-10, min_scale=1e-5)  # float64, small weights
