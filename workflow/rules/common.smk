# Input functions, the (model x dataset) grid and paths. Checked before any job starts.
import json
import os
import re
import shlex
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from matteralign.config import (
    ConfigError,
    check_config,
    device_problems,
    input_problems,
    model_options,
    resolve_device,
    study_grid,
)
from matteralign.metrics import PER_MODEL_METRICS
from matteralign.models import registered_models

BASE = Path(workflow.basedir)
SRC = BASE / "src"
RESULTS = config["results"]
# `--sdm conda` (e.g. from profiles/slurm) always wins: the rules' conda directives then
# provide each family's environment, whatever envs.mode says.
LOCAL_ENVS = (
    config["envs"]["mode"] == "local"
    and DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method
)
ENV_PREFIX = Path(config["envs"]["prefix"])
if not ENV_PREFIX.is_absolute():
    ENV_PREFIX = BASE / ENV_PREFIX

# A real run needs every checkpoint and dataset before any job starts; a dry run shows the grid
# anyway (e.g. the paper's study on a login node without the data) and lists what is missing.
# (the executor, which knows, is set up after the Snakefile is read: look at the command line)
DRY_RUN = bool(workflow.dryrun) or any(
    arg in ("--dry-run", "--dryrun")
    or (arg.startswith("-") and not arg.startswith("--") and arg[1:].isalpha() and "n" in arg)
    for arg in sys.argv[1:]
)


def jobs_run_here():
    """False when an executor submits the jobs to other machines (e.g. SLURM, named with
    --executor/-e or by a --profile's `executor:`), or inside such a job: a GPU is then
    needed on the nodes, not on the machine that reads the Snakefile."""
    if workflow.remote_exec:
        return False
    argv = sys.argv[1:]
    executors = [b for a, b in zip(argv, argv[1:]) if a in ("--executor", "-e")]
    executors += [a.split("=", 1)[1] for a in argv if a.startswith("--executor=")]
    profiles = [b for a, b in zip(argv, argv[1:]) if a == "--profile"]
    profiles += [a.split("=", 1)[1] for a in argv if a.startswith("--profile=")]
    if os.environ.get("SNAKEMAKE_PROFILE"):
        profiles.append(os.environ["SNAKEMAKE_PROFILE"])
    for profile in profiles:
        path = Path(profile) / "config.yaml"
        text = path.read_text() if path.is_file() else ""
        executors += re.findall(r"^executor:\s*([\w-]+)", text, re.M)
    return all(e in ("local", "dryrun", "touch") for e in executors)


try:
    check_config(config, base=Path.cwd(), check_inputs=not DRY_RUN)
    DEVICE_PROBLEMS = device_problems(config, local_jobs=jobs_run_here(), local_envs=LOCAL_ENVS)
    if DEVICE_PROBLEMS and not DRY_RUN:
        raise ConfigError(DEVICE_PROBLEMS[0])
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None
if DRY_RUN:
    for problem in input_problems(config, base=Path.cwd()) + DEVICE_PROBLEMS:
        logger.warning(f"dry run only, a real run would stop here: {problem}")

GRID = study_grid(config)
MODELS = registered_models()
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
    inputs = {"structures": f"{RESULTS}/{wildcards.dataset}/structures.h5"}
    if LOCAL_ENVS:
        inputs["env"] = env_marker(family_of(wildcards.model))
    return inputs


def embedding_files(wildcards):
    return expand(
        "{results}/{dataset}/embeddings/{model}.h5",
        results=RESULTS, dataset=wildcards.dataset, model=GRID[wildcards.dataset],
    )


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


def batch_arg(wildcards):
    batch = model_options(config, wildcards.model).get("batch_size")
    return f"--batch-size {batch}" if batch else ""


def all_targets():
    targets = [f"{RESULTS}/summary.tsv"]
    for dataset, models in GRID.items():
        targets += expand("{r}/{d}/embeddings/{m}.h5", r=RESULTS, d=dataset, m=models)
        targets += expand("{r}/{d}/{metric}.h5", r=RESULTS, d=dataset, metric=METRICS)
        targets += expand("{r}/{d}/figures/{metric}.png", r=RESULTS, d=dataset, metric=METRICS)
    return targets

