"""The alignment card against a small stored study: known answers for copies, rotations and
shuffles, and one clear error for every kind of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from matteralign.analysis.align import align_dataset
from matteralign.analysis.card import build_card
from matteralign.analysis.convergence import write_convergence
from matteralign.analysis.performance import write_performance
from matteralign.analysis.probes import write_probes
from matteralign.cli import main
from matteralign.errors import InputError, MissingInputError
from matteralign.io import CorruptFileError, EmbeddingFile, read_embeddings, write_embeddings
from matteralign.metrics import PAIRWISE_METRICS, PER_MODEL_METRICS
from matteralign.plots.card_page import write_card

from .study_files import write_study

# P = 19: the fewest nulls with which p = 1/(P+1) can reach 0.05
B, P = 4, 19
SIMILARITIES = ("cknna", "mutual_knn", "cka", "dcor")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """results/qm9 of a finished small study: embeddings, every metric, probes, convergence."""
    root = tmp_path_factory.mktemp("results")
    folder = root / "qm9"
    study = write_study(folder, n=160)
    align_dataset(study.embeddings, {m: folder / f"{m}.h5"
                                     for m in PAIRWISE_METRICS + PER_MODEL_METRICS},
                  k=8, bootstrap=B, permutations=P, seed=0)
    write_performance(study.structures, study.embeddings, folder / "performance.h5")
    write_probes(study.structures, study.embeddings, folder / "probes.h5")
    write_convergence(folder / "performance.h5", folder / "cknna.h5", folder / "convergence.h5")
    return root


def _copy_of(results: Path, model: str, tmp_path: Path, transform=None, name="newcomer",
             shuffle: bool = False) -> Path:
    f = read_embeddings(results / "qm9" / "embeddings" / f"{model}.h5")
    x = np.asarray(f.embeddings, np.float64)
    if transform is not None:
        x = transform(x)
    if shuffle:
        x = x[np.random.default_rng(7).permutation(len(x))]
    path = tmp_path / f"{name}.h5"
    write_embeddings(path, EmbeddingFile(ids=f.ids, embeddings=x.astype(np.float32),
                                         valid=f.valid, errors=f.errors,
                                         attrs={"model": name, "weights": "test"}))
    return path


def _entry(card: dict, metric: str, model: str) -> dict:
    return next(e for e in card["metrics"][metric]["to_zoo"] if e["model"] == model)


def test_a_copy_of_a_stored_model_ranks_it_first_at_one_far_above_chance(results, tmp_path):
    card = build_card(results, "qm9", embeddings=_copy_of(results, "chgnet-0.3.0", tmp_path))
    assert card["settings"]["bootstrap"] == B and card["settings"]["permutations"] == P
    for metric in SIMILARITIES:
        section = card["metrics"][metric]
        assert section["nearest"][0] == "chgnet-0.3.0", metric
        entry = _entry(card, metric, "chgnet-0.3.0")
        assert entry["value"] == pytest.approx(1.0, abs=1e-6), metric
        assert entry["above_chance"] and entry["p_value"] == pytest.approx(1 / (P + 1))
        assert entry["value"] > entry["null_p95"] + 0.1
    ii = _entry(card, "information_imbalance", "chgnet-0.3.0")
    assert ii["value"] == pytest.approx(2 / card["dataset"]["n_used"])
    assert card["metrics"]["information_imbalance"]["nearest"][0] == "chgnet-0.3.0"
    # the tree puts the copy next to its original
    assert card["tree"]["joins"] == ["chgnet-0.3.0"]
    assert card["tree"]["height"] == pytest.approx(0.0, abs=1e-3)
    # the same embedding gives the same probes as the stored model
    probes = card["probes"]
    for prop in probes["properties"]:
        assert probes["new"]["r2"][prop] == pytest.approx(
            probes["zoo"]["r2"][prop]["chgnet-0.3.0"], abs=1e-12)


def test_the_zoo_entries_equal_the_stored_matrix_of_the_original(results, tmp_path):
    """The copy's alignment to every other zoo model is the stored model's row."""
    from matteralign.io import read_metric

    card = build_card(results, "qm9", embeddings=_copy_of(results, "chgnet-0.3.0", tmp_path))
    for metric in PAIRWISE_METRICS:
        stored = read_metric(results / "qm9" / f"{metric}.h5")
        i = stored.models.index("chgnet-0.3.0")
        for j, model in enumerate(stored.models):
            if j == i:
                continue
            entry = _entry(card, metric, model)
            assert entry["value"] == pytest.approx(stored.matrix[i, j], abs=1e-10), metric
            if entry["reverse"] is not None:
                assert entry["reverse"]["value"] == pytest.approx(stored.matrix[j, i],
                                                                  abs=1e-10)
            # the half-samples are the study's: the same interval
            assert entry["ci_low"] == pytest.approx(stored.extra["ci_low"][i, j], abs=1e-10)


def test_a_row_shuffled_copy_sits_at_chance(results, tmp_path):
    card = build_card(results, "qm9", embeddings=_copy_of(results, "chgnet-0.3.0", tmp_path,
                                                          shuffle=True))
    for metric in ("cknna", "cka", "dcor"):
        entry = _entry(card, metric, "chgnet-0.3.0")
        assert not entry["above_chance"], metric
        assert abs(entry["calibrated"]) < 0.1, metric
        assert entry["value"] < 0.5


def test_an_orthogonally_rotated_copy_has_cka_and_cknna_one(results, tmp_path):
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(16, 16)))
    card = build_card(results, "qm9", embeddings=_copy_of(results, "chgnet-0.3.0", tmp_path,
                                                          transform=lambda x: x @ q))
    for metric in ("cka", "cknna"):
        assert _entry(card, metric, "chgnet-0.3.0")["value"] == pytest.approx(1.0, abs=1e-5)


def test_npy_with_ids_in_another_order_gives_the_same_card(results, tmp_path):
    path = _copy_of(results, "sevennet-0", tmp_path)
    f = read_embeddings(path)
    order = np.random.default_rng(0).permutation(len(f.ids))
    np.save(tmp_path / "x.npy", np.asarray(f.embeddings)[order])
    (tmp_path / "ids.txt").write_text("\n".join(f.ids[i] for i in order) + "\n")
    from_npy = build_card(results, "qm9", npy=tmp_path / "x.npy", ids_file=tmp_path / "ids.txt",
                          name="newcomer")
    from_h5 = build_card(results, "qm9", embeddings=path)
    for metric in PAIRWISE_METRICS:
        assert [e["value"] for e in from_npy["metrics"][metric]["to_zoo"]] == \
            pytest.approx([e["value"] for e in from_h5["metrics"][metric]["to_zoo"]], abs=1e-12)


def _npy(tmp_path: Path, x: np.ndarray, ids: list[str]) -> dict:
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "ids.txt").write_text("\n".join(ids) + "\n")
    return {"npy": tmp_path / "x.npy", "ids_file": tmp_path / "ids.txt"}


def test_mismatched_ids_say_how_many_are_missing_and_extra(results, tmp_path):
    f = read_embeddings(results / "qm9" / "embeddings" / "sevennet-0.h5")
    ids = f.ids[3:] + ["qm9:gdb_999999", "qm9:not-a-molecule"]
    x = np.random.default_rng(0).normal(size=(len(ids), 4))
    with pytest.raises(InputError) as err:
        build_card(results, "qm9", **_npy(tmp_path, x, ids))
    message = str(err.value)
    assert "3 of the dataset's 160 structures are missing (e.g. qm9:gdb_1, qm9:gdb_2, qm9:gdb_3)" \
        in message
    assert "2 ids are not in the dataset (e.g. qm9:gdb_999999, qm9:not-a-molecule)" in message
    assert "export-structures" in message


def test_nan_rows_zero_dimensions_and_missing_results_fail_clearly(results, tmp_path):
    ids = read_embeddings(results / "qm9" / "embeddings" / "sevennet-0.h5").ids
    x = np.random.default_rng(0).normal(size=(len(ids), 4))
    x[[5, 9], 1] = np.nan
    x[11, 0] = np.inf
    with pytest.raises(InputError, match=r"3 rows hold NaN or Inf \(e.g. qm9:gdb_6, "
                                         r"qm9:gdb_10, qm9:gdb_12\)"):
        build_card(results, "qm9", **_npy(tmp_path, x, ids))
    with pytest.raises(InputError, match="dimension 0"):
        build_card(results, "qm9", **_npy(tmp_path, np.zeros((len(ids), 0)), ids))
    with pytest.raises(InputError, match="160 rows but .* lists 159 ids"):
        build_card(results, "qm9", npy=_npy(tmp_path, x, ids)["npy"],
                   ids_file=_write(tmp_path / "short.txt", ids[:-1]))
    with pytest.raises(MissingInputError, match="no stored results.*run the study first"):
        build_card(results, "coremof", **_npy(tmp_path, x, ids))
    empty = tmp_path / "bare"
    (empty / "qm9").mkdir(parents=True)
    shutil.copy(results / "qm9" / "structures.h5", empty / "qm9" / "structures.h5")
    with pytest.raises(MissingInputError, match="holds no alignment results"):
        build_card(empty, "qm9", **_npy(tmp_path, x, ids))


def _write(path: Path, ids: list[str]) -> Path:
    path.write_text("\n".join(ids) + "\n")
    return path


def test_a_masked_structure_is_left_out_not_an_error(results, tmp_path):
    f = read_embeddings(results / "qm9" / "embeddings" / "sevennet-0.h5")
    valid = f.valid.copy()
    valid[:4] = False
    x = np.asarray(f.embeddings, np.float32).copy()
    x[:4] = np.nan
    path = tmp_path / "masked.h5"
    write_embeddings(path, EmbeddingFile(ids=f.ids, embeddings=x, valid=valid,
                                         errors=["cannot"] * 4 + [""] * (len(f.ids) - 4),
                                         attrs={"model": "masked"}))
    card = build_card(results, "qm9", embeddings=path)
    assert card["dataset"]["n_used"] == card["dataset"]["n_study_used"] - 4


def test_cli_writes_json_png_and_html_with_no_nan(results, tmp_path, capsys):
    path = _copy_of(results, "sevennet-0", tmp_path, name="my<model>")
    out = tmp_path / "card"
    assert main(["card", str(path), "--dataset", "qm9", "--results", str(results),
                 "--out", str(out)]) == 0
    assert "rank" in capsys.readouterr().out
    text = (out / "card.json").read_text()
    card = json.loads(text)  # strict JSON: NaN was written as null
    assert "NaN" not in text
    assert card["model"]["name"] == "my<model>"
    assert card["zoo"]["models"] == ["chgnet-0.3.0", "sevennet-0", "composition",
                                     "mace-mp-0-medium"]
    assert (out / "card.png").stat().st_size > 10_000
    assert "my&lt;model&gt;" in (out / "card.html").read_text()
    assert main(["card", str(path), "--dataset", "qm9", "--results", str(tmp_path / "none")]) == 2
    assert "run the study first" in capsys.readouterr().err


def test_write_card_leaves_no_json_when_drawing_fails(results, tmp_path, monkeypatch):
    card = build_card(results, "qm9", embeddings=_copy_of(results, "sevennet-0", tmp_path))

    def broken(*_args, **_kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr("matteralign.plots.card_page.render_card_html", broken)
    with pytest.raises(RuntimeError):
        write_card(card, tmp_path / "out")
    assert not (tmp_path / "out" / "card.json").exists()


def test_past_the_memory_budget_the_streamed_engine_gives_the_same_values(results, tmp_path):
    path = _copy_of(results, "sevennet-0", tmp_path, transform=lambda x: np.tanh(x))
    dense = build_card(results, "qm9", embeddings=path)
    streamed = build_card(results, "qm9", embeddings=path, dense_budget=0)
    assert (dense["settings"]["engine"], streamed["settings"]["engine"]) == ("dense", "streamed")
    for metric in PAIRWISE_METRICS:
        for a, b in zip(dense["metrics"][metric]["to_zoo"], streamed["metrics"][metric]["to_zoo"],
                        strict=True):
            for key in ("value", "ci_low", "ci_high"):
                assert a[key] == pytest.approx(b[key], abs=1e-10), (metric, key)


def _raw_h5(path: Path, x: np.ndarray, ids: list[str], valid: np.ndarray) -> Path:
    """An embedding file written without matteralign's writer: no content hash, no checks."""
    import h5py

    with h5py.File(path, "w") as handle:
        handle["embeddings"] = x
        handle["ids"] = np.array(ids, dtype="S")
        handle["valid"] = valid
        handle["errors"] = np.array([b""] * len(ids))
        handle.attrs["model"] = path.stem
    return path


def test_an_h5_whose_rows_disagree_with_its_ids_is_refused_naming_both_counts(results,
                                                                              tmp_path):
    """Hash or not: more rows than ids are not silently cut, fewer give no IndexError."""
    f = read_embeddings(results / "qm9" / "embeddings" / "sevennet-0.h5")
    x = np.asarray(f.embeddings)
    more = _raw_h5(tmp_path / "more.h5", np.vstack([x, x[:10]]), f.ids, np.ones(170, bool))
    with pytest.raises(InputError, match=r"more\.h5: embeddings has 170 rows, valid has 170 "
                                         r"rows but ids has 160; row i of each"):
        build_card(results, "qm9", embeddings=more)
    fewer = _raw_h5(tmp_path / "fewer.h5", x[:50], f.ids, np.ones(160, bool))
    with pytest.raises(InputError, match=r"fewer\.h5: embeddings has 50 rows but ids has 160"):
        build_card(results, "qm9", embeddings=fewer)
    # a zoo file is checked the same way
    zoo = tmp_path / "zoo"
    shutil.copytree(results, zoo)
    stored = zoo / "qm9" / "embeddings" / "composition.h5"
    g = read_embeddings(stored)
    _raw_h5(stored, np.asarray(g.embeddings)[:-1], g.ids, g.valid)
    with pytest.raises(CorruptFileError, match=r"composition\.h5 is damaged \(embeddings has "
                                               r"159 rows but ids has 160"):
        build_card(zoo, "qm9", embeddings=_copy_of(results, "sevennet-0", tmp_path))


def test_the_ids_txt_the_study_writes_is_read_as_it_is(results, tmp_path):
    """Its `# dataset=...` header is no id; the card's own error points to it."""
    from matteralign.analysis.card_inputs import read_new_embedding, read_zoo
    from matteralign.datasets.prepare import write_ids

    root = tmp_path / "results"
    shutil.copytree(results, root)
    f = read_embeddings(root / "qm9" / "embeddings" / "sevennet-0.h5")
    order = np.random.default_rng(1).permutation(len(f.ids))
    stored = root / "qm9" / "ids.txt"
    write_ids(stored, [f.ids[i] for i in order], "qm9", 0, "abc")
    np.save(tmp_path / "x.npy", np.asarray(f.embeddings)[order])
    zoo = read_zoo(root, "qm9")
    new = read_new_embedding(zoo.ids, npy=tmp_path / "x.npy", ids_file=stored)
    assert new.ids == zoo.ids
    np.testing.assert_array_equal(new.embeddings, np.asarray(f.embeddings, np.float64))
    with pytest.raises(InputError, match=rf"their ids are in {stored}, which --ids reads"):
        build_card(root, "qm9", **_npy(tmp_path, np.asarray(f.embeddings)[1:], f.ids[1:]))
    write_ids(tmp_path / "other.txt", f.ids, "coremof", 0, "abc")
    with pytest.raises(InputError, match="lists the ids of dataset 'coremof', not 'qm9'"):
        build_card(root, "qm9", npy=tmp_path / "x.npy", ids_file=tmp_path / "other.txt")
    lines = stored.read_text().splitlines()
    _write(tmp_path / "cut.txt", lines[:-1])
    with pytest.raises(InputError, match="header says n=160 but it lists 159 ids"):
        build_card(root, "qm9", npy=tmp_path / "x.npy", ids_file=tmp_path / "cut.txt")


def test_too_few_valid_rows_for_the_half_samples_say_how_many_are_needed(results, tmp_path):
    """12 valid rows pass k + 2 = 10 but not the half-samples (N // 2 = 6 rows for k = 8)."""
    f = read_embeddings(results / "qm9" / "embeddings" / "sevennet-0.h5")
    valid = np.zeros(len(f.ids), bool)
    valid[:12] = True
    x = np.where(valid[:, None], np.asarray(f.embeddings), np.nan).astype(np.float32)
    path = tmp_path / "few.h5"
    write_embeddings(path, EmbeddingFile(ids=f.ids, embeddings=x, valid=valid,
                                         errors=["" if v else "cannot" for v in valid],
                                         attrs={"model": "few"}))
    with pytest.raises(InputError, match=r"too few valid rows \(12\) for k=8; need at least 18 "
                                         r"\(each of the B=4 half-samples"):
        build_card(results, "qm9", embeddings=path)
