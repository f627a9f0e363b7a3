#!/usr/bin/env bash
# Post-deploy step of workflow/envs/smiles.yaml (Snakemake runs it after creating the conda
# env; matteralign's local env builder runs it after the pip section, env's bin first on PATH).
# rxnfp 0.1.0 ships the BERT weights the "smiles" adapters read, but pins scipy==1.4.1,
# scikit-learn==0.23.1, matplotlib==3.2.2 and faerun, none of which the adapters import and
# none of which install on Python 3.11: install the wheel alone.
set -euo pipefail
# `matteralign env build` puts uv on PATH, set up for its shared cache; a conda env has pip
pip_install() { if command -v uv >/dev/null; then uv pip install --quiet "$@"; else python -m pip install --quiet "$@"; fi; }
pip_install --no-deps rxnfp==0.1.0
python -c "import rxnfp, sys; sys.exit(rxnfp.__version__ != '0.1.0')"
