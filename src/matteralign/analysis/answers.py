"""The study's answers: every claim of arXiv 2512.03750 the study can address, plus the
calibration critique of Gröger et al. (arXiv 2602.14486), tested on a results folder by the
rules of :mod:`matteralign.analysis.claims`, written as answers.html and answers.json.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matteralign.analysis.claims import (
    calibration_claim,
    convergence_claim,
    cross_modality,
    intrinsic_dim_claim,
    local_optimum_claim,
    regimes_claim,
    transfer_claim,
)
from matteralign.analysis.evidence import (
    AGREES,
    DISAGREES,
    INCONCLUSIVE,
    MIXED,
    UNTESTABLE,
    VERDICTS,
    Claim,
    Test,
    combine,
    describe_pair,
    figure_path,
    load_dataset,
    pair_value,
)
from matteralign.config import ConfigError, check_analysis_config

__all__ = ["AGREES", "DISAGREES", "INCONCLUSIVE", "MIXED", "UNTESTABLE", "VERDICTS", "Answers",
           "Claim", "Test", "check_analysis_config", "combine", "describe_pair", "pair_value",
           "read_config_arg", "study_answers"]


# ---------------------------------------------------------------------------------------------
# configuration (the analysis keys are checked by matteralign.config.check_analysis_config)
# ---------------------------------------------------------------------------------------------


def read_config_arg(value: str) -> dict[str, Any]:
    """``--config``: a YAML/JSON file or inline JSON, validated with the schema's defaults."""
    from matteralign.config import read_config, validate_schema

    if value.lstrip().startswith("{"):
        try:
            raw = json.loads(value)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--config: inline JSON is not valid ({err.msg})") from None
    else:
        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"--config: config file {path} does not exist")
        raw = read_config(path)
    config = validate_schema(raw)
    check_analysis_config(config)
    return config


# ---------------------------------------------------------------------------------------------
# the whole page
# ---------------------------------------------------------------------------------------------


@dataclass
class Answers:
    claims: list[Claim]
    settings: dict[str, Any]
    missing: list[str]
    provenance: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        claims = []
        for claim in self.claims:
            entry = asdict(claim)
            entry["verdict"] = claim.verdict
            claims.append(entry)
        return _finite({"claims": claims, "settings": self.settings, "missing": self.missing,
                        "verdicts": list(VERDICTS), "provenance": self.provenance})


def _finite(value: Any) -> Any:
    """JSON-ready: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def study_answers(results: str | os.PathLike[str], config: Mapping[str, Any]) -> Answers:
    """Every claim tested on the files under ``results`` for the study ``config``."""
    from matteralign.datasets import registered_datasets
    from matteralign.provenance import provenance

    kinds = {name: cls.kind for name, cls in registered_datasets().items()}
    metrics = list(config["metrics"]["names"])
    data = [load_dataset(results, d, kinds[d], metrics) for d in config["datasets"]]
    missing = [m for d in data for m in d.missing]
    if (config.get("ladder") or {}).get("enabled"):
        from matteralign.analysis.ladder import read_ladder
        from matteralign.training.ladder import DATASET

        path = Path(results) / "ladder" / "ladder.h5"
        for d in data:
            if d.name == DATASET and path.is_file():
                d.ladder = read_ladder(path)
            elif d.name == DATASET:
                missing.append("ladder/ladder.h5")
        held_out = Path(results) / "ladder" / "held_out.h5"
        if held_out.is_file():
            from matteralign.analysis.held_out import read_held_out

            for d in data:
                if d.name == DATASET:
                    d.held_out = read_held_out(held_out)
    for d in data:
        d.map_figures = [figure_path(d.name, f"maps_{p}")
                         for p in (config.get("analysis") or {}).get("map_properties", {})
                         .get(d.name, [])]
    claims = [cross_modality(data), convergence_claim(data), local_optimum_claim(data),
              regimes_claim(data), intrinsic_dim_claim(data), transfer_claim(data),
              calibration_claim(data)]
    settings = {
        "seed": config.get("seed", 0),
        "k": config["metrics"].get("k"),
        "preprocessing": config["metrics"].get("preprocessing"),
        "bootstrap": config["metrics"].get("bootstrap", 0),
        "permutations": config["metrics"].get("permutations", 0),
        "reference": (config.get("analysis") or {}).get("reference"),
        "datasets": {d.name: {"kind": d.kind, "n": config["datasets"][d.name]["n"],
                              "n_used": (d.first_metric.attrs.get("n_used")
                                         if d.first_metric else None),
                              "models": d.models(), "controls": {
                                  m: c for m, c in d.control().items() if c}}
                     for d in data},
    }
    return Answers(claims, settings, missing, provenance(("scipy",)))
