"""The atom-level study: per-atom files from the embedding job, metrics over atoms with the
bootstrap over structures, by element, and the pooled vs atom-level comparison."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

import matteralign.embed as embed
from matteralign.analysis.atoms import (
    align_atoms,
    compare_levels,
    load_atom_study,
    min_element_atoms,
    write_level_table,
)
from matteralign.analysis.study import AlignmentError
from matteralign.cli import main
from matteralign.datasets.store import write_structures
from matteralign.io import (
    AtomEmbeddingFile,
    read_atom_embeddings,
    read_embeddings,
    read_metric,
    read_metric_groups,
    write_atom_embeddings,
)
from matteralign.metrics import pairwise
from matteralign.models.atoms import AtomsAdapter
from matteralign.models.weights import RANDOM_INIT
from matteralign.records import Record

NAMES = ["H2O", "CH4", "NH3", "C2H6", "CH3OH", "HCN", "C6H6", "CH3CHO"]


class LocalDescriptor(AtomsAdapter):
    """A deterministic stand-in potential: each atom's features are a fixed random map of
    its element and its smooth neighbour density (so atoms of one structure differ)."""

    name = "toy-local"
    family = "test"
    architecture = "random projection of a smooth neighbour density (test only)"
    layer = "projection"
    weights_name = RANDOM_INIT
    width = 6

    def _load(self) -> None:
        self._proj = np.random.default_rng(len(self.name)).normal(size=(4, self.width))

    def atom_features(self, records):
        feats = []
        for record in records:
            atoms = record.atoms
            d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
            density = np.exp(-d).sum(axis=1) - 1.0
            local = np.stack([atoms.numbers / 8.0, density, density**2,
                              np.sin(atoms.numbers * density)], axis=1)
            feats.append(np.tanh(local @ self._proj))
        return feats, None


@pytest.fixture
def structures(tmp_path):
    records = []
    for i in range(48):
        atoms = molecule(NAMES[i % len(NAMES)])
        atoms.rattle(0.08, seed=i)
        records.append(Record(f"m{i}", atoms=atoms, text=f"molecule {i}"))
    records.append(Record("no-atoms", text="only text"))
    path = tmp_path / "structures.h5"
    write_structures(path, records, {"dataset": "toy"})
    return path


@pytest.fixture
def toy_model(monkeypatch):
    made = {}

    def get_model(name, **kwargs):
        cls = type(name, (LocalDescriptor,), {"name": name})
        made[name] = cls(weights=kwargs.get("weights"), device=kwargs.get("device", "cpu"))
        return made[name]

    monkeypatch.setattr(embed, "get_model", get_model)
    return made


def _embed(structures, folder, name, **kwargs):
    return embed.embed_dataset(name, structures, folder / f"{name}.h5", progress=False,
                               atoms_output=folder / f"{name}.atoms.h5", **kwargs)


def test_per_atom_rows_pool_exactly_to_the_pooled_file(structures, tmp_path, toy_model):
    pooled = _embed(structures, tmp_path, "toy-a")
    atoms = read_atom_embeddings(tmp_path / "toy-a.atoms.h5")
    assert atoms.embeddings.dtype == np.float64
    valid = np.flatnonzero(pooled.valid)
    assert sorted(np.unique(atoms.structure_index)) == sorted(valid)
    for i in valid:
        rows = atoms.structure_index == i
        np.testing.assert_array_equal(
            atoms.embeddings[rows].mean(axis=0).astype(np.float32), pooled.embeddings[i])
        assert set(atoms.structure_ids[j] for j in np.flatnonzero(rows)) == {pooled.ids[i]}
        assert atoms.atom_index[rows].tolist() == list(range(rows.sum()))
    assert atoms.elements[:3] == ["O", "H", "H"] or "O" in atoms.elements
    assert atoms.attrs["model"] == "toy-a" and atoms.attrs["weights"] == RANDOM_INIT


def test_max_atoms_total_picks_the_same_structures_for_every_model(structures, tmp_path,
                                                                   toy_model):
    a = _embed(structures, tmp_path, "toy-a", max_atoms_total=120)
    _embed(structures, tmp_path, "toy-b", max_atoms_total=120)
    first = read_atom_embeddings(tmp_path / "toy-a.atoms.h5")
    second = read_atom_embeddings(tmp_path / "toy-b.atoms.h5")
    assert 100 < len(first.structure_ids) <= 120
    np.testing.assert_array_equal(first.structure_index, second.structure_index)
    # not simply the first rows of the dataset: the sha256(id) order
    chosen = np.unique(first.structure_index)
    assert chosen.tolist() != list(range(len(chosen)))
    assert a.valid.sum() == 48  # pooling is not bounded


def test_killed_job_resumes_with_its_atoms(structures, tmp_path, monkeypatch, toy_model):
    monkeypatch.setattr(embed, "SHARD_SIZE", 8)
    _embed(structures, tmp_path, "clean")
    calls = {"n": 0}
    original = embed._embed_rows

    def dies_on_third_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(embed, "_embed_rows", dies_on_third_batch)
    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(KeyboardInterrupt):
        _embed(structures, folder, "clean", batch_size=8)
    calls["n"] = -100
    resumed = _embed(structures, folder, "clean", batch_size=8)
    assert resumed.attrs["resumed_structures"] == 16
    clean = read_atom_embeddings(tmp_path / "clean.atoms.h5")
    again = read_atom_embeddings(folder / "clean.atoms.h5")
    np.testing.assert_array_equal(again.embeddings, clean.embeddings)
    np.testing.assert_array_equal(again.structure_index, clean.structure_index)


def test_a_model_without_atom_features_is_refused(structures, tmp_path):
    with pytest.raises(embed.PerAtomUnavailable, match="per-atom features"):
        embed.embed_dataset("composition", structures, tmp_path / "c.h5",
                            atoms_output=tmp_path / "c.atoms.h5", progress=False)
    assert not (tmp_path / "c.h5").exists()


# -- metrics over atoms ----------------------------------------------------------------------


def _atom_file(model, x, structure, numbers, dataset_sha="d0"):
    counts = np.bincount(structure)
    return AtomEmbeddingFile(
        embeddings=x, structure_ids=[f"s{s}" for s in structure], structure_index=structure,
        atom_index=np.concatenate([np.arange(c) for c in counts]),
        atomic_number=numbers, attrs={"model": model, "dataset": "toy",
                                      "dataset_sha256": dataset_sha, "modality": "atoms"})


@pytest.fixture
def atom_files(tmp_path):
    """Three models over 60 structures of 2-7 atoms (C and H): two noisy views of a shared
    per-atom latent and an unrelated one."""
    rng = np.random.default_rng(1)
    sizes = rng.integers(2, 8, size=60)
    structure = np.repeat(np.arange(60), sizes)
    numbers = np.where(rng.random(len(structure)) < 0.5, 6, 1)
    latent = rng.normal(size=(len(structure), 4)) + numbers[:, None] / 3
    jitter = 0.1 * rng.normal(size=(len(structure), 6))
    xs = {"a": latent @ rng.normal(size=(4, 8)),
          "b": np.tanh(latent @ rng.normal(size=(4, 6))) + jitter,
          "noise": rng.normal(size=(len(structure), 5))}
    paths = []
    for model, x in xs.items():
        paths.append(tmp_path / f"{model}.h5")
        write_atom_embeddings(paths[-1], _atom_file(model, x, structure, numbers))
    return paths, xs, structure, numbers


def test_atom_level_matrices_use_structure_groups(atom_files, tmp_path):
    paths, xs, structure, _ = atom_files
    outs = {m: tmp_path / f"{m}.out.h5" for m in ("cknna", "cka", "intrinsic_dim")}
    written = align_atoms(paths, outs, k=5, bootstrap=4, permutations=4, seed=2)
    study = load_atom_study(paths)
    reference = pairwise(study.arrays, metrics=list(outs), k=5, bootstrap=4, permutations=4,
                         seed=2, groups=structure)
    for metric in outs:
        back = read_metric(outs[metric])
        value = back.matrix if back.matrix is not None else back.values
        np.testing.assert_allclose(value, reference[metric][0], atol=1e-12)
        np.testing.assert_allclose(back.extra["ci_low"], reference[f"{metric}/ci_low"][0],
                                   atol=1e-12)
        assert back.attrs["level"] == "atoms" and back.attrs["n_atoms"] == len(structure)
        assert back.attrs["n_structures"] == 60 and "structures" in back.attrs["resampling"]
    cknna = written["cknna"].matrix
    assert np.allclose(np.diag(cknna), 1.0)
    assert cknna[0, 1] > cknna[0, 2] + 0.1


def test_a_model_against_its_copy_is_one(atom_files, tmp_path):
    paths, xs, structure, numbers = atom_files
    copy = tmp_path / "copy.h5"
    write_atom_embeddings(copy, _atom_file("a-copy", xs["a"], structure, numbers))
    written = align_atoms([paths[0], copy], {"cknna": tmp_path / "c.h5"}, k=5)
    assert written["cknna"].matrix[0, 1] == pytest.approx(1.0, abs=1e-12)


def test_permuting_atoms_within_structures_changes_nothing(atom_files, tmp_path):
    paths, xs, structure, numbers = atom_files
    rng = np.random.default_rng(5)
    order = np.concatenate([rng.permutation(np.flatnonzero(structure == s))
                            for s in range(60)])  # same order for every model
    moved = []
    for model, x in xs.items():
        moved.append(tmp_path / f"moved-{model}.h5")
        f = _atom_file(model, x[order], structure, numbers[order])
        write_atom_embeddings(moved[-1], f)
    metrics = ("cknna", "mutual_knn", "cka", "dcor", "information_imbalance")
    before = align_atoms(paths, {m: tmp_path / f"b-{m}.h5" for m in metrics}, k=5,
                         bootstrap=3, seed=1)
    after = align_atoms(moved, {m: tmp_path / f"a-{m}.h5" for m in metrics}, k=5,
                        bootstrap=3, seed=1)
    for metric in metrics:
        np.testing.assert_allclose(after[metric].matrix, before[metric].matrix, atol=1e-10)
        np.testing.assert_allclose(after[metric].extra["ci_high"],
                                   before[metric].extra["ci_high"], atol=1e-10)


def test_by_element_matrices(atom_files, tmp_path):
    paths, xs, structure, numbers = atom_files
    out = tmp_path / "by.h5"
    align_atoms(paths, {}, {"cknna": out}, k=5, bootstrap=2, permutations=2)
    groups = read_metric_groups(out)
    assert list(groups) == ["H", "C"]
    study = load_atom_study(paths)
    for symbol, z in (("H", 1), ("C", 6)):
        rows = numbers == z
        assert groups[symbol].attrs["n_atoms"] == rows.sum()
        expected = pairwise({m: a[rows] for m, a in study.arrays.items()}, metrics=["cknna"],
                            k=5, bootstrap=2, permutations=2, seed=0,
                            groups=structure[rows])["cknna"][0]
        np.testing.assert_allclose(groups[symbol].matrix, expected, atol=1e-12)
    assert min_element_atoms(25, 0) == 27 and min_element_atoms(25, 10) == 108


def test_files_that_disagree_are_refused(atom_files, tmp_path):
    paths, xs, structure, numbers = atom_files
    other = tmp_path / "other.h5"
    write_atom_embeddings(other, _atom_file("c", xs["a"], structure, numbers, "d1"))
    with pytest.raises(AlignmentError, match="different dataset versions"):
        load_atom_study([paths[0], other])
    wrong = numbers.copy()
    wrong[0] = 8
    write_atom_embeddings(other, _atom_file("c", xs["a"], structure, wrong))
    with pytest.raises(AlignmentError, match="differently"):
        load_atom_study([paths[0], other])


def test_pooled_vs_atoms_table_and_figure(atom_files, tmp_path):
    paths, xs, structure, numbers = atom_files
    metrics = ("cka", "information_imbalance")
    atoms = {m: tmp_path / f"atoms-{m}.h5" for m in metrics}
    by = {m: tmp_path / f"by-{m}.h5" for m in metrics}
    align_atoms(paths, atoms, by, k=5, bootstrap=2, permutations=3)
    # the pooled study of the same models: their atoms averaged per structure
    from matteralign.analysis.align import align_dataset
    from matteralign.io import EmbeddingFile, write_embeddings

    embedded = []
    for model, x in xs.items():
        pooled = np.stack([x[structure == s].mean(axis=0) for s in range(60)])
        embedded.append(tmp_path / f"pooled-{model}.h5")
        write_embeddings(embedded[-1], EmbeddingFile(
            ids=[f"s{s}" for s in range(60)], embeddings=pooled.astype(np.float32),
            valid=np.ones(60, bool), errors=[""] * 60,
            attrs={"model": model, "dataset": "toy", "dataset_sha256": "d0"}))
    pooled_files = {m: tmp_path / f"pooled-{m}.out.h5" for m in metrics}
    align_dataset(embedded, pooled_files, k=5, bootstrap=2, permutations=3)
    pairs = compare_levels({m: read_metric(p) for m, p in pooled_files.items()},
                           {m: read_metric(p) for m, p in atoms.items()},
                           {m: read_metric_groups(p) for m, p in by.items()})
    assert len([p for p in pairs if p.metric == "cka"]) == 3  # symmetric: each pair once
    assert len([p for p in pairs if p.metric == "information_imbalance"]) == 6
    ab = next(p for p in pairs if p.metric == "cka" and (p.source, p.target) == ("a", "b"))
    assert ab.atoms == pytest.approx(read_metric(atoms["cka"]).matrix[0, 1])
    assert ab.pooled == pytest.approx(read_metric(pooled_files["cka"]).matrix[0, 1])
    assert set(ab.by_element) == {"H", "C"}
    table, figure = tmp_path / "t.tsv", tmp_path / "f.png"
    write_level_table(table, pairs)
    lines = table.read_text().splitlines()
    assert lines[0].split("\t")[-2:] == ["atoms_H", "atoms_C"] or "atoms_C" in lines[0]
    assert len(lines) == 1 + len(pairs)
    assert main(["pooled-vs-atoms", "--pooled", *map(str, pooled_files.values()),
                 "--atoms", *map(str, atoms.values()), "--by-element", *map(str, by.values()),
                 "--table", str(table), "--figure", str(figure), "--force"]) == 0
    assert figure.stat().st_size > 10_000


def test_cli_embed_and_align_atoms(structures, tmp_path, toy_model, capsys):
    for name in ("toy-a", "toy-b"):
        assert main(["embed", name, "--structures", str(structures),
                     "--out", str(tmp_path / f"{name}.h5"),
                     "--atoms-out", str(tmp_path / f"{name}.atoms.h5"),
                     "--max-atoms-total", "150"]) == 0
    assert read_embeddings(tmp_path / "toy-a.h5").valid.sum() == 48
    out = tmp_path / "cknna.h5"
    assert main(["align-atoms", "--atoms", str(tmp_path / "toy-a.atoms.h5"),
                 str(tmp_path / "toy-b.atoms.h5"), "--out", f"cknna={out}", "--k", "5"]) == 0
    assert "atoms of" in capsys.readouterr().out
    assert read_metric(out).attrs["n_atoms"] <= 150
