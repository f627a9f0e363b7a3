# Set-up and entry points. Only python3 (>=3.10) with venv and pip is needed on a fresh machine.
#   make study   build .venv (and, through the workflow, the environments of the configured
#                models), run the default study, write results/report.html
#   make test    build the same, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
SNAKEMAKE := $(BIN)/snakemake --cores $(CORES) --printshellcmds --show-failed-logs

.PHONY: setup envs study report test lint clean-results

$(VENV)/.installed: pyproject.toml workflow/envs/study.post-deploy.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first and pinned: a later resolver step must never pull a multi-GB CUDA build
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[study,test]' torch==2.13.0
	# Packages installed only for the data files inside their wheels (CoRE MOF CIFs, PDB
	# entries, MOSES SMILES): their own code and its old pins are not needed. The same
	# post-deploy script completes the conda env of study.yaml under --sdm conda.
	$(BIN)/python -m pip install --quiet --no-deps core-mof==2019.1
	PATH="$(abspath $(BIN)):$$PATH" CONDA_PREFIX="$(abspath $(VENV))" \
	  bash -euo pipefail workflow/envs/study.post-deploy.sh
	touch $@

setup: $(VENV)/.installed

# Every model family's isolated environment, from workflow/envs/{family}.yaml (the tests
# exercise each adapter in its own environment), ENV_JOBS at a time, installed by uv from one
# shared cache (UV_CACHE_DIR, else uv's own; see docs/cluster.md).
ENV_JOBS ?= 2
envs: setup
	$(BIN)/matteralign env build --all --jobs $(ENV_JOBS) --root .envs

# the workflow builds the environments of the configured models itself (rule build_env)
study: setup
	$(SNAKEMAKE)
	$(BIN)/snakemake --report results/report.html

report: setup
	$(BIN)/snakemake --report results/report.html

# PYTEST_ARGS: e.g. "-n 4 --dist loadfile" on a machine with more cores (pytest-xdist, whole
# test files per worker); on 2 cores two workers were no faster (the family subprocesses
# already use both cores)
PYTEST_ARGS ?=
test: envs
	$(BIN)/python tests/compile_kernels.py
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean-results:
	rm -rf results
