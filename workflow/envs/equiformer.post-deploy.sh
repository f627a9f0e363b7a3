#!/usr/bin/env bash
# Post-deploy step of workflow/envs/equiformer.yaml (run by Snakemake under --sdm conda and by
# `matteralign env build`, with the environment's bin first on PATH). torch-scatter ships only
# an sdist for torch 2.13: it is compiled against the env's torch (no build isolation, so the
# build sees that torch; uv does not cache such builds, hence the wheel folder below).
# fairchem-core 1.10.0 declares torch~=2.4: installed without its declared dependencies; what EquiformerV2 imports is pinned in equiformer.yaml.
set -euo pipefail
export MAX_JOBS="${MAX_JOBS:-2}"
# `matteralign env build` puts uv on PATH, set up for its shared cache; a conda env has pip
pip_install() { if command -v uv >/dev/null; then uv pip install --quiet "$@"; else python -m pip install --quiet "$@"; fi; }
# `matteralign env build` provides compiled-install (each compile kept, done once); conda: pip
compiled_install() { if command -v compiled-install >/dev/null; then compiled-install "$@"; else python -m pip install --quiet --no-deps --no-build-isolation "$@"; fi; }
compiled_install torch-scatter==2.1.2
pip_install --no-deps fairchem-core==1.10.0
python -c "import torch_scatter; from fairchem.core.models.equiformer_v2.equiformer_v2 import EquiformerV2Backbone"
