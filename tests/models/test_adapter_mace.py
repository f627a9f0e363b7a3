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


# -- MACE-OFF23 (small/medium/large): the released models' class and hyperparameters ------------
OFF = ("mace-off23-small", "mace-off23-medium", "mace-off23-large")


def test_mace_off_architectures(family_env, tmp_path):
    """The three sizes are ScaleShiftMACE with MACE-OFF23's hyperparameters (non-residual first
    interaction, cutoffs 4.5/5/5 A, hidden 96x0e / 128x0e+128x1o / 192x0e+192x1o+192x2e, the
    SPICE E0s, the ten organic elements), the hooked layer is get_descriptors' last block, a
    state_dict checkpoint round-trips (and then reports energies), other elements are masked."""
    code = """
import json, os, warnings, numpy as np, torch
warnings.simplefilter("ignore")
from ase import Atoms
from ase.build import bulk, molecule
from matteralign.models import get_model
from matteralign.models.mace import OFF_E0S
from matteralign.records import Record
records = [Record(id=n, atoms=molecule(n)) for n in ("CH3CH2OH", "C6H6", "CH3Cl", "H2O")]
arch = {}
for name in NAMES:
    a = get_model(name).load()
    m = a._model
    arch[name] = {
        "class": type(m).__name__, "params": sum(p.numel() for p in m.parameters()),
        "blocks": [type(b).__name__ for b in m.interactions], "r_max": float(m.r_max),
        "hidden": str(m.products[0].linear.irreps_out),
        "last": str(m.products[-1].linear.irreps_out),
        "zs": [int(z) for z in m.atomic_numbers], "scale": float(m.scale_shift.scale),
        "e0": float(np.abs(m.atomic_energies_fn.atomic_energies.numpy().reshape(-1)
                           - [OFF_E0S[int(z)] for z in m.atomic_numbers]).max()),
        "dim": a.embed_batch(records).embeddings.shape[1]}
small = get_model("mace-off23-small").load()
out = small.embed_batch(records)
feats, _ = small.atom_features(records)
pickled, state = os.path.join(TMP, "off.model"), os.path.join(TMP, "off-sd.pt")
torch.save(small._model, pickled)
torch.save(small._model.state_dict(), state)
from mace.calculators import MACECalculator
calc = MACECalculator(model_paths=pickled, device="cpu", default_dtype="float64")
desc = [calc.get_descriptors(r.atoms, invariants_only=True, num_layers=-1)[:, -96:]
        for r in records]
again = get_model("mace-off23-small", weights=state).load().embed_batch(records)
print(json.dumps({
    "arch": arch, "vs_descriptors": max(float(np.abs(f - d).max()) for f, d in zip(feats, desc)),
    "energy": out.energy, "state": float(np.abs(again.embeddings - out.embeddings).max()),
    "state_energy": [float(e) for e in again.energy],
    "mask_si": small.check(Record(id="Si", atoms=bulk("Si", "diamond", a=5.43))),
    "mask_nacl": small.check(Record(id="NaCl", atoms=bulk("NaCl", "rocksalt", a=5.64))),
    "mask_none": [small.check(r) for r in records]}))
"""
    code = (code.replace("NAMES", repr(OFF)).replace("TMP", repr(str(tmp_path))))
    r = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    expect = {  # cutoff, hidden irreps, invariant last layer, parameters
        "mace-off23-small": (4.5, "96x0e", "96x0e", 694_320),
        "mace-off23-medium": (5.0, "128x0e+128x1o", "128x0e", 1_428_368),
        "mace-off23-large": (5.0, "192x0e+192x1o+192x2e", "192x0e", 3_551_952),
    }
    for name, (r_max, hidden, last, params) in expect.items():
        a = r["arch"][name]
        assert a["class"] == "ScaleShiftMACE"
        assert a["blocks"] == ["RealAgnosticInteractionBlock",
                               "RealAgnosticResidualInteractionBlock"]
        assert (a["r_max"], a["hidden"], a["last"], a["params"]) == (r_max, hidden, last, params)
        assert a["zs"] == [1, 6, 7, 8, 9, 15, 16, 17, 35, 53]
        assert a["e0"] < 1e-9  # SPICE isolated-atom energies of the training script
        assert a["dim"] == int(last.split("x")[0])
    assert r["arch"]["mace-off23-small"]["scale"] == 1.0757
    assert r["vs_descriptors"] < 1e-10
    assert r["energy"] is None  # random weights: no energy
    assert r["state"] == 0.0
    # a loaded checkpoint reports energies: E0s dominate (H2O ~ 2 x -13.57 - 2043.9 eV)
    assert -2075 < r["state_energy"][3] < -2065
    assert "Z=[14]" in r["mask_si"] and "organic elements" in r["mask_si"]
    assert "Z=[11]" in r["mask_nacl"]
    assert r["mask_none"] == [None] * 4


def test_mace_off_invariances(family_env):
    """MACE-OFF23 small (full size): batch = one-by-one, deterministic, atom order, rotation,
    translation (molecules: the helper's crystals are not organic)."""
    assert_invariant(invariances(family_env(FAMILY), "mace-off23-small", kinds=("molecule",)),
                     atol=1e-9, batch_atol=1e-10, min_scale=1e-5)
