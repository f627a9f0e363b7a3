"""M3GNet (matgl, the real architecture with M3GNet-MatPES-PBE's hyperparameters) in its own
environment: no weights can be had offline, so it runs at random init: the features are the
last block's node features (what the energy readout reads), a local matgl model directory
loads (weights_only) and its energy equals matgl's own ASE calculator, masking, labelling and
invariances."""

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

FAMILY, MODEL, DIM = "matgl", "m3gnet-matpes-pbe", 64


def readout_check(model: str, tmp: str) -> str:
    """Code for the matgl env: save the seeded random model of ``model`` into ``tmp``/ckpt,
    load it back as a local checkpoint (``a``), and collect on three structures the input
    of the energy readout (``seen``), our features and energies, and the energies of
    matgl's own ASE calculator (``own``)."""
    return f"""
records = [Record(id="Si", atoms=bulk("Si", "diamond", a=5.43)),
           Record(id="C6H6", atoms=molecule("C6H6")),
           Record(id="NaCl", atoms=bulk("NaCl", "rocksalt", a=5.64))]
ckpt = Path({tmp}) / "ckpt"
get_model({model!r}).load()._potential.save(str(ckpt))
a = get_model({model!r}, weights=str(ckpt)).load()
seen = []
h = a._potential.model.final_layer.register_forward_pre_hook(lambda m, i: seen.append(i[0]))
feats, energy = a.atom_features(records)
h.remove()
calc = PESCalculator(a._potential)
own = []
for r in records:
    atoms = r.atoms.copy(); atoms.calc = calc; own.append(atoms.get_potential_energy())
model = a._potential.model
"""


def _extra() -> dict:
    # Z=95 (Am) is not among M3GNet-MatPES's 89 elements
    return problem_records("Am2", "slab", "no-atoms", *GEOMETRY_PROBLEMS)


@pytest.fixture(scope="module")
def outputs(family_env, tmp_path_factory):
    python = family_env(FAMILY)
    tmp = tmp_path_factory.mktemp(FAMILY)
    path = write_records(tmp / "structures.h5", make_records(_extra()))
    checkpoint = tmp / "m3gnet-random"
    files = {stem: tmp / f"{stem}.h5" for stem in ("run1", "local")}
    # one process (importing matgl takes a while): save the seeded model, embed twice
    run_in_env(python, f"""
from matteralign.embed import embed_dataset
from matteralign.models import get_model
get_model({MODEL!r}).load()._potential.save({str(checkpoint)!r})
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
    assert attrs["weights_sha256"] == "" and attrs["version_matgl"] == "4.1.2"
    assert attrs["version_torch"].startswith("2.13.0")
    assert np.all(np.isnan(out["energy"]))  # random weights: no energy


def test_local_checkpoint(outputs):
    """weights=<a local matgl model directory> loads it (the seeded random model saved with
    Potential.save): same vectors, state.pt's hash recorded, and an energy now reported."""
    local, run1 = outputs["local"], outputs["run1"]
    assert local["attrs"]["weights"] == str(outputs["checkpoint"])
    assert local["attrs"]["weights_sha256"] == sha256(outputs["checkpoint"] / "state.pt")
    np.testing.assert_allclose(local["embeddings"], run1["embeddings"], rtol=0, atol=1e-6,
                               equal_nan=True)
    assert np.all(np.isfinite(local["energy"][local["valid"]]))


def test_layer_energy_and_checkpoint_safety(family_env, tmp_path):
    """The features are the input of M3GNet's per-atom energy readout (final_layer) after the
    last block; the energy equals matgl's own PESCalculator; the architecture has the
    published hyperparameters; a model directory of another class is refused before any
    import; a missing file is reported."""
    code = ("""
import json, numpy as np, shutil
from pathlib import Path
from ase.build import bulk, molecule
from matgl.ext.ase import PESCalculator
from matteralign.models import get_model
from matteralign.records import Record
""" + readout_check("m3gnet-matpes-pbe", "TMP") + """bad = Path(TMP) / "bad"
shutil.copytree(ckpt, bad)
meta = json.loads((bad / "model.json").read_text())
meta["kwargs"]["model"]["@class"] = "TensorNet"
(bad / "model.json").write_text(json.dumps(meta))
errors = []
for path in (bad, Path(TMP) / "missing"):
    try:
        get_model("m3gnet-matpes-pbe", weights=str(path)).load()
        errors.append("")
    except (ValueError, FileNotFoundError) as exc:
        errors.append(str(exc))
print(json.dumps({
    "readout_input": float(np.abs(seen[0].double().numpy() - np.concatenate(feats)).max()),
    "energy": float(np.abs(np.array(own) - energy).max()),
    "nblocks": model.n_blocks, "units": model.units, "cutoff": model.cutoff,
    "n_elements": len(model.element_types),
    "params": sum(p.numel() for p in model.parameters()), "errors": errors,
}))
""").replace("TMP", repr(str(tmp_path)))
    result = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    assert result["readout_input"] == 0.0
    assert result["energy"] < 1e-4
    assert (result["nblocks"], result["units"], result["cutoff"]) == (3, 128, 5.0)
    assert result["n_elements"] == 89
    assert 6.0e5 < result["params"] < 7.0e5
    assert "expected a matgl Potential whose model is M3GNet" in result["errors"][0]
    assert "not a matgl model directory" in result["errors"][1]


def test_invariances(family_env):
    """Batch = one-by-one, deterministic, atom order, rotation, translation and a 2x2x1
    supercell give the same vector (M3GNet's inputs are distances and angles)."""
    assert_invariant(invariances(family_env(FAMILY), MODEL))
