"""One ladder rung trained by torchani's NeuroChem trainer in the ani environment: its
learning curve and record, reproducible from its seed, reloaded by the rung's model adapter
to the energies it was scored with, and embedded like any model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from matteralign.config import validate_schema
from tests.models.conftest import run_in_env

TRAINING = {"steps": 40, "batch_size": 16, "patience": 100, "learning_rate": 0.002,
            "min_learning_rate": 1e-5, "weight_decay": 1e-4}


@pytest.fixture(scope="module")
def rungs(family_env, tmp_path_factory):
    from matteralign.datasets.qm9 import QM9
    from matteralign.training.ladder import ANI1X_HIDDEN
    from matteralign.training.qm9_sets import write_sets

    python = family_env("ani")
    work = tmp_path_factory.mktemp("ladder")
    study = [r.id for r in QM9().load(50, seed=0)]
    ladder = validate_schema({"datasets": {"qm9": {"n": 50}}, "models": {"composition": {}},
                              "ladder": {"enabled": True, "sizes": [60], "test": 50,
                                         "validation": 50, "replicate_sizes": [60],
                                         "held_out": {"element": "N", "sizes": [60]}}}
                             )["ladder"]
    write_sets(ladder, study, work / "sets.h5")
    spec = json.dumps({"training": TRAINING, "hidden": ANI1X_HIDDEN})
    folders = {"a": work / "ani-qm9-n60-s0", "b": work / "again" / "ani-qm9-n60-s0",
               "seed1": work / "ani-qm9-n60-s1", "noN": work / "ani-qm9-noN-n60-s0"}
    code = (
        "import json, sys\n"
        "from matteralign.cli import main\n"
        f"spec = {spec!r}\n"
        f"for name, out in {[(p.name, str(p)) for p in folders.values()]!r}:\n"
        f"    assert main(['train-rung', name, '--sets', {str(work / 'sets.h5')!r},"
        " '--ladder', spec, '--out', out]) == 0\n"
    )
    run_in_env(python, code, timeout=600)
    return python, work, folders


def record(folder) -> dict:
    return json.loads((folder / "training.json").read_text())


def test_record_curve_and_checkpoint(rungs):
    _, _, folders = rungs
    rec = record(folders["a"])
    assert rec["trainer"] == "torchani.neurochem.Trainer" and rec["size"] == 60
    assert rec["n"] == {"train": 60, "validation": 50, "test": 50}
    # 40 steps of 16 from 60 molecules: 4 batches an epoch, 10 epochs (the trainer runs 11)
    assert rec["epochs"] == 10 and rec["aev_cache_hits"] > 0
    curve = np.loadtxt(folders["a"] / "learning_curve.tsv", skiprows=1)
    assert curve.shape == (11, 3) and curve[:, 1].min() < curve[0, 1]
    assert rec["best_epoch"] == int(np.argmin(curve[:, 1]))
    assert 0 < rec["test_mae_ev"] < 10 and rec["sets_sha256"] and rec["checkpoint_sha256"]
    assert rec["git_commit"] and "torchani==2.2.4" in rec["packages"]
    for name in ("model.pt", "inputtrain.yaml", "sae_linfit.dat",
                 "rHCNO-5.2R_16-3.5A_a4-8.params"):
        assert (folders["a"] / name).is_file()
    assert not list(folders["a"].parent.glob(".*tmp*"))  # written under a temporary name


def test_a_rung_without_nitrogen_never_sees_it_and_scores_every_test_molecule(rungs):
    from matteralign.training.ani_train import read_test_errors
    from matteralign.training.qm9_sets import read_sets

    _, work, folders = rungs
    rec = record(folders["noN"])
    assert rec["excluded_element"] == "N" and record(folders["a"])["excluded_element"] == ""
    sets = read_sets(work / "sets.h5", n_train=60, excluded="N")
    assert rec["train_ids_first_last"] == [sets["train"][0]["id"], sets["train"][-1]["id"]]
    assert rec["n"]["validation"] == len(sets["validation"]) < 50  # its N-free part
    assert rec["n"]["test"] == 50  # held-in and held-out molecules both
    from matteralign.datasets.qm9 import ATOM_U0_HARTREE

    # no molecule to fit N's self energy on: QM9's free-atom value, the others fitted
    assert rec["self_energies_hartree"]["N"] == ATOM_U0_HARTREE["N"]
    assert rec["self_energies_hartree"]["C"] != ATOM_U0_HARTREE["C"]
    for name in ("noN", "a"):
        errors = read_test_errors(folders[name])
        assert list(errors["ids"]) == [m["id"] for m in sets["test"]]
        assert errors["abs_error_ev"].mean() == pytest.approx(
            record(folders[name])["test_mae_ev"], rel=1e-6)
        assert {"N" in e for e in errors["elements"]} == {True, False}


def test_training_is_reproducible_from_its_seed(rungs):
    _, _, folders = rungs
    a, b, other = record(folders["a"]), record(folders["b"]), record(folders["seed1"])
    # same seed, same thread count on CPU: identical to the last bit (tolerance 0)
    assert a["checkpoint_sha256"] == b["checkpoint_sha256"]
    assert a["test_mae_ev"] == b["test_mae_ev"]
    assert other["checkpoint_sha256"] != a["checkpoint_sha256"]
    assert other["self_energies_hartree"] == a["self_energies_hartree"]  # same data


def test_rung_reloads_to_its_scored_energies_and_embeds(rungs):
    python, work, folders = rungs
    code = (
        "import json, numpy as np\n"
        "from ase import Atoms\n"
        "from matteralign.models import get_model\n"
        "from matteralign.records import Record\n"
        "from matteralign.training.qm9_sets import read_sets\n"
        f"test = read_sets({str(work / 'sets.h5')!r})['test']\n"
        "records = [Record(id=m['id'], atoms=Atoms(m['species'], positions=m['coordinates']))"
        " for m in test]\n"
        f"model = get_model('ani-qm9-n60-s0', weights={str(folders['a'])!r}).load()\n"
        "out = model.embed_batch(records)\n"
        "again = get_model('ani-qm9-n60-s0', weights="
        f"{str(folders['a'])!r}).load().embed_batch(records)\n"
        "truth = np.array([m['energies'] for m in test]) * 27.211386246\n"
        "print(json.dumps({'mae': float(np.abs(out.energy - truth).mean()),"
        " 'dim': int(out.embeddings.shape[1]),"
        " 'same': bool(np.array_equal(out.embeddings, again.embeddings)),"
        " 'weights': model.weights_label(), 'family': model.family}))\n"
    )
    found = json.loads(run_in_env(python, code).strip().splitlines()[-1])
    # the adapter's energies are the ones the trainer's checkpoint was scored with (the two
    # Hartree conversions differ by 8e-9 relative, ~1e-4 eV on QM9's total energies)
    assert found["mae"] == pytest.approx(record(folders["a"])["test_mae_ev"], abs=1e-3)
    assert found["dim"] == 96 and found["same"] and found["family"] == "ani"
