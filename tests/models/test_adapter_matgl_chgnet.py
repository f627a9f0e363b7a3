"""CHGNet as re-implemented in matgl (the real class, random init: no weights offline), in the
matgl environment: the features are the last atom-graph block's output, which is what the
energy readout reads; the energy equals matgl's own ASE calculator; a local model directory
loads; masking, labelling and invariances."""

from __future__ import annotations

import json

import numpy as np

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
    write_records,
)
from tests.models.test_adapter_matgl import readout_check

FAMILY, MODEL, DIM = "matgl", "chgnet-matgl-matpes-pbe", 64


def test_embed_layer_energy_and_checkpoint(family_env, tmp_path):
    extra = problem_records("Am2", *GEOMETRY_PROBLEMS)
    path = write_records(tmp_path / "structures.h5", make_records(extra))
    out = tmp_path / "emb.h5"
    code = f"""
import json, numpy as np
from pathlib import Path
from ase.build import bulk, molecule
from matgl.ext.ase import PESCalculator
from matteralign.embed import embed_dataset
from matteralign.models import get_model
from matteralign.records import Record
embed_dataset({MODEL!r}, {str(path)!r}, {str(out)!r}, progress=False)
""" + readout_check(MODEL, repr(str(tmp_path))) + """try:
    get_model("m3gnet-matpes-pbe", weights=str(ckpt)).load()
    refused = ""
except ValueError as exc:
    refused = str(exc)
print(json.dumps({
    "readout_input": float(np.abs(seen[0].double().numpy() - np.concatenate(feats)).max()),
    "energy": float(np.abs(np.array(own) - energy).max()),
    "nblocks": model.n_blocks, "cutoff": float(model.cutoff),
    "n_elements": len(model.element_types), "refused": refused,
}))
"""
    result = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    emb = read_h5(out)
    check_common(emb, DIM, {i: i not in extra for i in emb["ids"]})
    check_geometry_masked(emb)
    errors = dict(zip(emb["ids"], emb["errors"], strict=True))
    assert "Z=[95]" in errors["Am2"] and "CHGNet" in errors["Am2"]
    assert emb["attrs"]["weights"] == "random-init" and np.all(np.isnan(emb["energy"]))
    assert result["readout_input"] == 0.0  # gc_4 atom_feat is the readout's input
    assert result["energy"] < 1e-4
    assert (result["nblocks"], result["cutoff"], result["n_elements"]) == (4, 6.0, 94)
    assert "whose model is M3GNet, found Potential(CHGNet)" in result["refused"]


def test_invariances(family_env):
    """Batch = one-by-one, deterministic, atom order, rotation, translation and a 2x2x1
    supercell give the same vector."""
    assert_invariant(invariances(family_env(FAMILY), MODEL))
