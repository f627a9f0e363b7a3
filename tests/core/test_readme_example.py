"""The README's Python example gives the study's numbers: run on files an align run used."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from matteralign.analysis.align import align_dataset
from matteralign.io import EmbeddingFile, read_embeddings, read_metric, write_embeddings
from matteralign.metrics import pairwise

ROOT = Path(__file__).resolve().parents[2]
MODELS = {"chgnet-0.3.0": 24, "sevennet-0": 16, "composition": 7}


def readme_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    found = [b for b in blocks if "load_study" in b]
    assert len(found) == 1, "the README has one Python example that starts from load_study"
    return found[0]


@pytest.fixture
def study_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """results/qm9/embeddings/*.h5 with rows of unequal norms and rows masked in some models
    (composition masks rows the other two embed), then the study's own align run."""
    n = 90
    rng = np.random.default_rng(7)
    latent = rng.normal(size=(n, 5))
    folder = tmp_path / "results" / "qm9" / "embeddings"
    folder.mkdir(parents=True)
    masked = {"chgnet-0.3.0": [3], "sevennet-0": [10, 11], "composition": [20, 21, 22, 40]}
    for model, dim in MODELS.items():
        x = np.tanh(latent @ rng.normal(size=(5, dim))) + 0.3 * rng.normal(size=(n, dim))
        x *= rng.uniform(0.1, 10.0, size=(n, 1))  # row norms differ: l2 matters
        valid = np.ones(n, bool)
        valid[masked[model]] = False
        x[~valid] = np.nan
        write_embeddings(folder / f"{model}.h5", EmbeddingFile(
            ids=[f"qm9:{i}" for i in range(n)], embeddings=x.astype(np.float32), valid=valid,
            errors=["" if v else "masked" for v in valid],
            attrs={"model": model, "dataset": "qm9", "dataset_sha256": "abc"}))
    out = tmp_path / "results" / "qm9"
    align_dataset([folder / f"{m}.h5" for m in MODELS],
                  {"cknna": out / "cknna.h5", "cka": out / "cka.h5"}, k=25)
    monkeypatch.chdir(tmp_path)
    return out


def test_readme_example_equals_the_study_matrix(study_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    scope: dict[str, object] = {}
    exec(compile(readme_example(), "README.md", "exec"), scope)
    matrices = scope["matrices"]
    assert isinstance(matrices, dict)
    order = list(MODELS)
    pair = [order.index("chgnet-0.3.0"), order.index("sevennet-0")]
    for metric in ("cknna", "cka"):
        value, names = matrices[metric]
        assert names == ["chgnet-0.3.0", "sevennet-0"]
        study = read_metric(study_dir / f"{metric}.h5")
        assert study.models == order
        np.testing.assert_allclose(value, study.matrix[np.ix_(pair, pair)], rtol=0, atol=1e-12)
    assert "83 of 90 structures" in capsys.readouterr().out


def test_raw_files_give_another_number(study_dir: Path) -> None:
    """Why the example needs load_study: the raw rows (only the pair's valid ones, no l2) do
    not give the study's value."""
    files = {m: read_embeddings(study_dir / "embeddings" / f"{m}.h5")
             for m in ("chgnet-0.3.0", "sevennet-0")}
    keep = files["chgnet-0.3.0"].valid & files["sevennet-0"].valid
    raw = pairwise({m: f.embeddings[keep] for m, f in files.items()}, metrics=["cknna"], k=25)
    study = read_metric(study_dir / "cknna.h5")
    assert abs(raw["cknna"][0][0, 1] - study.matrix[0, 1]) > 1e-3
