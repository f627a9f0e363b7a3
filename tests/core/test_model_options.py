"""Per-model options and weight pins: from the config entry to the adapter, checked early."""

from __future__ import annotations

import hashlib

import pytest
from ase.build import molecule

from matteralign.config import ConfigError, check_config, load_config
from matteralign.datasets.store import write_structures
from matteralign.embed import embed_dataset
from matteralign.io import sha256_file
from matteralign.models import get_model
from matteralign.models.base import adapter_options, option_problem, registered_models
from matteralign.models.weights import WeightsMismatch, check_weights_pin
from matteralign.records import Record
from tests.conftest import ROOT


def test_adapter_options_are_read_from_the_constructor():
    models = registered_models()
    assert adapter_options(models["mace-mp-0-medium"])[:2] == ["max_atoms", "allow_pickle"]
    assert adapter_options(models["composition"]) == []


def test_unknown_option_is_named_with_what_the_model_takes():
    problem = option_problem("chgnet-0.3.0", {"max_atom": 10})
    assert "no option 'max_atom'" in problem and "takes: max_atoms" in problem
    assert option_problem("chgnet-0.3.0", {"max_atoms": 10}) is None
    with pytest.raises(TypeError, match="no option 'allow_pickle'"):
        get_model("chgnet-0.3.0", allow_pickle=True)
    assert get_model("chgnet-0.3.0", max_atoms=7).max_atoms == 7


def test_config_options_are_checked_before_any_job():
    config = load_config(ROOT / "config" / "config.yaml")
    config["models"]["chgnet-0.3.0"] = {"options": {"trust_remote_code": True}}
    with pytest.raises(ConfigError, match="models.chgnet-0.3.0.options: .*trust_remote_code"):
        check_config(config, check_inputs=False)


def test_sha256_of_a_checkpoint_folder_pins_every_file(tmp_path):
    folder = tmp_path / "ckpt"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "model.safetensors").write_bytes(b"\x00" * 10)
    lines = "".join(f"{rel}  {hashlib.sha256(data).hexdigest()}\n" for rel, data in
                    [("config.json", b"{}"), ("sub/model.safetensors", b"\x00" * 10)])
    assert sha256_file(folder) == hashlib.sha256(lines.encode()).hexdigest()
    before = sha256_file(folder)
    (folder / "sub" / "model.safetensors").write_bytes(b"\x01" * 10)
    assert sha256_file(folder) != before


def test_weights_pin(tmp_path):
    checkpoint = tmp_path / "mace.pt"
    checkpoint.write_bytes(b"not really a model")
    good = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    adapter = get_model("mace-mp-0-medium", weights=str(checkpoint))
    assert check_weights_pin(adapter, None) == good
    assert check_weights_pin(adapter, good.upper()) == good
    with pytest.raises(WeightsMismatch, match=f"have sha256 {good}, but the config pins 0+"):
        check_weights_pin(adapter, "0" * 64)
    with pytest.raises(WeightsMismatch, match="no weights file"):
        check_weights_pin(get_model("mace-mp-0-medium", weights="random-init"), good)


def test_pin_mismatch_stops_the_job_before_anything_is_computed(tmp_path):
    structures = tmp_path / "structures.h5"
    write_structures(structures, [Record("w", atoms=molecule("H2O"))], {"dataset": "toy"})
    checkpoint = tmp_path / "mace.pt"
    checkpoint.write_bytes(b"x")
    output = tmp_path / "out.h5"
    # the driver env has no mace: a pin check after load() would fail on the import instead
    with pytest.raises(WeightsMismatch):
        embed_dataset("mace-mp-0-medium", structures, output, weights=str(checkpoint),
                      sha256="f" * 64, progress=False)
    assert not output.exists() and not (tmp_path / "out.h5.parts").exists()


def test_options_reach_the_adapter_and_are_recorded(tmp_path):
    from matteralign.io import read_embeddings

    structures = tmp_path / "structures.h5"
    records = [Record("w", atoms=molecule("H2O")), Record("b", atoms=molecule("C6H6"))]
    write_structures(structures, records, {"dataset": "toy"})
    # composition takes no options: an unknown one is refused by name
    with pytest.raises(TypeError, match="no option 'max_atoms'"):
        embed_dataset("composition", structures, tmp_path / "x.h5", options={"max_atoms": 3},
                      progress=False)
    result = embed_dataset("composition", structures, tmp_path / "c.h5", progress=False)
    assert read_embeddings(tmp_path / "c.h5").attrs["options"] == "{}"
    assert result.valid.all()


def test_a_model_without_random_init_needs_a_checkpoint_before_any_job(tmp_path, monkeypatch):
    monkeypatch.setenv("MATTERALIGN_CACHE", str(tmp_path / "cache"))
    cls = registered_models()["molformer-xl-both-10pct"]
    assert cls.requires_checkpoint
    assert cls.weights_status().startswith("missing: needs a local checkpoint")
    assert cls.weights_status((), "random-init").startswith("missing: needs a local checkpoint")
    config = load_config(ROOT / "config" / "config.yaml", check_inputs=False)
    config["models"]["molformer-xl-both-10pct"] = {"options": {"trust_remote_code": True}}
    with pytest.raises(ConfigError, match="molformer-xl-both-10pct has no random-init variant"):
        check_config(config, check_inputs=True)
