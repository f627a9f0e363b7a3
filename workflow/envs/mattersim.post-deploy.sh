# mattersim 1.2.3 without its declared dependencies (they pull a newer CUDA torch and a
# training/workflow stack it does not need for inference): what it imports for inference is
# pinned in mattersim.yaml.
python -m pip install --quiet --no-deps mattersim==1.2.3
python -c "import mattersim.forcefield, torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
