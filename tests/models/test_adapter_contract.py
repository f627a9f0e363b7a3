"""The contract every registered adapter keeps, run in its family environment with its default
weights: output shapes and dtype, masked rows NaN with a reason and valid rows finite without
one, the provenance attributes, the same bits on a second call, and a batch equal to its
structures embedded one by one (where the model declares ``batch_invariant``). Parametrized
over ``registered_models()``: a new adapter (or checkpoint row) is covered without being
listed; a model is skipped only when its family environment is not built or it declares
``requires_checkpoint`` (nothing to run by default).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from matteralign.models import get_model, registered_models
from tests.models.conftest import make_records, problem_records, read_h5, run_in_env, write_records

MODELS = registered_models()
#: sequences for the protein-sequence models (none of the atoms/SMILES records has one)
SEQUENCES = {"ubiquitin-n": "MQIFVKTLTGKTITLEVEPSDTIENVKAKIQDKEGIPPDQQRLIFAGKQLEDGRTLSDYNIQ",
             "short-peptide": "GSHMSLFDFFKNKGSAA"}
#: attributes every embedding file records about where its vectors come from
PROVENANCE = ("model", "family", "modality", "architecture", "weights", "weights_sha256",
              "options", "random_init", "layer", "pooling", "license", "dataset_sha256",
              "code_sha256", "packages_sha256", "n_valid")

CONTRACT_CODE = """
import json, sys
import numpy as np
from matteralign.datasets.store import read_structures
from matteralign.embed import embed_dataset, input_problems
from matteralign.io import read_atom_embeddings
from matteralign.models import get_model
structures, folder = sys.argv[1], sys.argv[2]
MOST = 5
records = read_structures(structures)
result = {}
for name in json.loads(sys.argv[3]):
    out = f"{folder}/{name}.h5"
    per_atom = get_model(name).per_atom
    atoms_out = f"{folder}/{name}.atoms.h5" if per_atom else None
    pooled = embed_dataset(name, structures, out, progress=False, atoms_output=atoms_out)
    adapter = get_model(name).load()
    valid = [r for r, reason in zip(records, input_problems(adapter, records)) if not reason]
    entry = {"path": out, "label": adapter.weights_label(), "random": adapter.is_random_init,
             "n_checked": len(valid)}
    # repeat and one-by-one on the smallest valid structures (time: the proteins are large)
    valid = sorted(valid, key=lambda r: len(r.atoms) if r.atoms is not None else 0)
    larger = [r for r in valid if r.atoms is not None and len(r.atoms) >= 3]
    valid = valid[:MOST]
    batched = adapter.embed_batch(valid).embeddings.astype(np.float64) if valid else None
    if valid:
        single = np.concatenate([adapter.embed_batch([r]).embeddings for r in valid])
        again = adapter.embed_batch(valid).embeddings.astype(np.float64)
        entry.update(scale=float(np.abs(batched).max()),
                     batch_vs_single=float(np.abs(batched - single).max()),
                     repeat=float(np.abs(batched - again).max()))
    if per_atom:
        # the per-atom rows pool to the pooled file's rows bit for bit, and permuting a
        # structure's atoms permutes its rows
        atoms = read_atom_embeddings(atoms_out)
        rows = np.unique(atoms.structure_index)
        entry["atom_structures"] = len(rows)
        entry["atoms_pool_exactly"] = all(
            np.array_equal(atoms.embeddings[atoms.structure_index == i].mean(axis=0)
                           .astype(np.float32), pooled.embeddings[i]) for i in rows)
        if larger:
            record = larger[0]
            import copy
            order = np.random.default_rng(0).permutation(len(record.atoms))
            moved = copy.deepcopy(record)
            moved.atoms = record.atoms[order]
            plain = adapter.embed_batch([record]).atom_embeddings[0]
            shuffled = adapter.embed_batch([moved]).atom_embeddings[0]
            entry["atom_permutation"] = float(np.abs(shuffled - plain[order]).max()
                                              / max(np.abs(plain).max(), 1e-12))
    result[name] = entry
print(json.dumps(result))
"""


#: short protein chains of the packaged PDB set (structure models read their backbone)
CHAINS = ("5A7U", "2JUY")
#: the families whose models embed only protein chains; the others skip the chains (400-450
#: atoms each: the largest cost of a full-size random-init potential's contract), and a
#: backbone family missing here fails the contract with "embedded nothing"
CHAIN_FAMILIES = {"protein"}


def _records(family: str) -> list:
    from matteralign.datasets import get_dataset
    from matteralign.records import Record

    extra = problem_records("Am2", "no-atoms")
    extra.update({name: Record(id=name, sequence=seq, text=f"the protein {name}")
                  for name, seq in SEQUENCES.items()})
    if family in CHAIN_FAMILIES:
        packaged = get_dataset("pdb-packaged")
        extra.update({pdb_id: packaged.record(pdb_id) for pdb_id in CHAINS})
    return make_records(extra)


@pytest.fixture(scope="session")
def contract(family_env, tmp_path_factory):
    """Per family (one process each, on first use): what the contract checks, by model."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        family = MODELS[name].family
        if family not in cache:
            python = family_env(family)
            folder = tmp_path_factory.mktemp(f"contract-{family}")
            structures = write_records(folder / "structures.h5", _records(family))
            names = sorted(n for n, cls in MODELS.items()
                           if cls.family == family and not cls.requires_checkpoint)
            code = (f"import sys; sys.argv = ['contract', {str(structures)!r}, "
                    f"{str(folder)!r}, {json.dumps(json.dumps(names))}]\n" + CONTRACT_CODE)
            cache[family] = json.loads(run_in_env(python, code, timeout=1800)
                                       .strip().splitlines()[-1])
        return cache[family][name]

    return get


@pytest.mark.parametrize("name", sorted(MODELS))
def test_adapter_contract(name, contract):
    cls = MODELS[name]
    if cls.requires_checkpoint:
        pytest.skip(f"{name} declares requires_checkpoint: no default weights to run")
    result = contract(name)
    out = read_h5(Path(result["path"]))
    attrs = out["attrs"]
    # provenance: what the file says about its model and weights
    for key in PROVENANCE:
        assert key in attrs, f"{name}: no {key!r} attribute"
    assert (attrs["model"], attrs["family"], attrs["modality"]) == (name, cls.family,
                                                                     cls.modality)
    assert (attrs["layer"], attrs["pooling"], attrs["license"]) == (cls.layer, cls.pooling,
                                                                    cls.license)
    assert attrs["weights"] == result["label"] == get_model(name).weights_label()
    assert bool(attrs["random_init"]) == result["random"]
    assert (attrs["weights"] == "random-init") == result["random"]
    # shapes, masks and reasons
    ids, embeddings = out["ids"], out["embeddings"]
    assert embeddings.dtype == np.float32 and embeddings.shape[0] == len(ids)
    assert int(attrs["n_valid"]) == int(out["valid"].sum()) > 0, f"{name} embedded nothing"
    assert embeddings.shape[1] == int(attrs["dim"]) > 0
    for i, record_id in enumerate(ids):
        if out["valid"][i]:
            assert out["errors"][i] == "" and np.isfinite(embeddings[i]).all(), record_id
        else:
            assert out["errors"][i], f"{name}: {record_id} masked without a reason"
            assert np.isnan(embeddings[i]).all(), record_id
    assert "no-atoms" not in ids or cls.modality != "atoms" or \
        not out["valid"][ids.index("no-atoms")]
    # energies: present for models that predict them, never for a random-init network
    if cls.produces_energy:
        energy = out["energy"]
        assert energy.shape == (len(ids),)
        if result["random"]:
            assert np.isnan(energy).all(), f"{name}: a random-init network reported energies"
    else:
        assert "energy" not in out
    # the same structures give the same vectors: again, and one by one
    assert result["n_checked"] == int(attrs["n_valid"])
    tolerance = 1e-6 * max(1.0, result["scale"])
    assert result["repeat"] <= tolerance, result
    if cls.batch_invariant:  # else the model's own neighbour cap depends on the batch
        assert result["batch_vs_single"] <= 1e-4 * max(1.0, result["scale"]), result
    # per-atom features (interatomic potentials): the rows the pooled vector averages
    if cls.per_atom:
        assert result["atom_structures"] == int(attrs["n_valid"]), result
        assert result["atoms_pool_exactly"], f"{name}: per-atom rows do not pool to the file"
        if cls.batch_invariant:  # a neighbour cap may cut ties in another atom order
            assert result.get("atom_permutation", 0.0) <= 1e-4, result
