"""What each registered model was trained on, so every (model, dataset) cell is in or out of
distribution.

A training domain is a set of dataset kinds (``molecules``, ``crystals``, ``proteins``, as
:attr:`matteralign.datasets.base.Dataset.kind`); a model is *in distribution* (ID) on a
dataset whose kind is in its domain, *out of distribution* (OOD) otherwise. Text language
models were trained on general text, so every matter dataset is OOD for them. Non-neural
baselines have no training domain: they are controls, as is any random-init run. A study
config may override a model's domain (``analysis.domains``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

KINDS = ("molecules", "crystals", "proteins")
REGIMES = ("ID", "OOD", "control")


@dataclass(frozen=True)
class TrainingDomain:
    kinds: frozenset[str]
    #: the training data, in a few words (shown in tables and the report)
    data: str
    #: non-neural descriptor: a control on every dataset
    baseline: bool = False


def _d(kinds: Sequence[str], data: str, baseline: bool = False) -> TrainingDomain:
    return TrainingDomain(frozenset(kinds), data, baseline)


_CRYSTALS_MP = _d(["crystals"], "MPtrj (Materials Project relaxations, inorganic crystals)")
_ANI1X = _d(["molecules"], "ANI-1x (small organic molecules, H C N O)")

#: model name -> training domain; a test fails when a registered model is missing here
TRAINING_DOMAINS: dict[str, TrainingDomain] = {
    # interatomic potentials
    "chgnet-0.3.0": _CRYSTALS_MP,
    "chgnet-0.2.0": _CRYSTALS_MP,
    "chgnet-r2scan": _d(["crystals"], "MPtrj fine-tuned on MP r2SCAN (inorganic crystals)"),
    "chgnet-matgl-matpes-pbe": _d(["crystals"], "MatPES PBE (inorganic crystals)"),
    "m3gnet-matpes-pbe": _d(["crystals"], "MatPES PBE (inorganic crystals)"),
    "sevennet-0": _CRYSTALS_MP,
    "sevennet-0-22may2024": _CRYSTALS_MP,
    "sevennet-l3i5": _CRYSTALS_MP,
    "sevennet-mf-0": _d(["crystals", "molecules"], "MPtrj and SPICE 2 (multi-fidelity)"),
    "cgcnn-formation-energy": _d(["crystals"], "Materials Project formation energies"),
    "cgcnn-final-energy": _d(["crystals"], "Materials Project final energies"),
    "cgcnn-band-gap": _d(["crystals"], "Materials Project band gaps"),
    "mace-mp-0-medium": _CRYSTALS_MP,
    "mace-off23-small": _d(["molecules"], "SPICE (organic molecules)"),
    "mace-off23-medium": _d(["molecules"], "SPICE (organic molecules)"),
    "mace-off23-large": _d(["molecules"], "SPICE (organic molecules)"),
    "ani-1x": _ANI1X,
    **{f"ani-1x-m{k}": _ANI1X for k in range(8)},  # its ensemble members
    "ani-2x": _d(["molecules"], "ANI-2x (small organic molecules, H C N O S F Cl)"),
    # the ladder's architecture (its rungs, ani-qm9-n{size}-s{seed}, are named by pattern)
    "ani-qm9": _d(["molecules"], "QM9 (trained by this study: see the ladder)"),
    "orb-v3-conservative-inf-omat": _d(["crystals"], "OMat24 (inorganic crystals)"),
    "orb-v3-direct-inf-omat": _d(["crystals"], "OMat24 (inorganic crystals)"),
    "orb-v3-direct-20-omat": _d(["crystals"], "OMat24 (inorganic crystals)"),
    "uma-s-1p1": _d(["crystals", "molecules"], "OMat24, OMol25, OC20, ODAC23, OMC25"),
    "esen-sm-conserving-all-omol": _d(["molecules"], "OMol25 (molecules)"),
    "equiformer-v2-31m": _d(["crystals"], "OC20 / OMat24 (catalyst surfaces, crystals)"),
    "mattersim-v1-1m": _d(["crystals"], "MatterSim's sampled inorganic materials"),
    "mattergen-base": _d(["crystals"], "Alex-MP-20 (inorganic crystals; generative model)"),
    # SMILES and molecular-graph models
    "minimol": _d(["molecules"], "LargeMix (molecular graphs)"),
    "rxnfp-bert-pretrained": _d(["molecules"], "USPTO reaction SMILES"),
    "rxnfp-bert-ft": _d(["molecules"], "USPTO reaction SMILES"),
    "rxnfp-bert-ft-10k": _d(["molecules"], "USPTO reaction SMILES"),
    "chemberta-77m-mlm": _d(["molecules"], "PubChem SMILES"),
    "molformer-xl-both-10pct": _d(["molecules"], "PubChem and ZINC SMILES"),
    # protein models
    "esm2-t33-650m": _d(["proteins"], "UniRef50/90 sequences"),
    "esm2-t6-8m": _d(["proteins"], "UniRef50/90 sequences"),
    "proteinmpnn-v48-020": _d(["proteins"], "PDB backbones"),
    "unirep-1900": _d(["proteins"], "UniRef50 sequences"),
    "antiberty": _d(["proteins"], "OAS antibody sequences"),
    # text models: general text, no matter dataset is in distribution
    "minilm-l6-v2": _d([], "general English text (sentence pairs)"),
    "qwen2.5-0.5b-prompted": _d([], "general text and code"),
    "causal-lm-prompted": _d([], "general text (any causal LM checkpoint)"),
    # non-neural baselines
    "morgan-fp": _d([], "none (RDKit Morgan fingerprint)", baseline=True),
    "composition": _d([], "none (element fractions)", baseline=True),
    "soap": _d([], "none (SOAP descriptor)", baseline=True),
}


def training_domain(model: str, overrides: Mapping[str, Sequence[str]] | None = None
                    ) -> TrainingDomain:
    """The model's training domain, with a config override of its kinds if given."""
    try:
        domain = TRAINING_DOMAINS[model] if model in TRAINING_DOMAINS else _rung_domain(model)
    except KeyError:
        raise KeyError(f"no training domain recorded for model {model!r}; add it to "
                       "matteralign.models.domains.TRAINING_DOMAINS or set "
                       f"analysis.domains.{model} in the config") from None
    if overrides and model in overrides:
        unknown = sorted(set(overrides[model]) - set(KINDS))
        if unknown:
            raise ValueError(f"config key analysis.domains.{model}: unknown dataset kind(s) "
                             f"{unknown}; use any of {list(KINDS)}")
        return TrainingDomain(frozenset(overrides[model]), domain.data + " (config override)",
                              domain.baseline)
    return domain


def _rung_domain(model: str) -> TrainingDomain:
    """The training domain of a model the study trains itself (a ladder rung)."""
    from matteralign.training.ladder import parse_rung_name

    rung = parse_rung_name(model)
    if rung is None:
        raise KeyError(model)
    chemistry = f"H/C/N/O molecules without {rung.excluded}" if rung.excluded else \
        "H/C/N/O molecules"
    return _d(["molecules"], f"QM9, {rung.size} {chemistry} (trained by this study, "
                             f"seed {rung.seed})")


def is_baseline(model: str) -> bool:
    return training_domain(model).baseline


def regime(model: str, dataset_kind: str, random_init: bool = False,
           overrides: Mapping[str, Sequence[str]] | None = None) -> str:
    """``"ID"``, ``"OOD"`` or ``"control"`` (random-init weights or a non-neural baseline)."""
    if dataset_kind not in KINDS:
        raise ValueError(f"unknown dataset kind {dataset_kind!r}; expected one of {KINDS}")
    domain = training_domain(model, overrides)
    if random_init or domain.baseline:
        return "control"
    return "ID" if dataset_kind in domain.kinds else "OOD"


def control_label(model: str, random_init: bool) -> str:
    """``"random-init"``, ``"baseline"`` or ``""``: how tables and figures mark a control."""
    if random_init:
        return "random-init"
    return "baseline" if training_domain(model).baseline else ""


def control_of(model: str, random_init: bool) -> str:
    """:func:`control_label`, or for a model without a recorded training domain (a file from
    elsewhere) only what its random-init flag says."""
    try:
        return control_label(model, random_init)
    except KeyError:
        return "random-init" if random_init else ""


#: models that differ only by training seed (one architecture, one training set): their
#: mutual alignment is the noise ceiling against which every other alignment is read
SEED_REPLICATES: dict[str, tuple[str, ...]] = {
    "ani-1x": tuple(f"ani-1x-m{k}" for k in range(8)),
}


def seed_groups(models: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """group -> its members among ``models``, for every group of two or more models that
    differ only by training seed: SEED_REPLICATES, and the ladder rungs of one size."""
    from matteralign.training.ladder import parse_rung_name

    models = list(models)
    groups = {group: tuple(m for m in members if m in models)
              for group, members in SEED_REPLICATES.items()}
    for model in models:
        rung = parse_rung_name(model)
        if rung is not None:
            groups[rung.group] = (*groups.get(rung.group, ()), model)
    return {group: members for group, members in groups.items() if len(members) > 1}


def seed_group(model: str) -> str | None:
    """The model whose seed replicates ``model`` is one of (None if it is none's)."""
    from matteralign.training.ladder import parse_rung_name

    rung = parse_rung_name(model)
    if rung is not None:
        return rung.group
    return next((group for group, members in SEED_REPLICATES.items() if model in members),
                None)
