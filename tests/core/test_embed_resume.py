"""A killed embedding job resumes from its finished shards and gives the same file."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

import matteralign.embed as embed
from matteralign.datasets.store import write_structures
from matteralign.io import read_embeddings
from matteralign.records import Record

NAMES = ["H2O", "CH4", "NH3", "C2H6", "CO2", "C6H6", "CH3OH", "HCN"]


@pytest.fixture
def structures(tmp_path):
    rng = np.random.default_rng(0)
    records = []
    for i in range(40):
        atoms = molecule(NAMES[i % len(NAMES)])
        atoms.rattle(0.05, seed=i)
        records.append(Record(f"m{i}", atoms=atoms, text=f"molecule {i}"))
    records.append(Record("no-atoms", text="only text"))  # masked: no 3D input
    rng.shuffle(records)
    path = tmp_path / "structures.h5"
    write_structures(path, records, {"dataset": "toy"})
    return path


def test_killed_job_resumes_from_finished_shards(structures, tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "SHARD_SIZE", 8)
    clean = embed.embed_dataset("composition", structures, tmp_path / "clean.h5", progress=False)

    calls = {"n": 0}
    original = embed._embed_rows

    def dies_on_third_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the job is killed mid-run
        return original(*args, **kwargs)

    output = tmp_path / "resumed.h5"
    monkeypatch.setattr(embed, "_embed_rows", dies_on_third_batch)
    with pytest.raises(KeyboardInterrupt):
        embed.embed_dataset("composition", structures, output, batch_size=8, progress=False)
    assert not output.exists()
    assert len(list((tmp_path / "resumed.h5.parts").glob("shard-*.h5"))) == 2

    calls["n"] = -100  # no more failures; count what the rerun computes
    resumed = embed.embed_dataset("composition", structures, output, batch_size=8,
                                  progress=False)
    assert calls["n"] == -100 + 3  # 40 structures = 5 shards, 2 of them reused
    assert resumed.attrs["resumed_structures"] == 16
    assert not (tmp_path / "resumed.h5.parts").exists()
    back = read_embeddings(output)
    np.testing.assert_array_equal(back.valid, clean.valid)
    np.testing.assert_array_equal(back.embeddings, clean.embeddings)
    assert back.errors == clean.errors
    assert back.errors[back.ids.index("no-atoms")] == "no atoms input for this structure"


def test_parts_of_another_model_or_dataset_are_not_reused(structures, tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "SHARD_SIZE", 8)
    output = tmp_path / "out.h5"
    parts = tmp_path / "out.h5.parts"
    parts.mkdir()
    embed._Shard().save(parts / "shard-00000.h5", [0], fingerprint="someone else's")
    result = embed.embed_dataset("composition", structures, output, progress=False)
    assert result.attrs["resumed_structures"] == 0


def test_batches_respect_structure_and_atom_limits(monkeypatch):
    from matteralign.models import get_model

    monkeypatch.setattr(embed, "MAX_BATCH_ATOMS", 10)
    records = [Record(f"m{i}", atoms=molecule(name)) for i, name in
               enumerate(["CH4", "H2O", "C6H6", "NH3", "CO2", "H2O"])]  # 5, 3, 12, 4, 3, 3 atoms
    batches = embed._batches(get_model("composition"), records, list(range(6)), batch_size=2)
    assert batches == [[0, 1], [2], [3, 4], [5]]
    assert embed._batches(get_model("morgan-fp"), records, list(range(6)), 4) == [
        [0, 1, 2, 3], [4, 5]]
