"""A small synthetic study (structures, embeddings, metric files) shared by the analysis tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from matteralign.analysis.align import align_dataset
from matteralign.datasets.store import write_structures
from matteralign.io import EmbeddingFile, atomic_h5, set_attrs, strings, write_embeddings
from matteralign.records import Record

#: registered model names (so training domains resolve) -> (noise on the shared latent or
#: None for an independent embedding, modality, energy MAE, random-init)
MODELS: dict[str, tuple[float | None, str, float, bool]] = {
    "ani-1x": (0.2, "atoms", 0.02, False),
    "chgnet-0.3.0": (0.5, "atoms", 0.05, False),
    "sevennet-0": (1.0, "atoms", 0.10, False),
    "minimol": (0.8, "smiles", np.nan, False),
    "minilm-l6-v2": (2.0, "text", np.nan, False),
    "morgan-fp": (None, "smiles", np.nan, False),
    "mace-off23-small": (None, "atoms", 5.0, True),
}
METRICS = ("cknna", "cka", "information_imbalance", "intrinsic_dim")


def write_aligned_study(root: Path, n: int = 120, bootstrap: int = 2,
                        permutations: int = 19) -> Path:
    """A toy study's files; P = 19, the fewest permutations with which p = 1/(P+1) reaches
    0.05, so that "above chance" can be true."""
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(n, 5))
    records = [Record(id=f"s{i}", smiles="C", text="methane",
                      properties={"energy": float(latent[i, 0]), "gap": float(latent[i, 1])})
               for i in range(n)]
    write_structures(root / "structures.h5", records,
                     {"dataset": "toy", "kind": "molecules",
                      "properties_description": json.dumps({"energy": "energy (eV)"})})
    paths = []
    for name, (noise, modality, _, random_init) in MODELS.items():
        x = (rng.normal(size=(n, 10)) if noise is None else
             np.tanh(latent @ rng.normal(size=(5, 16)) + noise * rng.normal(size=(n, 16))))
        path = root / "embeddings" / f"{name}.h5"
        write_embeddings(path, EmbeddingFile(
            ids=[f"s{i}" for i in range(n)], embeddings=x.astype(np.float32),
            valid=np.ones(n, bool), errors=[""] * n,
            attrs={"model": name, "modality": modality, "dataset": "toy",
                   "dataset_sha256": "toy", "random_init": random_init}))
        paths.append(path)
    align_dataset(paths, {m: root / f"{m}.h5" for m in METRICS}, k=8, bootstrap=bootstrap,
                  permutations=permutations, seed=0)
    names = list(MODELS)
    with atomic_h5(root / "performance.h5") as handle:
        handle.create_dataset("models", data=strings(names))
        handle.create_dataset("control", data=strings(
            ["random-init" if MODELS[m][3] else "baseline" if m == "morgan-fp" else ""
             for m in names]))
        handle.create_dataset("energy_mae", data=np.array([MODELS[m][2] for m in names]))
        handle.create_dataset("probe_mae", data=np.linspace(0.1, 0.7, len(names)))
        set_attrs(handle, {"dataset": "toy", "seed": 0})
    return root


@pytest.fixture(scope="session")
def aligned_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_aligned_study(tmp_path_factory.mktemp("study"))
