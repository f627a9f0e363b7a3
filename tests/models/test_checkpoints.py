"""Checkpoints as data: a table row is a registered adapter, and a new checkpoint of an
existing architecture is one row."""

from __future__ import annotations

import json

import pytest

from matteralign.models import chgnet, get_model, registered_models
from matteralign.models.base import REGISTRY
from matteralign.models.checkpoints import (
    CHECKPOINTS,
    Checkpoint,
    adapter_class,
    register_checkpoint,
)
from tests.models.conftest import make_records, run_in_env, sha256, site_packages

#: a second registry entry for the CHGNet 0.3.0 file, as a user would add a checkpoint
ROW = Checkpoint("chgnet-0.3.0-again", chgnet.CHGNet, "CHGNet 0.3.0 (MPtrj), again",
                 "CHGNet, the 0.3.0 file under a second name",
                 shipped="chgnet/pretrained/0.3.0/chgnet_0.3.0_e29f68s314m37.pth.tar",
                 params={"version": "0.3.0"})


def test_every_row_is_registered_with_its_attributes():
    models = registered_models()
    assert len({row.name for row in CHECKPOINTS}) == len(CHECKPOINTS)
    for row in CHECKPOINTS:
        cls = models[row.name]
        assert issubclass(cls, row.adapter)
        assert (cls.weights_name, cls.weights_in_package, cls.weights_sha256) == (
            row.weights, row.shipped, row.sha256)
        for key, value in row.params.items():
            assert getattr(cls, key) == value, (row.name, key)


def test_a_row_for_an_unknown_attribute_is_refused():
    with pytest.raises(TypeError, match="no attribute"):
        adapter_class(Checkpoint("chgnet-typo", chgnet.CHGNet, "x", params={"verison": "0.3.0"}))


def test_a_new_row_is_a_model(monkeypatch):
    monkeypatch.setattr(REGISTRY, "_classes", dict(REGISTRY._classes))
    register_checkpoint(ROW)
    adapter = get_model(ROW.name, max_atoms=50)
    assert adapter.family == "chgnet" and adapter.max_atoms == 50
    assert adapter.weights_label() == ROW.weights
    assert get_model(ROW.name, weights="random-init").is_random_init


@pytest.mark.parametrize("row", [r for r in CHECKPOINTS if r.sha256], ids=lambda r: r.name)
def test_shipped_weights_have_the_recorded_sha256(row):
    path = site_packages(row.adapter.family) / str(row.shipped)
    if not path.exists():
        pytest.skip(f".envs/{row.adapter.family} not built")
    assert sha256(path) == row.sha256


def test_a_new_row_embeds_like_the_checkpoint_it_names(family_env, tmp_path):
    """The row above, registered in the family env, gives the bits of chgnet-0.3.0."""
    python = family_env("chgnet")
    records = make_records()
    from matteralign.datasets.store import write_structures

    structures = tmp_path / "structures.h5"
    write_structures(structures, records, {"dataset": "row-test", "source": "tests"})
    code = f"""
import json, numpy as np
from matteralign.datasets.store import read_structures
from matteralign.models import chgnet, get_model
from matteralign.models.checkpoints import Checkpoint, register_checkpoint
register_checkpoint(Checkpoint({ROW.name!r}, chgnet.CHGNet, {ROW.weights!r},
                               shipped={ROW.shipped!r}, params={ROW.params!r}))
records = [r for r in read_structures({str(structures)!r}) if r.id in ("Si", "NaCl", "C6H6")]
new = get_model({ROW.name!r}).load().embed_batch(records)
old = get_model("chgnet-0.3.0").load().embed_batch(records)
print(json.dumps({{"same": bool(np.array_equal(new.embeddings, old.embeddings)),
                  "energy": bool(np.array_equal(new.energy, old.energy)),
                  "dim": int(new.embeddings.shape[1])}}))
"""
    result = json.loads(run_in_env(python, code).strip().splitlines()[-1])
    assert result == {"same": True, "energy": True, "dim": 64}
