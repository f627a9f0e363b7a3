"""The non-neural baselines: in-process (rdkit and ase are in the driver venv) and through the
baseline environment."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule

from matteralign.models import RANDOM_INIT, get_model
from matteralign.records import Record
from tests.models.conftest import check_common, embed_in_env, make_records, read_h5, write_records

pytest.importorskip("rdkit")


def test_morgan_matches_rdkit():
    from rdkit import Chem
    from rdkit.Chem import AllChem

    adapter = get_model("morgan-fp").load()
    smiles = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O"]
    out = adapter.embed_batch([Record(id=s, smiles=s) for s in smiles]).embeddings
    assert out.shape == (3, 2048) and out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, 1.0}
    for row, s in zip(out, smiles, strict=True):
        ref = AllChem.GetMorganFingerprintAsBitVect(Chem.MolFromSmiles(s), 2, nBits=2048)
        assert set(np.flatnonzero(row)) == set(ref.GetOnBits())


def test_morgan_masks_unparsable_smiles():
    adapter = get_model("morgan-fp").load()
    assert "cannot parse" in adapter.check(Record(id="x", smiles="C1CC"))
    assert "no smiles" in adapter.check(Record(id="x", atoms=molecule("H2O")))


def test_composition_invariances():
    adapter = get_model("composition").load()
    water = molecule("H2O")
    moved = water.copy()
    moved.rotate(37, "z")
    moved.translate([3.0, -1.0, 2.0])
    moved = moved[[2, 0, 1]]  # permuted atom order
    si = bulk("Si", "diamond", a=5.43)
    rows = adapter.embed_batch([Record(id=str(i), atoms=a) for i, a in
                                enumerate([water, moved, si, si.repeat((2, 2, 2))])]).embeddings
    assert rows.shape == (4, 124)
    np.testing.assert_allclose(rows[0], rows[1], atol=1e-6)
    np.testing.assert_allclose(rows[2], rows[3], atol=1e-6)  # a supercell is the same crystal
    np.testing.assert_allclose(rows[0, :100].sum(), 1.0, atol=1e-6)
    assert rows[0, 0] == pytest.approx(2 / 3) and rows[0, 7] == pytest.approx(1 / 3)


def test_baselines_have_no_weights():
    for name in ("morgan-fp", "composition"):
        adapter = get_model(name)
        assert adapter.weights_available() and adapter.weights_path() is None
        with pytest.raises(ValueError, match="no weights"):
            get_model(name, weights=RANDOM_INIT).load()


@pytest.fixture(scope="module")
def outputs(family_env, tmp_path_factory):
    from ase import Atoms

    extra = {"bad-smiles": Record(id="bad-smiles", atoms=Atoms("Md2", positions=[[0, 0, 0],
                                  [0, 0, 3]]), smiles="C1CC", text="mendelevium")}
    path = write_records(tmp_path_factory.mktemp("baseline") / "structures.h5",
                         make_records(extra))
    python = family_env("baseline")
    files = {}
    for model in ("morgan-fp", "composition"):
        files[model] = embed_in_env(python, model, path, {"run1": None, "run2": None})
    return {model: {k: read_h5(p) for k, p in runs.items()} for model, runs in files.items()}


def test_baseline_env_outputs(outputs):
    morgan = outputs["morgan-fp"]["run1"]
    # crystals have no SMILES; the bad SMILES is masked
    check_common(morgan, 2048, {i: i not in ("Si", "NaCl", "bad-smiles") for i in morgan["ids"]})
    comp = outputs["composition"]["run1"]
    check_common(comp, 124, {i: i != "bad-smiles" for i in comp["ids"]})  # Z=101 > 100
    assert "Z=[101]" in comp["errors"][comp["ids"].index("bad-smiles")]
    for model in outputs:
        runs = outputs[model]
        np.testing.assert_array_equal(runs["run1"]["embeddings"], runs["run2"]["embeddings"])
        assert runs["run1"]["attrs"]["weights"] == "none (non-neural baseline)"
        assert runs["run1"]["attrs"]["weights_sha256"] == ""
        assert "version_torch" not in runs["run1"]["attrs"]
