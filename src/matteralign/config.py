"""Study configuration: schema validation, registry checks and the (model x dataset) grid.

The schema (``config.schema.yaml``) ships inside the package, so ``matteralign check-config``
works from an installed wheel. The Snakefile runs :func:`validate_schema` and
:func:`check_config` while it is read; every problem is reported as one :class:`ConfigError`
naming the key and the fix, before any job runs.
"""

from __future__ import annotations

import difflib
import importlib.resources
import json
import os
import reprlib
import sys
from collections.abc import Mapping
from copy import deepcopy
from pathlib import Path
from typing import Any

import yaml

from matteralign.configfile import ConfigFileError, read_config_file
from matteralign.errors import MatterAlignError
from matteralign.models.base import RANDOM_INIT

ROOT = Path(__file__).resolve().parents[2]
#: the study config's JSON schema (package data)
SCHEMA = importlib.resources.files("matteralign") / "config.schema.yaml"


class ConfigError(MatterAlignError, ValueError):
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


def load_schema() -> dict[str, Any]:
    """The study config's JSON schema, as a mapping."""
    return dict(yaml.safe_load(SCHEMA.read_text(encoding="utf-8")))


def _validator(schema: Mapping[str, Any]) -> Any:
    """A draft 2020-12 validator whose ``integer`` is an int: the draft also counts 60.0 as
    an integer, which would reach the jobs' ``--n 60.0`` as a float."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    return jsonschema.validators.extend(base, type_checker=checker)(schema)


def _schema_message(err: Any) -> str:
    """The validator's message with a long value shortened (it repeats the whole value)."""
    message = str(err.message)
    if len(message) > 300:
        short = reprlib.repr(err.instance)
        message = message.replace(repr(err.instance), short)
        if len(message) > 300:
            message = message[:300] + "..."
    return message


def validate_schema(config: dict[str, Any], schema_path: Any = SCHEMA) -> dict[str, Any]:
    """Validate against the JSON schema and fill defaults (what snakemake's validate does)."""
    schema = yaml.safe_load(schema_path.read_text(encoding="utf-8"))
    errors = sorted(_validator(schema).iter_errors(config),
                    key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"config key {where}: {_schema_message(err)}. See {schema_path} for "
                          "the schema.")
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
        _check_model_datasets(config, name, models[name].modality, datasets)
    from matteralign.models.base import adapter_options, option_problem

    for name in config["models"]:
        options = model_options(config, name).get("options") or {}
        problem = option_problem(name, options)
        key = problem.split(":", 1)[0] if problem else ""
        where = f"models.{name}.options" + (f".{key}" if key in options else "")
        if problem:
            told = problem.split(":", 1)[1].strip() if key in options else problem
            raise ConfigError(f"config key {where}: {told} (model {name!r})")
        try:  # the adapter's own checks of its options (constructors load nothing)
            models[name](weights=None, **{k: v for k, v in options.items()
                                          if k in adapter_options(models[name])})
        except (TypeError, ValueError) as err:
            raise ConfigError(f"config key {where}: {err}") from None
    for name, entry in config["datasets"].items():
        dataset_options(name, entry)
    check_analysis_config(config)
    _check_results(config, base)
    _check_k(config)
    _check_atoms(config)
    _check_ladder(config)
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


def _check_model_datasets(config: Mapping[str, Any], name: str, modality: str,
                          datasets: Mapping[str, Any]) -> None:
    """``models.NAME.datasets`` names configured datasets the model can read, at least one
    (an empty list would drop the model without a word)."""
    chosen = model_options(config, name).get("datasets")
    if chosen is None:
        return
    key = f"config key models.{name}.datasets"
    if not chosen:
        raise ConfigError(f"{key}: an empty list leaves {name} out of every dataset; remove "
                          "the key (every dataset it can read) or name datasets")
    for dataset in chosen:
        if dataset not in config["datasets"]:
            raise ConfigError(f"{key}: {dataset!r} is not one of the configured datasets "
                              f"{sorted(config['datasets'])}")
        if modality not in datasets[dataset].modalities:
            raise ConfigError(f"{key}: {name} reads {modality}, which {dataset} does not "
                              f"provide ({', '.join(datasets[dataset].modalities)}); remove "
                              f"{dataset} from the list")


def check_analysis_config(config: Mapping[str, Any]) -> None:
    """The ``analysis`` keys the schema cannot check: the reference is a configured model, the
    domain overrides name known models, the property choices name configured datasets and
    properties they have. Raises ConfigError."""
    from matteralign.datasets import registered_datasets
    from matteralign.models import registered_models

    analysis = config.get("analysis") or {}
    reference = analysis.get("reference")
    if reference is not None and not reference.strip():
        raise ConfigError("config key analysis.reference: empty; name a configured model, or "
                          "set null (the most accurate model of each dataset)")
    if reference is not None and reference not in config["models"]:
        raise ConfigError(f"config key analysis.reference: {reference!r} is not a configured "
                          "model; name one under models: or set null (the most accurate "
                          "model of each dataset)." + _suggest(reference, list(config["models"])))
    models = registered_models()
    for name in analysis.get("domains") or {}:
        if name not in models:
            raise ConfigError(f"config key analysis.domains.{name}: unknown model {name!r}."
                              + _suggest(name, list(models)))
    datasets = registered_datasets()
    for key in ("transfer_property", "map_properties"):
        for dataset, value in (analysis.get(key) or {}).items():
            if dataset not in config["datasets"]:
                raise ConfigError(f"config key analysis.{key}.{dataset}: {dataset!r} is not a "
                                  "configured dataset; use one of "
                                  f"{sorted(config['datasets'])}")
            known = list(getattr(datasets.get(dataset), "properties", None) or {})
            for prop in [value] if isinstance(value, str) else value:
                if known and prop not in known:
                    raise ConfigError(f"config key analysis.{key}.{dataset}: {dataset} has no "
                                      f"property {prop!r}." + _suggest(prop, known))


def dataset_options(name: str, entry: Mapping[str, Any]) -> Any:
    """The dataset ``name`` built with its config options; bad options are a ConfigError
    naming ``datasets.NAME.options`` (the dataset's constructor checks them)."""
    from matteralign.datasets import registered_datasets

    options = entry.get("options") or {}
    try:
        return registered_datasets()[name](**options)
    except (TypeError, ValueError) as err:
        bad = [k for k in options if k in str(err)]
        where = f"datasets.{name}.options" + (f".{bad[0]}" if len(bad) == 1 else "")
        raise ConfigError(f"config key {where}: {err}") from None


def _path_problem(key: str, value: str, wanted: str, relative_to: str) -> str | None:
    """Why the path ``value`` of ``key`` cannot be used as written (None: it can)."""
    if not value.strip():
        return (f"config key {key}: the path is empty, so its files would land directly in "
                f"{relative_to} (or in the filesystem root); give {wanted}")
    if value.startswith("~"):
        return (f"config key {key}: {value!r} starts with '~', which is not expanded here "
                "(a folder named '~' would be made); write the full path, e.g. "
                f"{str(Path(value).expanduser())!r}")
    if Path(value).is_absolute() and Path(os.path.normpath(value)) == Path(Path(value).anchor):
        return f"config key {key}: {value!r} is the filesystem root; give {wanted}"
    return None


def path_problems(config: Mapping[str, Any], base: Path | None = None) -> list[str]:
    """The config's paths that are empty, the filesystem root, start with an unexpanded '~',
    or would mix the study's files with the working directory's or the repository's own."""
    cwd_text = "the working directory"
    named = [("results", config["results"], "a folder for the study's outputs, e.g. results",
              cwd_text),
             ("envs.prefix", config["envs"]["prefix"],
              "a folder for the model environments, e.g. .envs", "the repository")]
    for name, entry in config["models"].items():
        weights = (entry or {}).get("weights")
        if isinstance(weights, str) and weights != RANDOM_INIT:
            named.append((f"models.{name}.weights", weights, "a checkpoint path, null for the "
                          f"default weights, or {RANDOM_INIT}", cwd_text))
    for name, entry in config["datasets"].items():
        path = (entry.get("options") or {}).get("path")
        if path is not None and not isinstance(path, str):
            return [f"config key datasets.{name}.options.path: {path!r} is not a path; give "
                    "the data's file or folder as a string"]
        if isinstance(path, str):
            named.append((f"datasets.{name}.options.path", path, "the data's file or folder",
                          cwd_text))
    problems = [problem for key, value, wanted, relative_to in named
                if (problem := _path_problem(key, str(value), wanted, relative_to))]
    cwd = (base or Path.cwd()).resolve()
    results = _resolve(config["results"], cwd)
    if not any(p.startswith("config key results:") for p in problems) and results == cwd:
        problems.append(f"config key results: {config['results']!r} is the working directory "
                        f"({cwd}) itself, so the study's folders would be mixed with its own "
                        "files; give a subfolder, e.g. results")
    if not any(p.startswith("config key envs.prefix") for p in problems) \
            and _env_prefix(config).resolve() == ROOT.resolve():
        problems.append(f"config key envs.prefix: {config['envs']['prefix']!r} is the "
                        f"repository ({ROOT}) itself, so every environment would be built among "
                        "its files; give a subfolder, e.g. .envs")
    return problems


def _resolve(value: str, base: Path) -> Path:
    path = Path(value)
    return (path if path.is_absolute() else base / path).resolve()


def resolved_paths(config: Mapping[str, Any], base: Path | None = None,
                   prefix_root: Path | None = None, envs: bool = True) -> list[str]:
    """One line per folder key: where it points, and what it was resolved from (a relative
    ``results`` from the working directory ``base``, ``envs.prefix`` from the repository
    ``prefix_root``; ``envs``: include it)."""
    cwd = base or Path.cwd()
    lines = [f"results: {_resolve(config['results'], cwd)} (from results: "
             f"{config['results']}, relative to the working directory {cwd})"]
    if envs:
        prefix = _resolve(config["envs"]["prefix"], prefix_root or ROOT)
        lines.append(f"envs.prefix: {prefix} (from envs.prefix: {config['envs']['prefix']}, "
                     f"relative to the repository {prefix_root or ROOT})")
    return lines


def _check_results(config: Mapping[str, Any], base: Path | None) -> None:
    problems = path_problems(config, base)
    if problems:
        raise ConfigError(problems[0])
    results = Path(config["results"])
    path = results if base is None or results.is_absolute() else base / results
    if path.exists() and not path.is_dir():
        raise ConfigError(f"config key results: {config['results']!r} is an existing file, "
                          "not a folder; give a folder for the study's outputs")


def _check_k(config: Mapping[str, Any]) -> None:
    """The neighbour metrics need k + 2 structures: check every dataset's n against k."""
    k = config["metrics"]["k"]
    need = max(k + 2, 4)
    for name, entry in config["datasets"].items():
        if entry["n"] < need:
            raise ConfigError(
                f"config key metrics.k: k={k} neighbours need at least {need} structures in "
                f"every dataset, but datasets.{name}.n is {entry['n']}; lower metrics.k or "
                "raise n")


def _weights_problem(name: str, weights: str, path: Path) -> str | None:
    """A configured checkpoint path that cannot be what the model reads."""
    from matteralign.models import registered_models

    if not path.is_dir():
        return None
    if not registered_models()[name].weights_folder_ok:
        return (f"config key models.{name}.weights: {weights!r} is a folder, but {name} "
                "reads one checkpoint file; give the file's path")
    if not any(p.is_file() for p in path.rglob("*")):
        return (f"config key models.{name}.weights: the folder {weights!r} holds no files; "
                "give the checkpoint folder (e.g. config.json with model.safetensors)")
    return None


def input_problems(config: Mapping[str, Any], base: Path | None = None,
                   first_only: bool = False) -> list[str]:
    """Missing checkpoints (or a folder where a file is read), missing data and N larger than
    a dataset or than what its filters leave, one message each."""
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
            elif (problem := _weights_problem(name, weights, path)) is not None:
                problems.append(problem)
                if first_only:
                    return problems
    for name, entry in config["datasets"].items():
        dataset = dataset_options(name, entry)
        ok, where = dataset.available()
        if not ok:
            problems.append(f"config key datasets.{name}: the data is not here: {where}")
        elif entry["n"] > dataset.size():
            problems.append(f"config key datasets.{name}.n: {entry['n']} is larger than the "
                            f"dataset ({dataset.size()} structures); lower n")
        elif entry["n"] > (kept := dataset.filtered_size()):
            options = entry.get("options") or {}
            problems.append(
                f"config key datasets.{name}.n: {entry['n']} is more than the {kept} "
                f"structures that pass the dataset's filters (options {json.dumps(options)}); "
                "lower n or relax the filter (e.g. raise options.max_atoms)")
        if problems and first_only:
            return problems
    return problems


def local_env_torch(prefix: Path, family: str) -> str | None:
    """The ``torch==...`` entry of a built local env's package list (None: no marker or no
    torch): its build tag says whether it can use a GPU (``+cpu`` cannot)."""
    marker = prefix / family / "matteralign-env.json"
    try:
        packages = json.loads(marker.read_text()).get("packages", [])
    except (OSError, ValueError, AttributeError):
        return None
    return next((p for p in packages if str(p).lower().startswith("torch==")), None)


def driver_has_cuda() -> bool:
    """Whether torch in this interpreter sees a GPU (False without torch)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _env_prefix(config: Mapping[str, Any]) -> Path:
    prefix = Path(config["envs"]["prefix"])
    return prefix if prefix.is_absolute() else ROOT / prefix


def device_problems(config: Mapping[str, Any], local_jobs: bool = True,
                    local_envs: bool | None = None) -> list[str]:
    """Why ``device: cuda`` cannot run: no GPU for this interpreter's torch (only checked when
    ``local_jobs``: jobs run on this machine), or a local family env with a CPU-only torch
    (``local_envs``: default ``envs.mode == local``)."""
    if config["device"] != "cuda":
        return []
    from matteralign.models import registered_models

    problems = []
    if local_jobs and not driver_has_cuda():
        problems.append(f"config key device: cuda, but torch in {sys.executable} sees no GPU on "
                        "this machine; use device: cpu (or auto), or run where a GPU is "
                        "(a cluster profile submits the jobs to GPU nodes)")
    if local_envs if local_envs is not None else config["envs"]["mode"] == "local":
        models = registered_models()
        families = sorted({models[m].family for ms in study_grid(config).values() for m in ms})
        for family in families:
            torch = local_env_torch(_env_prefix(config), family)
            if torch and "+cpu" in torch:
                problems.append(
                    f"config key device: cuda, but the {family} environment "
                    f"({_env_prefix(config) / family}) has a CPU-only torch ({torch}); use "
                    "device: cpu (or auto), or rebuild it with a CUDA build of torch")
    return problems


def resolve_device(config: Mapping[str, Any], local_envs: bool | None = None) -> str:
    """``device: auto`` made concrete: ``cuda`` when torch here sees a GPU and no local family
    env of the grid has a CPU-only torch, else ``cpu``; ``cpu``/``cuda`` stay as they are."""
    if config["device"] != "auto":
        return str(config["device"])
    if not driver_has_cuda():
        return "cpu"
    as_cuda = {**config, "device": "cuda"}
    return "cpu" if device_problems(as_cuda, local_jobs=False, local_envs=local_envs) else "cuda"


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


def atom_grid(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """dataset -> its models with per-atom features, for the datasets with ``atoms: true``
    (the ladder's rungs are compared pooled only: ten more models would multiply the
    atom-level metrics' pairs)."""
    from matteralign.models import registered_models
    from matteralign.training.ladder import parse_rung_name

    models = registered_models()
    return {dataset: [name for name in names if models[name].per_atom
                      and parse_rung_name(name) is None]
            for dataset, names in study_grid(config).items()
            if config["datasets"][dataset].get("atoms")}


def prepare_checks(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """dataset -> what its prepare step checks on the subsample before any embedding
    (:func:`matteralign.datasets.checks.study_problem`): the metrics' k, the options of each
    model of its grid, and for the atom-level study its potentials and ``max_atoms_total``."""
    atoms = atom_grid(config)
    return {
        dataset: {
            "k": config["metrics"]["k"],
            "models": {name: model_options(config, name).get("options") or {}
                       for name in names},
            "atom_models": atoms.get(dataset, []),
            "max_atoms_total": config["datasets"][dataset].get("max_atoms_total"),
        }
        for dataset, names in study_grid(config).items()
    }


def atom_resampling(config: Mapping[str, Any]) -> tuple[int, int]:
    """(B, P) of the atom-level metrics: ``metrics.atom_bootstrap``/``atom_permutations``,
    else the study's."""
    metrics = config["metrics"]
    pick = [metrics.get(f"atom_{key}") for key in ("bootstrap", "permutations")]
    return (metrics["bootstrap"] if pick[0] is None else pick[0],
            metrics["permutations"] if pick[1] is None else pick[1])


def _check_atoms(config: Mapping[str, Any]) -> None:
    """A dataset with ``atoms: true`` needs two models with per-atom features, and room for
    k + 2 atoms."""
    need = max(config["metrics"]["k"] + 2, 4)
    for dataset, entry in config["datasets"].items():
        if entry.get("by_element") and not entry.get("atoms"):
            raise ConfigError(
                f"config key datasets.{dataset}.by_element: the by-element metrics are part of "
                "the atom-level study, which is off for this dataset; set atoms: true as well, "
                "or remove by_element")
    for dataset, names in atom_grid(config).items():
        if len(names) < 2:
            raise ConfigError(
                f"config key datasets.{dataset}.atoms: fewer than two of its models give "
                f"per-atom features ({names or 'none'}; only interatomic potentials do); add "
                "potentials for this dataset or set atoms: false")
        if config["datasets"][dataset].get("max_atoms_total", need) < need:
            raise ConfigError(
                f"config key datasets.{dataset}.max_atoms_total: k={config['metrics']['k']} "
                f"neighbours need at least {need} atoms; raise it")


def _check_ladder(config: Mapping[str, Any]) -> None:
    from matteralign.training.ladder import DATASET, ladder_problems

    study_n = config["datasets"].get(DATASET, {}).get("n")
    problems = ladder_problems(config, study_n)
    if problems:
        raise ConfigError(f"config key {problems[0]}")


def with_ladder(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the ladder's rungs (:mod:`matteralign.training.ladder`) added to its
    models, each registered: from here on they are models of the study like any other. Its
    checkpoint folders are the workflow's own outputs, so :func:`input_problems` runs before."""
    from matteralign.models import registered_models
    from matteralign.training.ladder import ladder_models

    rungs = ladder_models(config)
    models = registered_models()
    for name in rungs:
        models[name]  # noqa: B018 - registers the rung's adapter
    config["models"] = {**config["models"], **rungs}
    return config


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in the config file ``path`` as written, read strictly: UTF-8, no repeated
    key at any depth (see :mod:`matteralign.configfile`). Raises ConfigError."""
    try:
        return read_config_file(path)
    except ConfigFileError as err:
        raise ConfigError(str(err)) from None


def load_config(path: str | os.PathLike[str], check_inputs: bool = True,
                local_jobs: bool = True) -> dict[str, Any]:
    """The study config in ``path``, read strictly (:func:`read_config`), validated, defaults
    filled and checked (:func:`check_config`; with ``check_inputs`` also the data, checkpoints
    and a GPU for ``device: cuda``). Raises ConfigError."""
    config = validate_schema(read_config(path))
    check_config(config, base=Path.cwd(), check_inputs=check_inputs)
    if check_inputs:
        problems = device_problems(config, local_jobs=local_jobs)
        if problems:
            raise ConfigError(problems[0])
    return config
