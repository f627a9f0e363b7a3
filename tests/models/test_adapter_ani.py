"""ANI-1x (real 8-model ensemble from the torchani 2.2.4 wheel) in its own environment:
shipped weights, last hidden layer (members side by side), energies, H/C/N/O and
molecules-only masking, invariances; its members as models of their own (the noise ceiling)."""

from __future__ import annotations

import json

import numpy as np
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
    site_packages,
    write_records,
)

FAMILY, MODEL, DIM = "ani", "ani-1x", 768
#: one member's last hidden layer; the ensemble holds 8 such blocks side by side
MEMBER_DIM, MEMBERS = 96, 8
ENSEMBLE = "torchani/resources/ani-1x_8x"


def _extra() -> dict:
    from ase.build import molecule

    from matteralign.records import Record

    return {
        **problem_records(*GEOMETRY_PROBLEMS),
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
    check_geometry_masked(out)
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
    layer), member K's in block K; the energy equals torchani's own ANI1x() built from an
    .info file (written into a temporary HOME) and a batch equals one-by-one."""
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
# ensemble forward, member by member: (H, C) nets fed CH4's 4 H and 1 C atoms
h_rows = [s.double().numpy() for s in seen if s.shape[0] == 4]
c_rows = [s.double().numpy() for s in seen if s.shape[0] == 1]
blocks = feats[0].reshape(5, len(h_rows), -1)
layer = max(max(float(np.abs(blocks[0, k] - c_rows[k][0]).max()),
                float(np.abs(blocks[1:, k] - h_rows[k]).max())) for k in range(len(h_rows)))
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
    assert result["members"] == MEMBERS and result["dim"] == DIM
    assert result["layer"] < 1e-6
    assert result["vs_own"] < 1e-3
    assert result["batch"] < 1e-5


def test_invariances(family_env):
    """Molecules: batch = one-by-one, deterministic, atom order, rotation and translation."""
    assert_invariant(invariances(family_env(FAMILY), MODEL, kinds=("molecule",)))


# -- the members: seed replicates of one model, the noise ceiling ------------------------------
MEMBERS_CODE = """
import json, numpy as np, torch
from ase.build import molecule
from ase.collections import g2
from matteralign.io import sha256_file
from matteralign.models import get_model
from matteralign.records import Record
names = [n for n in g2.names if set(molecule(n).get_chemical_symbols()) <= {"H", "C", "N", "O"}]
records = [Record(id=n, atoms=molecule(n)) for n in names]
ensemble = get_model("ani-1x").load()
members = [get_model(f"ani-1x-m{k}").load() for k in range(8)]
local = get_model("ani-1x-m3", weights=str(ensemble.ensemble_dir())).load()
def embed(adapter):
    out = adapter.embed_batch(records)
    return out.embeddings, out.energy
arrays = {}
for key, adapter in [("ens", ensemble), *((f"m{k}", a) for k, a in enumerate(members)),
                     ("local", local)]:
    arrays[key], arrays[key + "_energy"] = embed(adapter)
perm = np.random.default_rng(0).permutation(96)
def relabel(member):
    # member's last hidden units in another order: the rows of the Linear into them and the
    # read-out's columns, the same for every element network (they share channels)
    for net in member.values():
        into, out = net[-3], net[-1]
        into.weight.copy_(into.weight[perm])
        into.bias.copy_(into.bias[perm])
        out.weight.copy_(out.weight[:, perm])
with torch.no_grad():
    relabel(ensemble._model.neural_networks[1])
    relabel(members[1]._model.neural_networks[0])
arrays["ens_p"], arrays["ens_p_energy"] = embed(ensemble)
arrays["m1_p"], arrays["m1_p_energy"] = embed(members[1])
np.savez(OUT, perm=perm, **arrays)
print(json.dumps({
    "labels": [a.weights_label() for a in (ensemble, *members, local)],
    "sha": [sha256_file(a.weights_path()) for a in (ensemble, *members, local)],
    "dims": [a.embed_batch(records[:1]).embeddings.shape[1] for a in (ensemble, members[0])],
    "ensemble_dir": str(ensemble.ensemble_dir())}))
"""


def test_members_are_the_ensemble_blocks_and_a_relabelling_changes_no_alignment(
        family_env, tmp_path):
    """ani-1x-mK is block K of ani-1x, bit for bit, records its member, and the members'
    energies average to the ensemble's. Relabelling member 1's last hidden units (the network
    function unchanged) permutes its columns and changes neither CKA nor CKNNA between two
    members (the noise ceiling) nor the ensemble's alignment; the member mean of the blocks
    (the ensemble embedding before members were kept apart) does change."""
    from matteralign.metrics import cka, cknna

    out = tmp_path / "members.npz"
    code = MEMBERS_CODE.replace("OUT", repr(str(out)))
    r = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    a = dict(np.load(out))
    perm, n = a["perm"], len(a["ens"])
    assert r["dims"] == [DIM, MEMBER_DIM]
    # the members and their provenance: the weights label and the manifest name the member
    assert r["labels"][1:-1] == [f"ANI-1x 8x ensemble, member {k} (train{k}/; torchani 2.2.4 "
                                 "wheel)" for k in range(MEMBERS)]
    assert r["labels"][-1] == f"{r['ensemble_dir']} (member 3: train3/)"
    assert len(set(r["sha"][:-1])) == MEMBERS + 1 and r["sha"][-1] == r["sha"][4]
    np.testing.assert_array_equal(a["local"], a["m3"])
    for k in range(MEMBERS):
        np.testing.assert_array_equal(a["ens"][:, k * MEMBER_DIM:(k + 1) * MEMBER_DIM],
                                      a[f"m{k}"])
    energies = np.stack([a[f"m{k}_energy"] for k in range(MEMBERS)])
    assert np.abs(energies.mean(0) - a["ens_energy"]).max() < 1e-3  # eV
    assert np.ptp(energies, axis=0).max() > 1e-2  # the replicates disagree (eV)
    # the relabelled member: the same function, its columns permuted
    for key in ("ens", "m1"):
        assert np.abs(a[f"{key}_p_energy"] - a[f"{key}_energy"]).max() < 1e-4
    np.testing.assert_allclose(a["m1_p"], a["m1"][:, perm], rtol=0, atol=1e-6)
    blocks, blocks_p = (a[k].reshape(n, MEMBERS, MEMBER_DIM) for k in ("ens", "ens_p"))
    np.testing.assert_allclose(blocks_p[:, 1], blocks[:, 1][:, perm], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.delete(blocks_p, 1, axis=1), np.delete(blocks, 1, axis=1))

    def metrics(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        x, y = x.astype(np.float64), y.astype(np.float64)
        return np.array([cka(x, y), cknna(x, y, k=10)])

    ceiling = metrics(a["m0"], a["m1"])
    assert np.all((0.2 < ceiling) & (ceiling < 1))
    np.testing.assert_allclose(metrics(a["m0"], a["m1_p"]), ceiling, rtol=0, atol=1e-9)
    np.testing.assert_allclose(metrics(a["ens_p"], a["m0"]), metrics(a["ens"], a["m0"]),
                               rtol=0, atol=1e-9)
    # contrast: averaging unit i across members mixes unrelated units, and a relabelling of
    # one member (which changes nothing the model computes) changes that embedding
    mean, mean_p = blocks.mean(1), blocks_p.mean(1)
    assert np.abs(mean_p - mean).max() > 0.1 * np.abs(mean).max()
    assert np.abs(metrics(mean_p, a["m0"]) - metrics(mean, a["m0"])).max() > 1e-2


# -- ANI-2x: the real architecture at random init (its weights download) -----------------------
ANI2X, DIM2X = "ani-2x", 8 * 864


def test_ani2x_architecture_layer_and_checkpoint(family_env, tmp_path):
    """ANI-2x's AEV (the generator reproduces the shipped ANI-1x NeuroChem constants, and gives
    2x's 1008-d AEV), its element networks and order, per-element blocks of the last hidden
    layer, random init without energy, a state_dict round trip (with energies), the wheel's
    empty ani-2x_8x placeholder refused, and the masking reasons."""
    code = """
import json, os, numpy as np, torch
from ase import Atoms
from ase.build import bulk, molecule
from torchani.aev import AEVComputer
from torchani.neurochem import Constants
from matteralign.models import get_model
from matteralign.records import Record
one = get_model("ani-1x").load()
shipped = Constants(str(one.ensemble_dir() / one.const_file))
mine = AEVComputer.cover_linearly(5.2, 3.5, 16.0, 8.0, 16, 4, 32.0, 8, 4)
gen = max(float((getattr(mine, k).flatten() - shipped[k].flatten()).abs().max())
          for k in ("EtaR", "ShfR", "EtaA", "Zeta", "ShfA", "ShfZ"))
a = get_model("ani-2x").load()
m = a._model
aev = m.aev_computer
nets = {s: [(l.in_features, l.out_features) for l in net if isinstance(l, torch.nn.Linear)]
        for s, net in m.neural_networks[0].items()}
acts = {type(l).__name__ + str(getattr(l, "alpha", "")) for net in m.neural_networks[0].values()
        for l in net if not isinstance(l, torch.nn.Linear)}
records = [Record(id=n, atoms=molecule(n)) for n in ("CH4", "SO2", "CF4", "CH3Cl", "C6H6")]
out = a.embed_batch(records)
feats, _ = a.atom_features(records[:1])
seen = {}
hooks = [net[-1].register_forward_pre_hook(
            lambda mod, i, s=s: seen.setdefault(s, []).append(i[0].detach().double()))
         for member in m.neural_networks for s, net in member.items()]
a.atom_features(records[:1])
for h in hooks:
    h.remove()
blocks = feats[0].reshape(5, 8, 864)  # member K's per-element blocks in block K
layer = max(max(float(np.abs(blocks[0, k, 160:320] - seen["C"][k].numpy()[0]).max()),
                float(np.abs(blocks[1:, k, 0:160] - seen["H"][k].numpy()).max()))
            for k in range(8))
outside = float(np.abs(np.delete(blocks[0], np.s_[160:320], axis=1)).max()
                + np.abs(blocks[1:, :, 160:]).max())
state = os.path.join(TMP, "ani2x.pt")
torch.save(m.state_dict(), state)
again = get_model("ani-2x", weights=state).load().embed_batch(records)
try:
    get_model("ani-2x", weights=str(one.ensemble_dir().parent / "ani-2x_8x")).load()
    placeholder = ""
except ValueError as error:
    placeholder = str(error)
print(json.dumps({
    "gen": gen, "aev_len": aev.aev_length, "rcr": aev.Rcr, "rca": aev.Rca,
    "etar": aev.EtaR.flatten().tolist(), "etaa": aev.EtaA.flatten().tolist(),
    "zeta": aev.Zeta.flatten().tolist(), "shfr": aev.ShfR.flatten().tolist(),
    "shfa": aev.ShfA.flatten().tolist(), "shfz": aev.ShfZ.flatten().tolist(),
    "nets": nets, "acts": sorted(acts), "members": len(m.neural_networks),
    "order": list(m.neural_networks[0].keys()), "shape": list(out.embeddings.shape),
    "energy": out.energy, "layer": layer, "outside": outside,
    "state": float(np.abs(again.embeddings - out.embeddings).max()),
    "state_energy": [float(e) for e in again.energy], "placeholder": placeholder,
    "label": a.weights_label(), "path": a.weights_path(),
    "mask_si": a.check(Record(id="SiH4", atoms=molecule("SiH4"))),
    "mask_p": a.check(Record(id="PH3", atoms=molecule("PH3"))),
    "mask_pbc": a.check(Record(id="Si", atoms=bulk("Si", "diamond", a=5.43))),
    "mask_none": [a.check(r) for r in records]}))
""".replace("TMP", repr(str(tmp_path)))
    r = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    assert r["gen"] < 1e-6  # torchani's linear cover reproduces the NeuroChem constants file
    assert r["aev_len"] == 1008 and (r["rcr"], r["rca"]) == (5.1, 3.5)
    assert np.allclose(r["etar"], [19.7]) and np.allclose(r["etaa"], [12.5])
    assert np.allclose(r["zeta"], [14.1])
    assert np.allclose(r["shfr"], 0.8 + 0.26875 * np.arange(16), atol=1e-6)
    assert np.allclose(r["shfa"], 0.8 + 0.3375 * np.arange(8), atol=1e-6)
    assert np.allclose(r["shfz"], np.pi / 8 * (1 + 2 * np.arange(4)), atol=1e-6)
    widths = {"H": (256, 192, 160), "C": (224, 192, 160), "N": (192, 160, 128),
              "O": (192, 160, 128), "S": (160, 128, 96), "F": (160, 128, 96),
              "Cl": (160, 128, 96)}
    for symbol, hidden in widths.items():
        sizes = (1008, *hidden, 1)
        assert r["nets"][symbol] == [list(p) for p in zip(sizes[:-1], sizes[1:], strict=True)]
    assert r["acts"] == ["CELU0.1"] and r["members"] == 8
    assert r["order"] == ["H", "C", "N", "O", "S", "F", "Cl"]
    assert r["shape"] == [5, DIM2X] and r["energy"] is None
    assert r["layer"] < 1e-6 and r["outside"] == 0.0
    assert r["state"] == 0.0
    assert all(np.isfinite(r["state_energy"]))  # a loaded checkpoint reports energies
    assert "placeholder" in r["placeholder"]
    assert r["label"] == "random-init" and r["path"] is None
    assert "Si outside ANI-2x's H, C, N, O, S, F, Cl" in r["mask_si"]
    assert "P outside" in r["mask_p"] and "periodic" in r["mask_pbc"]
    assert r["mask_none"] == [None] * 5


def test_ani2x_run_masks_with_reasons(family_env, tmp_path):
    """Through embed_dataset: F and S molecules embedded, crystals, other elements and records
    without atoms masked with their reason."""
    from ase.build import molecule

    from matteralign.records import Record

    extra = {"SO2": Record(id="SO2", atoms=molecule("SO2")),
             "SiH4": Record(id="SiH4", atoms=molecule("SiH4")),
             "no-atoms": Record(id="no-atoms", smiles="C", text="methane")}
    path = write_records(tmp_path / "structures.h5", make_records(extra))
    out = read_h5(embed_in_env(family_env(FAMILY), ANI2X, path, {"run": None})["run"])
    masked = {"Si", "NaCl", "SiH4", "no-atoms"}
    check_common(out, DIM2X, {i: i not in masked for i in out["ids"]})
    errors = dict(zip(out["ids"], out["errors"], strict=True))
    assert "periodic" in errors["NaCl"] and "Si outside ANI-2x" in errors["SiH4"]
    assert out["attrs"]["weights"] == "random-init" and np.all(np.isnan(out["energy"]))


def test_ani2x_invariances(family_env):
    """Molecules: batch = one-by-one, deterministic, atom order, rotation and translation."""
    assert_invariant(invariances(family_env(FAMILY), ANI2X, kinds=("molecule",)))
