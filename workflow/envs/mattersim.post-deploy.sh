# mattersim 1.2.3 without its declared dependencies (they pull a newer CUDA torch and a
# training/workflow stack it does not need for inference): what it imports for inference is
# pinned in mattersim.yaml.
# `matteralign env build` puts uv on PATH, set up for its shared cache; a conda env has pip
pip_install() { if command -v uv >/dev/null; then uv pip install --quiet "$@"; else python -m pip install --quiet "$@"; fi; }
pip_install --no-deps mattersim==1.2.3
python -c "import mattersim.forcefield, torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
