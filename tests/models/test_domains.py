"""Every registered model declares its training domain; regimes follow from it."""

from __future__ import annotations

import pytest

from matteralign.datasets import registered_datasets
from matteralign.models import registered_models
from matteralign.models.domains import (
    KINDS,
    TRAINING_DOMAINS,
    control_label,
    regime,
    training_domain,
)


def test_every_registered_model_has_a_domain_and_no_stale_rows():
    assert set(TRAINING_DOMAINS) == set(registered_models())


def test_every_dataset_kind_is_a_known_kind():
    assert {cls.kind for cls in registered_datasets().values()} <= set(KINDS)


@pytest.mark.parametrize(("model", "kind", "expected"), [
    ("chgnet-0.3.0", "crystals", "ID"),
    ("chgnet-0.3.0", "molecules", "OOD"),
    ("ani-1x", "molecules", "ID"),
    ("ani-1x", "crystals", "OOD"),
    ("uma-s-1p1", "molecules", "ID"),
    ("minilm-l6-v2", "molecules", "OOD"),
    ("esm2-t6-8m", "proteins", "ID"),
    ("morgan-fp", "molecules", "control"),
])
def test_regime_as_declared(model, kind, expected):
    assert regime(model, kind) == expected


def test_random_init_is_a_control_and_overrides_apply():
    assert regime("sevennet-0", "crystals", random_init=True) == "control"
    assert control_label("sevennet-0", True) == "random-init"
    assert control_label("composition", False) == "baseline"
    assert control_label("sevennet-0", False) == ""
    overrides = {"chgnet-0.3.0": ["molecules"]}
    assert regime("chgnet-0.3.0", "molecules", overrides=overrides) == "ID"
    assert regime("chgnet-0.3.0", "crystals", overrides=overrides) == "OOD"
    with pytest.raises(ValueError, match="analysis.domains.chgnet-0.3.0"):
        training_domain("chgnet-0.3.0", {"chgnet-0.3.0": ["gases"]})
    with pytest.raises(KeyError, match="TRAINING_DOMAINS"):
        training_domain("no-such-model")


def test_seed_replicates_are_registered_models_of_one_family_and_one_domain():
    from matteralign.models import registered_models
    from matteralign.models.domains import SEED_REPLICATES, seed_group, training_domain

    models = registered_models()
    for group, members in SEED_REPLICATES.items():
        assert len(members) >= 2, group
        assert set(members) <= set(models), group
        assert len({type(training_domain(m)) for m in members}) == 1
        assert len({training_domain(m).data for m in members}) == 1, group
        assert all(seed_group(m) == group for m in members)
    assert seed_group("composition") is None
