"""ANI-1x (real 8-model ensemble from the torchani 2.2.4 wheel) in its own environment:
shipped weights, last hidden layer, energies, H/C/N/O and molecules-only masking, invariances."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.models.conftest import (
    assert_invariant,
    check_common,
    embed_in_env,
    invariances,
    make_records,
    read_h5,
    run_in_env,
    site_packages,
    write_records,
)

FAMILY, MODEL, DIM = "ani", "ani-1x", 96
ENSEMBLE = "torchani/resources/ani-1x_8x"


def _extra() -> dict:
    from ase.build import molecule

    from matteralign.records import Record

    return {
        "CF4": Record(id="CF4", atoms=molecule("CF4")),  # F: not an ANI-1x element
        "SiH4": Record(id="SiH4", atoms=molecule("SiH4")),
        "no-atoms": Record(id="no-atoms", smiles="C", text="methane"),
    }


@pytest.fixture(scope="module")
def outputs(family_env, tmp_path_factory):
    python = family_env(FAMILY)
    path = write_records(tmp_path_factory.mktemp(FAMILY) / "structures.h5",
                         make_records(_extra()))
    files = embed_in_env(python, MODEL, path,
                         {"run1": None, "run2": None, "random": "random-init",
                          "local": str(site_packages(FAMILY) / ENSEMBLE)})
    return {stem: read_h5(p) for stem, p in files.items()}


def test_shapes_mask_and_errors(outputs):
    out = outputs["run1"]
    masked = set(_extra()) | {"Si", "NaCl"}
    check_common(out, DIM, {i: i not in masked for i in out["ids"]})
    errors = dict(zip(out["ids"], out["errors"], strict=True))
    assert "F outside ANI-1x's H, C, N, O" in errors["CF4"]
    assert "Si" in errors["SiH4"]
    assert "periodic" in errors["Si"] and "periodic" in errors["NaCl"]
    assert "no atoms" in errors["no-atoms"]


def test_energies_are_physical(outputs):
    out = outputs["run1"]
    energy = dict(zip(out["ids"], out["energy"], strict=True))
    valid = dict(zip(out["ids"], out["valid"], strict=True))
    assert all(np.isfinite(energy[i]) == valid[i] for i in out["ids"])
    # wB97X/6-31G(d) total energies: CH4 -40.50 Ha, H2O -76.38 Ha (27.2114 eV/Ha)
    assert -1103 < energy["CH4"] < -1101
    assert -2080 < energy["H2O"] < -2076
    assert energy["C6H6"] < energy["CH3CH2OH"] < energy["H2O"]


def test_deterministic_and_provenance(outputs):
    np.testing.assert_allclose(outputs["run1"]["embeddings"], outputs["run2"]["embeddings"],
                               rtol=0, atol=0, equal_nan=True)
    attrs = outputs["run1"]["attrs"]
    assert attrs["model"] == MODEL and attrs["family"] == FAMILY
    assert attrs["version_torchani"] == "2.2.4" and attrs["version_torch"].startswith("2.13.0")
    assert len(attrs["weights_sha256"]) == 64  # of the manifest of all ensemble files


def test_random_init_differs_and_is_labelled(outputs):
    rand, real = outputs["random"], outputs["run1"]
    assert rand["attrs"]["weights"] == "random-init"
    assert rand["attrs"]["random_init"] in (True, 1)
    assert rand["attrs"]["weights_sha256"] == ""
    assert np.array_equal(rand["valid"], real["valid"])
    ok = real["valid"]
    assert np.all(np.isfinite(rand["embeddings"][ok]))
    assert not np.allclose(rand["embeddings"][ok], real["embeddings"][ok], atol=1e-3)
    assert np.all(np.isnan(rand["energy"]))


def test_local_ensemble_directory(outputs):
    """weights=<a NeuroChem ensemble directory> loads it (here: the shipped one)."""
    local, real = outputs["local"], outputs["run1"]
    assert local["attrs"]["weights"] == str(site_packages(FAMILY) / ENSEMBLE)
    assert local["attrs"]["weights_sha256"] == real["attrs"]["weights_sha256"]
    np.testing.assert_array_equal(local["embeddings"], real["embeddings"])


def test_layer_and_energy_match_torchani(family_env, tmp_path):
    """The features are the input of every element network's final Linear (its last hidden
    layer), averaged over the 8 members; the energy equals torchani's own ANI1x() built from
    an .info file (written into a temporary HOME) and a batch equals one-by-one."""
    code = """
import json, os, numpy as np, torch
from ase.build import molecule
from matteralign.models import get_model
from matteralign.records import Record
a = get_model("ani-1x").load()
records = [Record(id=n, atoms=molecule(n)) for n in ("CH4", "H2O", "C6H6", "CH3CH2OH", "NH3")]
seen = []
hooks = [net[-1].register_forward_pre_hook(lambda m, i: seen.append(i[0].detach().clone()))
         for member in a._model.neural_networks for net in member.values()]
feats, energy = a.atom_features(records[:1])
for h in hooks:
    h.remove()
# ensemble forward: 8 members x (H, C) nets fed CH4's 4 H and 1 C atoms
h_rows = [s for s in seen if s.shape[0] == 4]
c_rows = [s for s in seen if s.shape[0] == 1]
mean_h = torch.stack(h_rows).double().mean(0).numpy()
mean_c = torch.stack(c_rows).double().mean(0).numpy()
layer = max(float(np.abs(feats[0][0] - mean_c[0]).max()),
            float(np.abs(feats[0][1:] - mean_h).max()))
feats, energy = a.atom_features(records)
single = [a.atom_features([r]) for r in records]
ens = str(a.ensemble_dir())
os.makedirs(os.path.expanduser("~/.local/torchani"))
with open(os.path.expanduser("~/.local/torchani/ani-1x_8x.info"), "w") as f:
    f.write(f"{ens}/rHCNO-5.2R_16-3.5A_a4-8.params\\n{ens}/sae_linfit.dat\\n{ens}/train\\n8\\n")
import torchani
ref = torchani.models.ANI1x(periodic_table_index=True)
own = [float(ref((torch.tensor(r.atoms.numbers)[None],
                  torch.tensor(r.atoms.positions, dtype=torch.float32)[None])).energies.detach())
       * torchani.units.HARTREE_TO_EV for r in records]
print(json.dumps({"members": len(h_rows), "layer": layer, "dim": int(feats[0].shape[1]),
                  "vs_own": float(np.abs(np.array(own) - energy).max()),
                  "batch": max(float(np.abs(f - s[0][0]).max()) for f, s in zip(feats, single))}))
"""
    import os

    home = tmp_path / "home"
    home.mkdir()
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        result = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    finally:
        if old is not None:
            os.environ["HOME"] = old
    assert result["members"] == 8 and result["dim"] == DIM
    assert result["layer"] < 1e-6
    assert result["vs_own"] < 1e-3
    assert result["batch"] < 1e-5


def test_invariances(family_env):
    """Molecules: batch = one-by-one, deterministic, atom order, rotation and translation."""
    assert_invariant(invariances(family_env(FAMILY), MODEL, kinds=("molecule",)))
