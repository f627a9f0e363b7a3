"""SOAP baseline (dscribe) in the baseline environment: the averaged power spectrum equals
dscribe's own per-atom spectra averaged by hand, species masking, options, invariances
(including a periodic supercell)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from matteralign.models import RANDOM_INIT, get_model
from tests.models.conftest import (
    assert_invariant,
    check_common,
    embed_in_env,
    invariances,
    make_records,
    read_h5,
    run_in_env,
    write_records,
)

FAMILY, MODEL = "baseline", "soap"
DIM = 89 * 4 * 4 * 5  # default: 89 species x n_max^2 x (l_max + 1), mu1nu1 compression


def _extra() -> dict:
    from ase import Atoms

    from matteralign.records import Record

    return {
        # Z=84 (Po) is outside the default species (MPtrj's 89 elements)
        "Po2": Record(id="Po2", atoms=Atoms("Po2", positions=[[0, 0, 0], [0, 0, 2.8]])),
        # a slab (periodic in x and y) is taken, with dscribe's periodic images in x and y
        "slab": Record(id="slab", atoms=Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]],
                                              cell=[5, 5, 5], pbc=[1, 1, 0])),
        "no-atoms": Record(id="no-atoms", smiles="C", text="methane"),
    }


@pytest.fixture(scope="module")
def outputs(family_env, tmp_path_factory):
    python = family_env(FAMILY)
    path = write_records(tmp_path_factory.mktemp(FAMILY) / "structures.h5",
                         make_records(_extra()))
    files = embed_in_env(python, MODEL, path, {"run1": None, "run2": None})
    return {stem: read_h5(p) for stem, p in files.items()}


def test_shapes_mask_and_errors(outputs):
    out = outputs["run1"]
    check_common(out, DIM, {i: i not in ("Po2", "no-atoms") for i in out["ids"]})
    errors = dict(zip(out["ids"], out["errors"], strict=True))
    assert "Z=[84]" in errors["Po2"] and "no atoms" in errors["no-atoms"]
    attrs = out["attrs"]
    assert attrs["weights_sha256"] == "" and attrs["version_dscribe"] == "2.1.2"
    np.testing.assert_array_equal(outputs["run1"]["embeddings"], outputs["run2"]["embeddings"])
    # a power spectrum of real densities: the l=0 self-correlations are positive
    assert np.all(out["embeddings"][out["valid"]].max(axis=1) > 0)


def test_no_weights():
    with pytest.raises(ValueError, match="no weights"):
        get_model(MODEL, weights=RANDOM_INIT)._load()
    with pytest.raises(ValueError, match="compression"):
        get_model(MODEL, compression="zip")
    assert get_model(MODEL).weights_path() is None


def test_average_equals_dscribe_per_atom_mean(family_env):
    """The vector is the mean of dscribe's per-atom spectra (crystal: periodic; molecule: not);
    the options reach dscribe (uncompressed SOAP with 3 species has the textbook width); an
    element outside the species is masked; molecules and crystals use the right periodicity."""
    code = """
import json, numpy as np
from ase.build import bulk, molecule
from dscribe.descriptors import SOAP
from matteralign.models import get_model
from matteralign.records import Record
a = get_model("soap").load()
nacl, c6h6 = bulk("NaCl", "rocksalt", a=5.64), molecule("C6H6")
def per_atom_mean(atoms, periodic):
    d = SOAP(species=a.species, r_cut=5.0, n_max=4, l_max=4, sigma=0.5, periodic=periodic,
             compression={"mode": "mu1nu1"})
    return d.create(atoms).mean(axis=0)
mine = a.embed_batch([Record(id="NaCl", atoms=nacl), Record(id="C6H6", atoms=c6h6)])
small = get_model("soap", species=["H", "C", "O"], compression="off", n_max=3, l_max=2).load()
vec = small.embed_batch([Record(id="e", atoms=molecule("CH3CH2OH"))]).embeddings
nonperiodic = per_atom_mean(nacl, False)
print(json.dumps({
    "crystal": float(np.abs(mine.embeddings[0] - per_atom_mean(nacl, True)).max()),
    "crystal_vs_cluster": float(np.abs(mine.embeddings[0] - nonperiodic).max()),
    "molecule": float(np.abs(mine.embeddings[1] - per_atom_mean(c6h6, False)).max()),
    "scale": float(np.abs(mine.embeddings).max()),
    "dim": a.dim, "small_dim": int(vec.shape[1]),
    "masked": small.check(Record(id="w", atoms=molecule("NH3"))),
}))
"""
    result = json.loads(run_in_env(family_env(FAMILY), code).strip().splitlines()[-1])
    assert result["crystal"] < 1e-6 * max(1.0, result["scale"])
    assert result["molecule"] < 1e-6 * max(1.0, result["scale"])
    assert result["crystal_vs_cluster"] > 1e-3  # periodic images do count for crystals
    assert result["dim"] == DIM
    assert result["small_dim"] == (3 * 3) * (3 * 3 + 1) // 2 * 3  # (S n)(S n + 1)/2 (l+1)
    assert "Z=[7]" in result["masked"]


def test_invariances(family_env):
    """Batch = one-by-one, deterministic, atom order, rotation, translation, and a 2x2x1
    supercell of a crystal give the same vector."""
    assert_invariant(invariances(family_env(FAMILY), MODEL))
