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
# compiled against this env's torch at most once: `matteralign env build` keeps the wheels in
# $MATTERALIGN_WHEELS (beside its uv cache); a conda env compiles into a temporary folder
wheels="${MATTERALIGN_WHEELS:-$(mktemp -d)}/torch-$(python -c 'import torch; print(torch.__version__)')"
mkdir -p "$wheels"
compiled() {  # PKG==VER: build its wheel into $wheels unless there; one build at a time
  (flock 9; ls "$wheels/${1/==/-}-"*.whl >/dev/null 2>&1 && exit 0
   rm -rf "$wheels/.partial-$1"
   python -m pip wheel --quiet --no-deps --no-build-isolation -w "$wheels/.partial-$1" "$1"
   mv "$wheels/.partial-$1"/*.whl "$wheels/" && rmdir "$wheels/.partial-$1") 9>"$wheels/.$1.lock"
}
compiled torch_scatter==2.1.2
pip_install --no-deps "$wheels"/torch_scatter-2.1.2-*.whl
pip_install --no-deps fairchem-core==1.10.0
python -c "import torch_scatter; from fairchem.core.models.equiformer_v2.equiformer_v2 import EquiformerV2Backbone"
