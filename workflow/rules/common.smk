# The study's paths, the (model x dataset) grid and input functions. The config is checked
# while the Snakefile is read; checkpoints, data and a GPU for `device: cuda` just before the
# first job (onstart below), so a dry run shows the grid anywhere.
import json
import shlex
import sys
from pathlib import Path

from snakemake_interface_executor_plugins.settings import DeploymentMethod

from matteralign.config import (
    ConfigError,
    atom_grid,
    atom_resampling,
    check_config,
    device_problems,
    input_problems,
    model_options,
    prepare_checks,
    resolve_device,
    resolved_paths,
    study_grid,
    with_ladder,
)
from matteralign.models import registered_models
from matteralign.training.ladder import held_out_pairs, ladder_models

BASE = Path(workflow.basedir)
SRC = BASE / "src"
RESULTS = config["results"]
# Every file of the study, once: rules match these patterns, input functions and `expand`
# fill them in (see `pattern` for a pattern with some wildcards fixed).
STRUCTURES = f"{RESULTS}/{{dataset}}/structures.h5"
IDS = f"{RESULTS}/{{dataset}}/ids.txt"
EMBEDDING = f"{RESULTS}/{{dataset}}/embeddings/{{model}}.h5"
#: a dataset's metric files (cknna.h5, ...) and its analysis files (performance.h5, ...)
DATASET_FILE = f"{RESULTS}/{{dataset}}/{{name}}.h5"
#: a dataset's figures: one per metric file, and the analysis figures
FIGURE = f"{RESULTS}/{{dataset}}/figures/{{name}}.png"
#: the atom-level study (datasets with `atoms: true`): per-atom features of each potential,
#: metric files over atoms, the same within each element, and their figures
ATOM_EMBEDDING = f"{RESULTS}/{{dataset}}/atoms/{{model}}.h5"
ATOM_FILE = f"{RESULTS}/{{dataset}}/atoms/{{name}}.h5"
ATOM_ELEMENT_FILE = f"{RESULTS}/{{dataset}}/atoms/by_element/{{name}}.h5"
ATOM_FIGURE = f"{RESULTS}/{{dataset}}/atoms/figures/{{name}}.png"
SUMMARY = f"{RESULTS}/summary.tsv"
#: the ladder (models the study trains itself): its QM9 sets and one folder per rung
LADDER_SETS = f"{RESULTS}/ladder/qm9_sets.h5"
LADDER_RUNG = f"{RESULTS}/ladder/{{rung}}"
LADDER_SUMMARY = f"{RESULTS}/ladder/ladder.h5"
LADDER_FIGURE = f"{RESULTS}/qm9/figures/ladder.png"
#: the held-out design: rungs trained without an element against their twins
LADDER_HELD_OUT = f"{RESULTS}/ladder/held_out.h5"
LADDER_HELD_OUT_FIGURE = f"{RESULTS}/qm9/figures/held_out.png"
LOGS = f"{RESULTS}/logs"
BENCHMARKS = f"{RESULTS}/benchmarks"


def pattern(template, **wildcards):
    """``template`` with the given wildcards filled in and the others left for the rule."""
    (path,) = expand(template, allow_missing=True, **wildcards)
    return path


METRIC_FILE = pattern(DATASET_FILE, name="{metric}")
METRIC_FIGURE = pattern(FIGURE, name="{metric}")
ATOM_METRIC_FILE = pattern(ATOM_FILE, name="{metric}")
ATOM_METRIC_FIGURE = pattern(ATOM_FIGURE, name="{metric}")
# `--sdm conda` (e.g. from profiles/slurm) always wins: the rules' conda directives then
# provide each family's environment, whatever envs.mode says. (`deployment_settings` and, in
# onstart, `executor_plugin` are the workflow's members that snakemake-interface-executor-plugins
# declares: the versioned interface, not Snakemake's internals.)
LOCAL_ENVS = (
    config["envs"]["mode"] == "local"
    and DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method
)
ENV_PREFIX = Path(config["envs"]["prefix"])
if not ENV_PREFIX.is_absolute():
    ENV_PREFIX = BASE / ENV_PREFIX

try:
    check_config(config, base=Path.cwd(), check_inputs=False)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None
# where the relative folders point, first thing in every (dry) run's output
for line in resolved_paths(config, base=Path.cwd(), prefix_root=BASE, envs=LOCAL_ENVS):
    logger.info(line)
# What a real run needs besides a valid config: every checkpoint and dataset here, and torch
# that can use a GPU for `device: cuda`. Listed now (a dry run, e.g. of the paper's study on a
# login node without the data, goes on); a real run stops at onstart, before its first job.
INPUT_PROBLEMS = input_problems(config, base=Path.cwd())
for problem in INPUT_PROBLEMS + device_problems(config, local_envs=LOCAL_ENVS):
    logger.warning(f"a dry run goes on, a real run would stop here: {problem}")


def stop_unless_runnable():
    """Refuse a real run whose inputs are missing, or `device: cuda` where its jobs cannot
    use a GPU: with a local executor torch here must see one; a cluster executor's jobs run on
    other machines, so only the local family envs' torch builds are checked. Onstart runs
    only in real runs, in the main process (dry runs and the executor's jobs skip it)."""
    local_jobs = workflow.executor_plugin.common_settings.local_exec
    problems = INPUT_PROBLEMS + device_problems(config, local_jobs=local_jobs,
                                                local_envs=LOCAL_ENVS)
    if problems:
        raise WorkflowError(f"invalid configuration: {problems[0]}")


# One results folder, one run: a lock in the results folder itself (Snakemake's is per working
# directory), taken once the run is known to be runnable, released when it ends. Only the main
# process takes it: the jobs Snakemake spawns (--mode subprocess/remote, e.g. inside a SLURM
# job) run with --no-hooks, and is_main_process says the same should that ever change.
from matteralign.errors import MatterAlignError
from matteralign.runlock import RunLock

RESULTS_LOCK = RunLock(RESULTS, checkout=BASE)


onstart:
    stop_unless_runnable()
    if getattr(workflow, "is_main_process", True):
        try:
            RESULTS_LOCK.acquire(note=logger.warning)
        except MatterAlignError as err:
            raise WorkflowError(str(err)) from None


onsuccess:
    RESULTS_LOCK.release()


onerror:
    RESULTS_LOCK.release()


# the ladder's rungs (models the study trains itself, rules in ladder.smk) join the models
# here: their checkpoints are this workflow's outputs, not inputs to check above
with_ladder(config)
GRID = study_grid(config)
#: dataset -> its models with per-atom features, for the datasets with `atoms: true`
ATOM_GRID = atom_grid(config)
ATOM_BOOTSTRAP, ATOM_PERMUTATIONS = atom_resampling(config)
MODELS = registered_models()
LADDER_RUNGS = ladder_models(config)
METRICS = config["metrics"]["names"]
# `auto` is resolved once, here: cuda when torch in this interpreter sees a GPU (and no local
# family env of the grid has a CPU-only torch), else cpu
DEVICE = resolve_device(config, local_envs=LOCAL_ENVS)

# Snakemake's own interpreter runs the driver-side rules in local mode; under --sdm conda,
# the rule's conda env provides `python`. matteralign always runs from this checkout's source.
DRIVER_PYTHON = shlex.quote(sys.executable) if LOCAL_ENVS else "python"
# provenance.git_commit() finds this checkout from its own file and records "+dirty" changes
RUN = f"PYTHONPATH={shlex.quote(str(SRC))}"


wildcard_constraints:
    dataset="|".join(config["datasets"]) or "none",
    model="|".join(map(str, config["models"])) or "none",
    metric="|".join(METRICS),
    family="[A-Za-z0-9_-]+",


def family_of(model):
    return MODELS[model].family


def env_file(family):
    return str(BASE / "workflow" / "envs" / f"{family}.yaml")


def env_marker(family):
    return str(ENV_PREFIX / family / "matteralign-env.json")


def model_python(wildcards):
    if LOCAL_ENVS:
        return shlex.quote(str(ENV_PREFIX / family_of(wildcards.model) / "bin" / "python"))
    return "python"


def embedding_inputs(wildcards):
    inputs = {"structures": pattern(STRUCTURES, dataset=wildcards.dataset)}
    if LOCAL_ENVS:
        inputs["env"] = env_marker(family_of(wildcards.model))
    if wildcards.model in LADDER_RUNGS:  # a model the study trains: its checkpoint first
        inputs["checkpoint"] = model_options(config, wildcards.model)["weights"]
    return inputs


def embedding_files(wildcards):
    return expand(EMBEDDING, dataset=wildcards.dataset, model=GRID[wildcards.dataset])


def pretrained_embedding_files(wildcards):
    """The dataset's embedding files without the ladder's rungs: the analyses whose cost
    grows with the square of the models (probe transfer) or whose figure has a panel per
    model (maps) read the ladder through its own files and figures instead."""
    return expand(EMBEDDING, dataset=wildcards.dataset,
                  model=[m for m in GRID[wildcards.dataset] if m not in LADDER_RUNGS])


def weights_arg(wildcards):
    weights = model_options(config, wildcards.model).get("weights")
    return f"--weights {shlex.quote(str(weights))}" if weights else ""


def env_sha256(wildcards):
    """The env file's content hash (post-deploy script included): rule build_env reruns when
    it changes, not when the file is only touched."""
    from matteralign.envs import read_env_file

    return read_env_file(env_file(wildcards.family)).sha256


def options_arg(wildcards):
    entry = model_options(config, wildcards.model)
    args = []
    if entry.get("options"):
        args.append(f"--options {shlex.quote(json.dumps(entry['options'], sort_keys=True))}")
    if entry.get("sha256"):
        args.append(f"--sha256 {entry['sha256']}")
    return " ".join(args)


def atoms_arg(wildcards):
    """`--atoms-out` for a potential on a dataset of the atom-level study (rule
    embed_with_atoms), else nothing."""
    if wildcards.model not in ATOM_GRID.get(wildcards.dataset, []):
        return ""
    total = config["datasets"][wildcards.dataset]["max_atoms_total"]
    path = pattern(ATOM_EMBEDDING, dataset=wildcards.dataset, model=wildcards.model)
    return f"--atoms-out {shlex.quote(path)} --max-atoms-total {total}"


def atom_embedding_files(wildcards):
    return expand(ATOM_EMBEDDING, dataset=wildcards.dataset, model=ATOM_GRID[wildcards.dataset])


def alternatives(names):
    """A wildcard regex matching exactly ``names`` (none: a pattern nothing matches)."""
    return "|".join(map(str, names)) or "(?!)"


def batch_arg(wildcards):
    batch = model_options(config, wildcards.model).get("batch_size")
    return f"--batch-size {batch}" if batch else ""


def all_targets():
    targets = [SUMMARY]
    for dataset, models in GRID.items():
        targets += expand(EMBEDDING, dataset=dataset, model=models)
        targets += expand(METRIC_FILE, dataset=dataset, metric=METRICS)
        targets += expand(METRIC_FIGURE, dataset=dataset, metric=METRICS)
    for dataset in ATOM_GRID:
        targets += expand(ATOM_METRIC_FIGURE, dataset=dataset, metric=METRICS)
        targets.append(pattern(FIGURE, dataset=dataset, name="pooled_vs_atoms"))
        if config["datasets"][dataset]["by_element"]:
            targets += expand(ATOM_ELEMENT_FILE, dataset=dataset, name=METRICS)
    return targets

