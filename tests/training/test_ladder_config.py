"""The ladder's declaration: rung names, sets without study structures, nested and seeded,
and a bad ``ladder:`` entry stopped before any job with its key named."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from matteralign.config import ConfigError, check_config, validate_schema, with_ladder
from matteralign.training.ladder import (
    QM9_HCNO_MOLECULES,
    Rung,
    ladder_models,
    parse_rung_name,
    rung_name,
    rungs,
)

BASE = {"results": "results", "datasets": {"qm9": {"n": 100}},
        "models": {"composition": {}, "morgan-fp": {}},
        "ladder": {"enabled": True}}


def config(**ladder) -> dict:
    raw = copy.deepcopy(BASE)
    raw["ladder"].update(ladder)
    return validate_schema(raw)


def test_rungs_names_and_groups():
    ladder = config(sizes=[250, 500, 1000], replicate_sizes=[500], replicate_seeds=[1, 2])
    names = [r.name for r in rungs(ladder["ladder"])]
    assert names == ["ani-qm9-n250-s0", "ani-qm9-n500-s0", "ani-qm9-n1000-s0",
                     "ani-qm9-n500-s1", "ani-qm9-n500-s2"]
    assert parse_rung_name("ani-qm9-n500-s2") == Rung(500, 2)
    assert parse_rung_name(rung_name(8000, 0)) == Rung(8000, 0)
    for bad in ("ani-qm9-n0500-s1", "ani-qm9-n500", "ani-1x", "ani-qm9-n500-s-1"):
        assert parse_rung_name(bad) is None
    from matteralign.models.domains import seed_groups

    assert seed_groups(names) == {
        "ani-qm9-n500": ("ani-qm9-n500-s0", "ani-qm9-n500-s1", "ani-qm9-n500-s2")}


def test_held_out_twins_are_named_grouped_and_paired():
    from matteralign.models.domains import seed_groups, training_domain
    from matteralign.training.ladder import held_out_pairs

    ladder = config(sizes=[250, 500], replicate_sizes=[500], replicate_seeds=[1],
                    held_out={"element": "N", "sizes": [500]})["ladder"]
    names = [r.name for r in rungs(ladder)]
    assert names[-2:] == ["ani-qm9-noN-n500-s0", "ani-qm9-noN-n500-s1"]
    assert parse_rung_name("ani-qm9-noN-n500-s1") == Rung(500, 1, "N")
    assert parse_rung_name("ani-qm9-noF-n500-s1") is None
    assert [(r.name, t.name) for r, t in held_out_pairs(ladder)] == [
        ("ani-qm9-noN-n500-s0", "ani-qm9-n500-s0"), ("ani-qm9-noN-n500-s1", "ani-qm9-n500-s1")]
    groups = seed_groups(names)
    assert groups["ani-qm9-noN-n500"] == ("ani-qm9-noN-n500-s0", "ani-qm9-noN-n500-s1")
    assert groups["ani-qm9-n500"] == ("ani-qm9-n500-s0", "ani-qm9-n500-s1")
    assert "without N" in training_domain("ani-qm9-noN-n500-s0").data
    assert [r.name for r in rungs(config(held_out={"element": None})["ladder"])] == \
        [r.name for r in rungs(config()["ladder"])]


def test_rungs_join_the_study_as_models():
    from matteralign.config import study_grid
    from matteralign.models import registered_models
    from matteralign.models.domains import seed_groups as groups_of
    from matteralign.models.domains import training_domain

    study = with_ladder(config(sizes=[250, 500], replicate_sizes=[500]))
    assert ladder_models(study).keys() <= study["models"].keys()
    assert study["models"]["ani-qm9-n500-s1"]["weights"] == "results/ladder/ani-qm9-n500-s1"
    models = registered_models()
    assert models["ani-qm9-n250-s0"].family == "ani"
    assert "ani-qm9-n250-s0" in study_grid(study)["qm9"]
    assert training_domain("ani-qm9-n250-s0").kinds == {"molecules"}
    assert groups_of(["ani-qm9-n500-s0", "ani-qm9-n500-s1", "ani-qm9-n250-s0", "ani-1x-m0"]) \
        == {"ani-qm9-n500": ("ani-qm9-n500-s0", "ani-qm9-n500-s1")}
    assert list(with_ladder(validate_schema(copy.deepcopy(BASE) | {"ladder": {}}))["models"]) \
        == list(BASE["models"])


@pytest.mark.parametrize(("ladder", "key", "says"), [
    ({"sizes": [250, 130_000], "replicate_sizes": [250]}, "ladder.sizes", "maximum"),
    ({"sizes": [120_000, 250], "replicate_sizes": [250], "test": 10_000}, "ladder.sizes",
     "outside the study"),
    ({"replicate_sizes": [300]}, "ladder.replicate_sizes", "not in ladder.sizes"),
    ({"replicate_seeds": [0]}, "ladder.replicate_seeds", "differ only by seed"),
    ({"training": {"steps": 0}}, "ladder.training.steps", "minimum"),
    ({"training": {"epochs": 5}}, "ladder.training", "epochs"),
    ({"hidden": {"H": [64], "C": [64], "N": [64]}}, "ladder.hidden", "O"),
    ({"hidden": {"H": [64], "C": [64], "N": [64], "O": [32]}}, "ladder.hidden", "same width"),
    ({"hidden": {"H": [64], "C": [64], "N": [64], "O": [64], "F": [64]}}, "ladder.hidden",
     "F"),
    ({"sizes": [250.0]}, "ladder.sizes", "integer"),
    ({"held_out": {"element": "F"}}, "ladder.held_out.element", "N"),
    ({"held_out": {"element": "N", "sizes": [300]}}, "ladder.held_out.sizes",
     "not in ladder.sizes"),
    ({"held_out": {"element": "N", "sizes": []}}, "ladder.held_out.sizes", "[]"),
    ({"sizes": [250, 20_000], "replicate_sizes": [250],
      "held_out": {"element": "O", "sizes": [20_000]}}, "ladder.held_out.sizes", "without O"),
    ({"held_out": {"element": "N", "seeds": [1]}}, "ladder.held_out", "seeds"),
])
def test_bad_ladder_entries_name_their_key(ladder, key, says):
    raw = copy.deepcopy(BASE)
    raw["ladder"].update(ladder)
    with pytest.raises(ConfigError) as err:
        check_config(validate_schema(raw), check_inputs=False)
    assert key in str(err.value) and says in str(err.value), str(err.value)


def test_ladder_needs_qm9_and_its_own_names():
    raw = copy.deepcopy(BASE)
    raw["datasets"] = {"coremof": {"n": 50}}
    with pytest.raises(ConfigError, match="ladder.enabled.*qm9"):
        check_config(validate_schema(raw), check_inputs=False)
    raw = copy.deepcopy(BASE)
    raw["models"]["ani-qm9-n250-s0"] = {}
    with pytest.raises(ConfigError, match="ladder's own model names"):
        check_config(validate_schema(raw), check_inputs=False)


@pytest.fixture(scope="module")
def qm9_table():
    from matteralign.datasets.qm9 import _table, data_dir

    return _table(str(data_dir()))


def test_pool_count_and_sets_exclude_the_study(qm9_table, tmp_path):
    from matteralign.datasets.qm9 import QM9
    from matteralign.training.qm9_sets import pool_rows, read_sets, split, write_sets

    assert len(pool_rows(qm9_table, [])) == QM9_HCNO_MOLECULES
    study = [r.id for r in QM9().load(200, seed=0)]
    ladder = config(sizes=[50, 100], replicate_sizes=[50], test=50, validation=50)["ladder"]
    rows = split(qm9_table, study, ladder)
    assert {k: len(v) for k, v in rows.items()} == {"test": 50, "validation": 50, "train": 100}
    assert len(np.unique(np.concatenate(list(rows.values())))) == 200  # disjoint
    again = split(qm9_table, study, ladder)
    assert all(np.array_equal(rows[k], again[k]) for k in rows)  # seeded
    other = split(qm9_table, study, {**ladder, "split_seed": 1})
    assert not np.array_equal(rows["train"], other["train"])
    ids = write_sets(ladder, study, tmp_path / "sets.h5")
    every = {i for name in ids for i in ids[name]}
    assert not every & set(study) and len(every) == 200
    sets = read_sets(tmp_path / "sets.h5", n_train=50)
    assert [m["id"] for m in sets["train"]] == ids["train"][:50]  # nested: a prefix
    assert not any("F" in m["species"] for name in sets for m in sets[name])
    first = sets["test"][0]
    index = int(first["id"].split("gdb_")[1])
    row = qm9_table.index[qm9_table["Index"] == index][0]
    assert first["energies"] == qm9_table.at[row, "InternalEnergy_0K_au"]
    assert len(first["species"]) == qm9_table.at[row, "N_atoms"]


def test_held_out_sets_lack_the_element_and_the_study(qm9_table, tmp_path):
    from matteralign.datasets.qm9 import QM9
    from matteralign.training.ladder import QM9_HCNO_WITHOUT
    from matteralign.training.qm9_sets import (
        has_element,
        pool_rows,
        read_sets,
        read_study_elements,
        split,
        write_sets,
    )

    pool = pool_rows(qm9_table, [])
    for element, count in QM9_HCNO_WITHOUT.items():
        assert int((~has_element(qm9_table, pool, element)).sum()) == count
    study = [r.id for r in QM9().load(200, seed=0)]
    ladder = config(sizes=[50, 100], replicate_sizes=[50], test=60, validation=60,
                    held_out={"element": "N", "sizes": [100]})["ladder"]
    rows = split(qm9_table, study, ladder)
    assert len(rows["train_noN"]) == 100
    assert not has_element(qm9_table, rows["train_noN"], "N").any()
    held_in_out = np.concatenate([rows["test"], rows["validation"]])
    assert not set(rows["train_noN"]) & set(held_in_out)  # never a test/validation molecule
    write_sets(ladder, study, tmp_path / "sets.h5")
    sets = read_sets(tmp_path / "sets.h5", n_train=100, excluded="N")
    assert len(sets["train"]) == 100 and len(sets["test"]) == 60
    assert not any("N" in m["species"] for m in sets["train"] + sets["validation"])
    assert any("N" in m["species"] for m in sets["test"])  # the held-out test molecules
    every = {m["id"] for name in sets for m in sets[name]}
    assert not every & set(study)
    elements = read_study_elements(tmp_path / "sets.h5")
    assert sorted(elements) == sorted(study)
    index = {int(i): r for r, i in enumerate(qm9_table["Index"])}
    for mol_id in study[:20]:
        row = index[int(mol_id.split("gdb_")[1])]
        assert ("N" in elements[mol_id]) == ("'N'" in qm9_table["Elements"].iloc[row])
    with pytest.raises(ValueError, match="held_out.element O"):
        read_sets(tmp_path / "sets.h5", n_train=50, excluded="O")
