"""Nothing silently wrong: damaged files are refused by name, stale shards are not resumed,
and results are readable by the group that shares them."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from ase.build import bulk, molecule

import matteralign.embed as embed
from matteralign.datasets.store import read_structure_attrs, read_structures, write_structures
from matteralign.io import (
    CorruptFileError,
    EmbeddingFile,
    MetricFile,
    atomic_h5,
    atomic_path,
    read_embeddings,
    read_metric,
    verify_file,
    write_embeddings,
    write_metric,
)
from matteralign.records import Record

FIX = "delete it and rerun snakemake to rebuild it"


def _embedding(n: int = 60, dim: int = 8, seed: int = 0) -> EmbeddingFile:
    rng = np.random.default_rng(seed)
    return EmbeddingFile(ids=[f"s{i}" for i in range(n)],
                         embeddings=rng.normal(size=(n, dim)).astype(np.float32),
                         valid=np.ones(n, bool), errors=[""] * n,
                         energy=rng.normal(size=n), attrs={"model": f"m{seed}"})


def _records() -> list[Record]:
    return [Record("w", atoms=molecule("H2O"), smiles="O", text="water",
                   properties={"energy": -2.0}),
            Record("si", atoms=bulk("Si", "diamond", a=5.43), text="silicon"),
            Record("p", sequence="MKV", text="peptide")]


@pytest.fixture
def files(tmp_path):
    """One file of each kind the study writes."""
    paths = {"embeddings": tmp_path / "results" / "qm9" / "embeddings" / "x.h5",
             "metric": tmp_path / "results" / "qm9" / "cka.h5",
             "structures": tmp_path / "results" / "qm9" / "structures.h5"}
    write_embeddings(paths["embeddings"], _embedding())
    write_metric(paths["metric"], MetricFile(metric="cka", models=["a", "b"],
                                             matrix=np.eye(2), extra={"ci_low": np.eye(2)}))
    write_structures(paths["structures"], _records(), {"dataset": "toy"})
    return paths


READERS = {"embeddings": read_embeddings, "metric": read_metric,
           "structures": read_structures}


@pytest.mark.parametrize("kind", sorted(READERS))
def test_every_writer_records_a_content_hash_and_the_reader_accepts_it(files, kind):
    with h5py.File(files[kind], "r") as handle:
        assert len(handle.attrs["content_sha256"]) == 64
    READERS[kind](files[kind])
    verify_file(files[kind])


@pytest.mark.parametrize("kind", sorted(READERS))
def test_a_truncated_file_is_refused_by_name(files, kind):
    path = files[kind]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError) as refused:
        READERS[kind](path)
    message = str(refused.value)
    assert message.startswith(f"{path} is damaged (") and FIX in message
    assert "truncated?" in message and "\n" not in message
    with pytest.raises(CorruptFileError):
        verify_file(path)
    if kind == "structures":
        with pytest.raises(CorruptFileError, match="truncated"):
            read_structure_attrs(path)


def test_finite_garbage_over_30_rows_is_refused(files):
    path = files["embeddings"]
    with h5py.File(path, "r+") as handle:
        rows = handle["embeddings"][10:40]
        handle["embeddings"][10:40] = rows[::-1] + 0.01  # finite, plausible, wrong
    with pytest.raises(CorruptFileError, match="content hash mismatch") as refused:
        read_embeddings(path)
    assert str(path) in str(refused.value) and FIX in str(refused.value)


@pytest.mark.parametrize(("kind", "dataset"), [("metric", "matrix"), ("metric", "ci_low"),
                                               ("structures", "positions"),
                                               ("structures", "properties/energy"),
                                               ("embeddings", "valid"),
                                               ("embeddings", "ids")])
def test_any_changed_dataset_is_refused(files, kind, dataset):
    path = files[kind]
    with h5py.File(path, "r+") as handle:
        values = handle[dataset][()]
        if values.dtype.kind == "O":
            values[0] = b"changed"
        elif values.dtype == bool:
            values[0] = not values[0]
        else:
            values.flat[0] += 1e-9 if values.dtype.kind == "f" else 1
        handle[dataset][...] = values
    with pytest.raises(CorruptFileError, match="content hash mismatch"):
        READERS[kind](path)


def test_files_written_before_the_hash_existed_are_accepted(files):
    for kind, path in files.items():
        with h5py.File(path, "r+") as handle:
            del handle.attrs["content_sha256"]
        READERS[kind](path)


def test_a_missing_dataset_is_named(files):
    path = files["embeddings"]
    with h5py.File(path, "r+") as handle:
        del handle["valid"]
    with pytest.raises(CorruptFileError, match="dataset 'valid' missing|content hash"):
        read_embeddings(path)


def test_a_missing_file_is_not_called_damaged(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_embeddings(tmp_path / "nope.h5")


def test_the_metrics_job_refuses_a_damaged_input_before_computing(files, tmp_path):
    from matteralign.analysis.align import align_dataset

    good = files["embeddings"].with_name("y.h5")
    write_embeddings(good, _embedding(seed=1))
    damaged = files["embeddings"]
    with h5py.File(damaged, "r+") as handle:
        handle["embeddings"][10:40] = np.ones((30, 8), np.float32)
    out = tmp_path / "cka.h5"
    with pytest.raises(CorruptFileError, match=str(damaged)):
        align_dataset([good, damaged], {"cka": out}, k=5)
    assert not out.exists()


def _nudge(path, dataset: str) -> None:
    """Change one number of a dataset in place, leaving the recorded content hash stale."""
    with h5py.File(path, "r+") as handle:
        values = handle[dataset][()]
        values.flat[0] += 1e-6
        handle[dataset][...] = values


def test_the_analysis_readers_refuse_damaged_study_files(tmp_path, capsys):
    """performance.h5 damaged: the convergence job and its command refuse it by name;
    convergence.h5 damaged: its reader and the answers page's reader refuse it by name."""
    from matteralign.analysis.convergence import read_convergence, write_convergence
    from matteralign.analysis.evidence import read_table
    from matteralign.analysis.performance import read_performance
    from matteralign.cli import main
    from tests.analysis.conftest import write_aligned_study

    study = write_aligned_study(tmp_path, n=60, bootstrap=0, permutations=0)
    performance, cknna = study / "performance.h5", study / "cknna.h5"
    convergence = study / "convergence.h5"
    write_convergence(performance, cknna, convergence)
    read_convergence(convergence)
    read_table(convergence)

    _nudge(performance, "energy_mae")
    with pytest.raises(CorruptFileError, match="content hash mismatch") as refused:
        write_convergence(performance, cknna, tmp_path / "again.h5")
    assert str(refused.value).startswith(f"{performance} is damaged") and FIX in str(refused.value)
    assert not (tmp_path / "again.h5").exists()
    with pytest.raises(CorruptFileError, match=str(performance)):
        read_performance(performance)
    assert main(["convergence", "--performance", str(performance), "--metric-file", str(cknna),
                 "--out", str(tmp_path / "c.h5"), "--figure", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert str(performance) in err and FIX in err and err.count("\n") == 1

    _nudge(convergence, "mae")
    for reader in (read_convergence, read_table):
        with pytest.raises(CorruptFileError, match="content hash mismatch") as refused:
            reader(convergence)
        assert str(convergence) in str(refused.value)


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_results_get_the_umask_permissions_not_mkstemps(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        with atomic_h5(tmp_path / "a.h5") as handle:
            handle.create_dataset("x", data=[1])
        with atomic_path(tmp_path / "b.tsv") as tmp, open(tmp, "w") as handle:
            handle.write("x\n")
        write_embeddings(tmp_path / "e.h5", _embedding())
    finally:
        os.umask(old)
    for name in ("a.h5", "b.tsv", "e.h5"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name


# -- resumed embedding jobs never mix code or package versions -------------------------------


@pytest.fixture
def structures(tmp_path):
    records = [Record(f"m{i}", atoms=molecule(["H2O", "CH4", "NH3", "C6H6"][i % 4]))
               for i in range(24)]
    for i, record in enumerate(records):
        record.atoms.rattle(0.05, seed=i)
    path = tmp_path / "structures.h5"
    write_structures(path, records, {"dataset": "toy"})
    return path


def _killed_run(structures, output, monkeypatch) -> dict:
    """Embed with ``composition`` until the second shard, as a killed job would; return the
    call counter of the embedding function (counting on after the kill)."""
    calls = {"n": 0}
    original = embed._embed_rows

    def dies_on_second_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(embed, "_embed_rows", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        embed.embed_dataset("composition", structures, output, batch_size=8, progress=False)
    assert len(list(output.parent.glob(f"{output.name}.parts/shard-*.h5"))) == 1
    calls["n"] = -100
    return calls


@pytest.mark.parametrize("changed", ["code_sha256", "packages_sha256"])
def test_a_resume_across_a_code_or_package_change_starts_over(structures, tmp_path,
                                                              monkeypatch, capsys, changed):
    monkeypatch.setattr(embed, "SHARD_SIZE", 8)
    clean = embed.embed_dataset("composition", structures, tmp_path / "clean.h5",
                                progress=False)
    output = tmp_path / "out.h5"
    calls = _killed_run(structures, output, monkeypatch)
    capsys.readouterr()
    if changed == "code_sha256":
        monkeypatch.setattr(embed, "code_sha256", lambda adapter: "0" * 64)
    else:
        monkeypatch.setattr(embed, "packages_sha256", lambda: "1" * 64)
    result = embed.embed_dataset("composition", structures, output, batch_size=8,
                                 progress=False)
    assert calls["n"] == -100 + 3  # all three shards computed again, none reused
    assert result.attrs["resumed_structures"] == 0
    what = "code" if changed == "code_sha256" else "package"
    assert f"shards from another {what} version: recomputing" in capsys.readouterr().err
    back = read_embeddings(output)
    assert back.attrs[changed] == ("0" * 64 if what == "code" else "1" * 64)
    np.testing.assert_array_equal(back.embeddings, clean.embeddings)


def test_an_unchanged_resume_reuses_shards_and_records_the_versions(structures, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setattr(embed, "SHARD_SIZE", 8)
    output = tmp_path / "out.h5"
    calls = _killed_run(structures, output, monkeypatch)
    result = embed.embed_dataset("composition", structures, output, batch_size=8,
                                 progress=False)
    assert calls["n"] == -100 + 2 and result.attrs["resumed_structures"] == 8
    attrs = read_embeddings(output).attrs
    adapter = embed.get_model("composition")
    assert attrs["code_sha256"] == embed.code_sha256(adapter)
    assert attrs["packages_sha256"] == embed.packages_sha256()


def test_a_damaged_shard_is_recomputed(structures, tmp_path, monkeypatch):
    monkeypatch.setattr(embed, "SHARD_SIZE", 8)
    output = tmp_path / "out.h5"
    calls = _killed_run(structures, output, monkeypatch)
    shard = next((tmp_path / "out.h5.parts").glob("shard-*.h5"))
    with h5py.File(shard, "r+") as handle:
        handle["vectors"][0:4] = 0.5
    result = embed.embed_dataset("composition", structures, output, batch_size=8,
                                 progress=False)
    assert calls["n"] == -100 + 3 and result.attrs["resumed_structures"] == 0


def test_the_code_hash_covers_the_adapter_and_its_bases():
    from matteralign.models import get_model

    adapter = get_model("composition")
    names = {path.name for path in embed._source_files(adapter)}
    assert {"baseline.py", "base.py", "embed.py", "records.py", "store.py"} <= names
    sevenn = {path.name for path in embed._source_files(get_model("sevennet-0"))}
    assert "sevenn.py" in sevenn and "baseline.py" not in sevenn
    assert embed.code_sha256(adapter) != embed.code_sha256(get_model("sevennet-0"))


def test_the_package_hash_follows_the_installed_versions(monkeypatch):
    import importlib.metadata

    class Dist:
        def __init__(self, name, version):
            self.metadata, self.version = {"Name": name}, version

    embed.packages_sha256.cache_clear()
    try:
        monkeypatch.setattr(importlib.metadata, "distributions",
                            lambda: [Dist("torch", "2.13.0"), Dist("numpy", "1.26.4")])
        first = embed.packages_sha256()
        embed.packages_sha256.cache_clear()
        monkeypatch.setattr(importlib.metadata, "distributions",
                            lambda: [Dist("numpy", "1.26.4"), Dist("Torch", "2.13.0")])
        assert embed.packages_sha256() == first  # order and case do not matter
        embed.packages_sha256.cache_clear()
        monkeypatch.setattr(importlib.metadata, "distributions",
                            lambda: [Dist("numpy", "1.26.4"), Dist("torch", "2.13.1")])
        assert embed.packages_sha256() != first
    finally:
        embed.packages_sha256.cache_clear()
