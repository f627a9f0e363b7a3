"""Study configuration: schema validation, registry checks and the (model x dataset) grid.

The Snakefile validates with ``snakemake.utils.validate`` against the same schema file and then
calls :func:`check_config`; ``matteralign check-config`` does both without Snakemake. Every
problem is reported as one :class:`ConfigError` naming the key and the fix, before any job runs.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from copy import deepcopy
from pathlib import Path
from typing import Any

import yaml

from matteralign.models.base import RANDOM_INIT

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration problem; the message names the key and how to fix it."""


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"{hint} Known: {', '.join(sorted(choices))}."


def _fill_defaults(instance: Any, schema: Mapping[str, Any]) -> None:
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = deepcopy(sub["default"])
        if key in instance:
            _fill_defaults(instance[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(value, extra)


def validate_schema(config: dict[str, Any], schema_path: Path = SCHEMA) -> dict[str, Any]:
    """Validate against the JSON schema and fill defaults (what snakemake's validate does)."""
    import jsonschema

    schema = yaml.safe_load(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"config key {where}: {err.message}. See {schema_path} for the schema.")
    config = deepcopy(config)
    _fill_defaults(config, schema)
    return config


def model_options(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    return dict(config["models"].get(model) or {})


def check_config(config: Mapping[str, Any], base: Path | None = None,
                 check_inputs: bool = True) -> None:
    """Registry-level checks the schema cannot express. Raises ConfigError.

    ``check_inputs`` also requires every checkpoint and dataset to be present (and N to fit);
    without it those problems are left to :func:`input_problems` (a dry run lists them).
    """
    from matteralign.datasets import registered_datasets
    from matteralign.models import registered_models

    models, datasets = registered_models(), registered_datasets()
    for name in config["models"]:
        if name not in models:
            raise ConfigError(f"config key models.{name}: unknown model {name!r}."
                              + _suggest(name, list(models)))
    for name in config["datasets"]:
        if name not in datasets:
            raise ConfigError(f"config key datasets.{name}: unknown dataset {name!r}."
                              + _suggest(name, list(datasets)))
    for name in config["models"]:
        for dataset in model_options(config, name).get("datasets", []):
            if dataset not in config["datasets"]:
                raise ConfigError(f"config key models.{name}.datasets: {dataset!r} is not one of "
                                  f"the configured datasets {sorted(config['datasets'])}")
    from matteralign.models.base import option_problem

    for name in config["models"]:
        problem = option_problem(name, model_options(config, name).get("options") or {})
        if problem:
            raise ConfigError(f"config key models.{name}.options: {problem}")
    grid = study_grid(config)
    for dataset, names in grid.items():
        if len(names) < 2:
            raise ConfigError(
                f"config key datasets.{dataset}: fewer than two configured models can read it "
                f"(it provides {datasets[dataset].modalities}); add models or remove the dataset"
            )
    if check_inputs:
        problems = input_problems(config, base, first_only=True)
        if problems:
            raise ConfigError(problems[0])


def input_problems(config: Mapping[str, Any], base: Path | None = None,
                   first_only: bool = False) -> list[str]:
    """Missing checkpoints, missing data and N larger than a dataset, one message each."""
    from matteralign.datasets import registered_datasets
    from matteralign.models import registered_models

    models = registered_models()
    problems: list[str] = []
    for name in config["models"]:
        weights = model_options(config, name).get("weights")
        if models[name].requires_checkpoint and (not weights or weights == RANDOM_INIT) \
                and models[name].cached_weights() is None:
            problems.append(f"config key models.{name}.weights: {name} has no random-init "
                            "variant (its architecture comes with the checkpoint); give a "
                            "local checkpoint path")
            if first_only:
                return problems
        if weights and weights != RANDOM_INIT:
            path = Path(weights) if base is None else base / weights
            if not path.exists():
                problems.append(
                    f"config key models.{name}.weights: checkpoint {weights!r} does not exist; "
                    f"give a local file path, null for the default weights, or {RANDOM_INIT!r}"
                )
                if first_only:
                    return problems
    datasets = registered_datasets()
    for name, entry in config["datasets"].items():
        dataset = datasets[name](**entry.get("options", {}))
        ok, where = dataset.available()
        if not ok:
            problems.append(f"config key datasets.{name}: the data is not here: {where}")
        elif entry["n"] > dataset.size():
            problems.append(f"config key datasets.{name}.n: {entry['n']} is larger than the "
                            f"dataset ({dataset.size()} structures); lower n")
        if problems and first_only:
            return problems
    return problems


def study_grid(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """dataset -> models that read one of its modalities (in config order)."""
    from matteralign.datasets import registered_datasets
    from matteralign.models import registered_models

    models, datasets = registered_models(), registered_datasets()
    grid: dict[str, list[str]] = {}
    for dataset in config["datasets"]:
        grid[dataset] = [
            name for name in config["models"]
            if models[name].modality in datasets[dataset].modalities
            and dataset in model_options(config, name).get("datasets", [dataset])
        ]
    return grid


def load_config(path: str | os.PathLike[str], check_inputs: bool = True) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    config = validate_schema(raw)
    check_config(config, base=Path.cwd(), check_inputs=check_inputs)
    return config
