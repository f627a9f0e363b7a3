"""Fixtures of the model-adapter tests: family environments, a tiny structures file, and
running ``embed_dataset`` inside a family environment (the driver venv has no model packages).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from matteralign.envs import build_env, is_current, read_env_file
from tests.conftest import ROOT, family_python

MOLECULES = {"H2O": "O", "CH4": "C", "NH3": "N", "C6H6": "c1ccccc1", "CH3CH2OH": "CCO"}


def make_records(extra: dict[str, object] | None = None) -> list:
    """Five molecules, Si diamond and NaCl rocksalt (all with SMILES/text where defined)."""
    from ase.build import bulk, molecule

    from matteralign.records import Record

    records = [Record(id=name, atoms=molecule(name), smiles=smiles,
                      text=f"the molecule {name}, SMILES {smiles}")
               for name, smiles in MOLECULES.items()]
    records.append(Record(id="Si", atoms=bulk("Si", "diamond", a=5.43),
                          text="silicon crystal in the diamond structure, Si"))
    records.append(Record(id="NaCl", atoms=bulk("NaCl", "rocksalt", a=5.64),
                          text="sodium chloride crystal in the rock-salt structure, NaCl"))
    for record in (extra or {}).values():
        records.append(record)
    return records


#: bad geometry every 3D adapter must mask (the embedding job's shared check), with what the
#: reason says: a NaN coordinate, an infinite cell, a cell of zero volume, and two atoms of a
#: crystal at one position
GEOMETRY_REASONS = {"nan-position": "non-finite position", "inf-cell": "non-finite cell",
                    "singular-cell": "singular cell", "overlap": "closer than 0.1"}
GEOMETRY_PROBLEMS = tuple(GEOMETRY_REASONS)


def _bad_geometry(name: str):
    from ase.build import bulk, molecule

    atoms = molecule("H2O") if name == "nan-position" else bulk("NaCl", "rocksalt", a=5.64)
    if name == "nan-position":
        atoms.positions[1, 0] = float("nan")
    elif name == "inf-cell":
        atoms.cell[0, 0] = float("inf")
    elif name == "singular-cell":
        atoms.set_cell([[2.8, 0, 0], [5.6, 0, 0], [0, 0, 2.8]])
    else:
        atoms.positions[1] = atoms.positions[0]
    return atoms


def problem_records(*names: str) -> dict:
    """Records a 3D adapter must mask, by name: "Am2" (Z=95, beyond most element
    embeddings), "slab" (a partly periodic cell), "no-atoms" (a record without a structure),
    and the bad geometry of :data:`GEOMETRY_PROBLEMS`."""
    from ase import Atoms

    from matteralign.records import Record

    known = {
        "Am2": lambda: Atoms("Am2", positions=[[0, 0, 0], [0, 0, 2.5]]),
        "slab": lambda: Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]], cell=[5, 5, 5],
                              pbc=[1, 1, 0]),
        **{name: (lambda name=name: _bad_geometry(name)) for name in GEOMETRY_PROBLEMS},
    }
    return {name: Record(id=name, atoms=known[name]()) if name in known
            else Record(id=name, smiles="C", text="methane") for name in names}


def check_geometry_masked(out: dict) -> None:
    """Every record of :data:`GEOMETRY_PROBLEMS` in ``out`` is masked with its reason."""
    errors = dict(zip(out["ids"], out["errors"], strict=True))
    for name, reason in GEOMETRY_REASONS.items():
        if name in errors:
            assert reason in errors[name], (name, errors[name])


def write_records(path: Path, records: list) -> Path:
    from matteralign.datasets.store import write_structures

    write_structures(path, records, {"dataset": "adapter-test", "source": "tests/models"})
    return path


@pytest.fixture(scope="session")
def family_env() -> Callable[[str], Path]:
    """The python of a family environment, checked once per session.

    Missing or out of date: built when MATTERALIGN_BUILD_ENVS=1, else a failure under CI and a
    skip (with the build command) elsewhere.
    """
    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family in cache:
            return cache[family]
        env_file = ROOT / "workflow" / "envs" / f"{family}.yaml"
        prefix = ROOT / ".envs" / family
        spec = read_env_file(env_file)
        if os.environ.get("MATTERALIGN_BUILD_ENVS") == "1" and not is_current(spec, prefix):
            build_env(env_file, prefix)
        python = family_python(family)
        if not is_current(spec, prefix):
            message = (f"environment .envs/{family} is out of date with {env_file.name}: rebuild "
                       f"with PYTHONPATH=src .venv/bin/python -c \"from matteralign.envs import "
                       f"build_env; build_env('workflow/envs/{family}.yaml', '.envs/{family}')\"")
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        cache[family] = python
        return python

    return get


def run_in_env(python: Path, code: str, timeout: float = 300) -> str:
    """Run ``code`` with a family environment's python and matteralign from source."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{python} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc.stdout


def embed_in_env(python: Path, model: str, structures: Path, runs: dict[str, str | None]) -> dict:
    """Embed ``structures`` once per entry of ``runs`` (output stem -> weights) in one process;
    return the output paths."""
    outputs = {stem: str(structures.parent / f"{model}.{stem}.h5") for stem in runs}
    code = (
        "import json\n"
        "from matteralign.embed import embed_dataset\n"
        f"runs = json.loads({json.dumps(json.dumps(runs))})\n"
        f"outputs = json.loads({json.dumps(json.dumps(outputs))})\n"
        "for stem, weights in runs.items():\n"
        f"    embed_dataset({model!r}, {str(structures)!r}, outputs[stem], weights=weights,\n"
        "                  progress=False)\n"
    )
    run_in_env(python, code)
    return {stem: Path(path) for stem, path in outputs.items()}


def read_h5(path: Path) -> dict:
    """An embedding file read with plain h5py (not matteralign.io), as a consumer would."""
    import h5py

    with h5py.File(path, "r") as handle:
        data = {key: handle[key][()] for key in handle}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in handle.attrs.items()}
    data["ids"] = [v.decode() if isinstance(v, bytes) else str(v) for v in data["ids"]]
    data["errors"] = [v.decode() if isinstance(v, bytes) else str(v) for v in data["errors"]]
    data["attrs"] = attrs
    return data


def check_common(out: dict, dim: int, expect_valid: dict[str, bool]) -> None:
    """Shape, mask, errors: what every adapter's output must satisfy."""
    ids = out["ids"]
    assert out["embeddings"].shape == (len(ids), dim)
    assert out["embeddings"].dtype == np.float32
    assert out["attrs"]["dim"] == dim
    for i, record_id in enumerate(ids):
        valid = bool(out["valid"][i])
        assert valid == expect_valid[record_id], (record_id, out["errors"][i])
        if valid:
            assert out["errors"][i] == ""
            assert np.all(np.isfinite(out["embeddings"][i]))
        else:
            assert out["errors"][i], f"{record_id} masked without a reason"
            assert np.all(np.isnan(out["embeddings"][i]))
    assert out["attrs"]["n_valid"] == sum(expect_valid.values())


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def site_packages(family: str) -> Path:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return ROOT / ".envs" / family / "lib" / version / "site-packages"


INVARIANCE_CODE = """
import json, sys, numpy as np
from ase.build import bulk, molecule
from matteralign.models import get_model
from matteralign.records import Record
adapter = get_model({model!r}, weights={weights!r}, **{kwargs!r}).load()
rng = np.random.default_rng(0)
def rotated(atoms):
    atoms = atoms.copy()
    atoms.rotate(float(rng.uniform(20, 160)), rng.normal(size=3), center="COM",
                 rotate_cell=True)
    return atoms
def translated(atoms):
    atoms = atoms.copy()
    atoms.translate(rng.normal(size=3) * 2.0)
    return atoms
def permuted(atoms):
    return atoms[rng.permutation(len(atoms))]
def embed(structures):
    records = [Record(id=str(i), atoms=s) for i, s in enumerate(structures)]
    for r in records:
        reason = adapter.check(r)
        assert not reason, reason
    return adapter.embed_batch(records).embeddings.astype(np.float64)
def diff(a, b):
    return float(np.abs(a - b).max())
structures = {{"molecule": [molecule("CH3CH2OH"), molecule("C6H6"), molecule("CH4")],
              "crystal": [bulk("NaCl", "rocksalt", a=5.64), bulk("Si", "diamond", a=5.43)]}}
kinds = {kinds!r}
result = {{}}
everything = [s for k in kinds for s in structures[k]]
batched = embed(everything)
single = np.concatenate([embed([s]) for s in everything])
result["batch_vs_single"] = diff(batched, single)
result["deterministic"] = diff(batched, embed(everything))
result["scale"] = float(np.abs(batched).mean())
for kind in kinds:
    base = embed(structures[kind])
    result[kind + "_permutation"] = diff(base, embed([permuted(s) for s in structures[kind]]))
    result[kind + "_rotation"] = diff(base, embed([rotated(s) for s in structures[kind]]))
    result[kind + "_translation"] = diff(base, embed([translated(s) for s in structures[kind]]))
if "crystal" in kinds:
    base = embed(structures["crystal"])
    bigger = [s.repeat((2, 2, 1)) for s in structures["crystal"]]
    result["crystal_supercell"] = diff(base, embed(bigger))
print(json.dumps(result))
"""


def invariances(python: Path, model: str, weights: str | None = None,
                kinds: tuple[str, ...] = ("molecule", "crystal"),
                **kwargs: object) -> dict[str, float]:
    """Max |difference| of pooled embeddings under the issue's invariants, run in the family env:
    batched vs one-by-one, a second call, atom permutation, rotation, translation, and (for
    crystals) a 2x2x1 supercell; ``scale`` is the mean |embedding| to judge them against.
    ``kwargs`` go to the adapter (e.g. ``config_overrides`` for a small random instance)."""
    code = INVARIANCE_CODE.format(model=model, weights=weights, kinds=kinds, kwargs=kwargs)
    return json.loads(run_in_env(python, code).strip().splitlines()[-1])


def assert_invariant(result: dict[str, float], atol: float = 1e-4,
                     batch_atol: float = 1e-5, min_scale: float = 1e-3,
                     skip: tuple[str, ...] = (), repeat_atol: float = 0.0) -> None:
    """Every invariant holds to ``atol`` (batching to ``batch_atol``) except those in ``skip``
    (e.g. "rotation" for a model that is not rotation-invariant by construction); a second
    call must give the same bits unless ``repeat_atol`` allows float-summation jitter."""
    assert result["scale"] > min_scale, result  # not trivially zero
    assert result["deterministic"] <= repeat_atol, result
    assert result["batch_vs_single"] <= batch_atol, result
    for key, value in result.items():
        kind = key.rsplit("_", 1)[-1]
        if kind in ("permutation", "rotation", "translation", "supercell") and kind not in skip:
            assert value <= atol, (key, result)
