#!/usr/bin/env bash
# Post-deploy step of workflow/envs/mattergen.yaml (run by Snakemake under --sdm conda and by
# `matteralign env build`, with the environment's bin first on PATH).
# 1. torch-scatter and torch-sparse ship only sdists for torch 2.13: both are compiled against
#    the env's torch (no build isolation, so the builds see that torch), side by side, once:
#    the wheels are kept (equiformer's torch-scatter is the same one). torch-sparse's setup
#    uses ninja with MAX_JOBS parallel compiles.
# 2. mattergen 1.0.3 declares a CUDA torch 2.2.1: installed without its declared dependencies.
# 3. Its wheel lacks the package data GemNetT's constructor reads (common/gemnet/gemnet-dT.json:
#    the GemNet-dT scaling factors MatterGen's models start from, as in github.com/microsoft/
#    mattergen, MIT); it is written back. A checkpoint brings its own scaling factors.
set -euo pipefail
export MAX_JOBS="${MAX_JOBS:-2}"
# `matteralign env build` puts uv on PATH, set up for its shared cache; a conda env has pip
pip_install() { if command -v uv >/dev/null; then uv pip install --quiet "$@"; else python -m pip install --quiet "$@"; fi; }
# `matteralign env build` provides compiled-install (each compile kept, done once); conda: pip
compiled_install() { if command -v compiled-install >/dev/null; then compiled-install "$@"; else python -m pip install --quiet --no-deps --no-build-isolation "$@"; fi; }
compiled_install torch-scatter==2.1.2 torch-sparse==0.6.18
pip_install --no-deps mattergen==1.0.3
package="$(python -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("mattergen").origin))')"
cat > "$package/common/gemnet/gemnet-dT.json" <<'JSON'
{
    "comment": "GemNet-dT scaling factors (tri_gaussian128) of github.com/microsoft/mattergen, mattergen/common/gemnet/gemnet-dT.json; missing from the mattergen 1.0.3 wheel",
    "TripInteraction_1_had_rbf": 18.873615264892578,
    "TripInteraction_1_sum_cbf": 7.996850490570068,
    "AtomUpdate_1_sum": 1.220463752746582,
    "TripInteraction_2_had_rbf": 16.10817527770996,
    "TripInteraction_2_sum_cbf": 7.614634037017822,
    "AtomUpdate_2_sum": 0.9690994620323181,
    "TripInteraction_3_had_rbf": 15.01930046081543,
    "TripInteraction_3_sum_cbf": 7.025179862976074,
    "AtomUpdate_3_sum": 0.8903237581253052,
    "OutBlock_0_sum": 1.6437848806381226,
    "OutBlock_0_had": 16.161039352416992,
    "OutBlock_1_sum": 1.1077653169631958,
    "OutBlock_1_had": 13.54678726196289,
    "OutBlock_2_sum": 0.9477927684783936,
    "OutBlock_2_had": 12.754337310791016,
    "OutBlock_3_sum": 0.9059251546859741,
    "OutBlock_3_had": 13.484951972961426
}
JSON
python -c "import torch, torch_scatter, torch_sparse; from mattergen.denoiser import GemNetTDenoiser; assert torch.__version__.startswith('2.13.0'), torch.__version__"
