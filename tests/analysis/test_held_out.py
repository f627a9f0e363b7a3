"""The held-out design: difference in differences of rungs trained without an element against
their twins, on equal held-in and held-out subsets, with paired intervals and the exact
sign-flip test; claim 4's tests from it, including the design check."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from matteralign.analysis.evidence import AGREES, DISAGREES, UNTESTABLE
from matteralign.analysis.held_out import (
    QUANTITIES,
    held_out_study,
    read_held_out,
    subsets,
    write_held_out,
)
from matteralign.analysis.held_out_claims import held_out_tests
from matteralign.analysis.modeltests import paired_difference_test
from matteralign.metrics import pairwise

N, DIM = 300, 8


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _design(n_pairs: int, collapse: bool = True, seed: int = 0):
    """A reference Z; twins = Z + noise; restricted = the same on held-in molecules and, on
    held-out ones, Z projected onto 3 of its 8 directions (a collapsed representation)."""
    rng = np.random.default_rng(seed)
    ids = [f"qm9:gdb_{i}" for i in range(N)]
    elements = {i: ("CHNO" if j % 2 else "CHO") for j, i in enumerate(ids)}
    out = np.array(["N" in elements[i] for i in ids])
    z = rng.normal(size=(N, DIM))
    arrays = {"ani-1x": _unit(z)}
    pairs, errors = [], {}
    test_elements = np.array(["CHNO" if j % 3 == 0 else "CHO" for j in range(90)])
    test_ids = np.array([f"qm9:gdb_{10_000 + j}" for j in range(90)])
    for s in range(n_pairs):
        restricted, twin = f"ani-qm9-noN-n500-s{s}", f"ani-qm9-n500-s{s}"
        arrays[twin] = _unit(z + 0.3 * rng.normal(size=z.shape))
        r = z + 0.3 * rng.normal(size=z.shape)
        if collapse:
            r[out, 3:] = 0.0
        arrays[restricted] = _unit(r)
        pairs.append((restricted, twin))
        base = np.abs(rng.normal(0.1, 0.02, size=90))
        worse = base * np.where(test_elements == "CHNO", 3.0 if collapse else 1.0, 1.0)
        errors[twin] = {"ids": test_ids, "atoms": np.full(90, 10), "elements": test_elements,
                        "abs_error_ev": np.abs(rng.normal(0.1, 0.02, size=90))}
        errors[restricted] = {**errors[twin], "abs_error_ev": worse}
    return arrays, ids, elements, pairs, errors


def test_sign_flip_test_is_scipys_exact_paired_permutation_test():
    rng = np.random.default_rng(3)
    for n in (3, 5, 6, 8):
        d = rng.normal(0.4, 1.0, size=n)
        test = paired_difference_test({f"p{i}": v for i, v in enumerate(d)})
        ref = stats.permutation_test((d,), np.mean, permutation_type="samples",
                                     n_resamples=np.inf, alternative="two-sided")
        assert test.p_value == pytest.approx(ref.pvalue, abs=1e-12)
        assert test.statistic == pytest.approx(d.mean())
        assert test.min_p == 2 / 2**n and test.n_units == n
    # every difference of one sign: the floor
    assert paired_difference_test({f"p{i}": 1.0 + i for i in range(6)}).p_value == 2 / 64


def test_subsets_are_equal_disjoint_seeded_and_split_by_the_element():
    ids = [f"qm9:gdb_{i}" for i in range(50)]
    elements = {i: ("CHNO" if j < 15 else "CHO") for j, i in enumerate(ids)}
    rows, n = subsets(ids, elements, "N", seed=0)
    assert n == 15 and len(rows["held_in"]) == len(rows["held_out"]) == 15
    assert not set(rows["held_in"]) & set(rows["held_out"])
    assert all("N" in elements[ids[i]] for i in rows["held_out"])
    assert not any("N" in elements[ids[i]] for i in rows["held_in"])
    again, _ = subsets(ids, elements, "N", seed=0)
    other, _ = subsets(ids, elements, "N", seed=1)
    assert all(np.array_equal(rows[k], again[k]) for k in rows)
    assert not np.array_equal(rows["held_in"], other["held_in"])


def test_did_is_the_difference_of_the_subsets_metrics():
    arrays, ids, elements, pairs, errors = _design(2)
    held = held_out_study(arrays, ids, elements, "N", pairs, "ani-1x", errors, k=10,
                          bootstrap=8, seed=0)
    rows, n = subsets(ids, elements, "N", seed=0)
    assert held.n_per_subset == n == N // 2
    names = sorted(arrays)
    value = {}
    for subset, r in rows.items():
        out = pairwise({m: arrays[m][r] for m in names}, metrics=["intrinsic_dim",
                       "information_imbalance", "cknna"], k=10)
        value[subset] = {m: (out["intrinsic_dim"][0][i], out["cknna"][0][i, 0],
                             out["information_imbalance"][0][i, 0])
                         for i, m in enumerate(names)}  # ani-1x sorts first
    for (restricted, twin), did_id, did_ck, did_ii in zip(
            pairs, held.did["intrinsic_dim"], held.did["cknna_to_reference"],
            held.did["ii_to_reference"], strict=True):
        for j, did in enumerate((did_id, did_ck, did_ii)):
            expected = (value["held_out"][restricted][j] - value["held_in"][restricted][j]) - (
                value["held_out"][twin][j] - value["held_in"][twin][j])
            assert did == pytest.approx(expected, rel=1e-10, abs=1e-12)
    # the MAE DiD by hand
    per_atom = {m: 1000 * e["abs_error_ev"] / e["atoms"] for m, e in errors.items()}
    out_mask = errors[pairs[0][1]]["elements"] == "CHNO"
    r, t = pairs[0]
    by_hand = (per_atom[r][out_mask].mean() - per_atom[r][~out_mask].mean()) - (
        per_atom[t][out_mask].mean() - per_atom[t][~out_mask].mean())
    assert held.mae_did[0] == pytest.approx(by_hand)
    assert held.mae_did_replicates.shape == (8, 2)


def test_a_collapsed_restricted_model_agrees_with_claim_4_and_the_reverse_disagrees(tmp_path):
    arrays, ids, elements, pairs, errors = _design(6)
    held = held_out_study(arrays, ids, elements, "N", pairs, "ani-1x", errors, k=10,
                          bootstrap=20, seed=0)
    assert (held.did["intrinsic_dim"] < 0).all() and (held.did["cknna_to_reference"] < 0).all()
    assert (held.did["ii_to_reference"] > 0).all()
    write_held_out(tmp_path / "held_out.h5", held, {"code": "test"})
    back = read_held_out(tmp_path / "held_out.h5")
    assert back.pairs == held.pairs and back.values == held.values and back.mae == held.mae
    for q in QUANTITIES:
        assert np.array_equal(back.did[q], held.did[q])
        assert np.array_equal(back.did_replicates[q], held.did_replicates[q])
    tests = held_out_tests("qm9", back, expected=True)
    assert [t.verdict for t in tests] == [AGREES] * 3, [t.reason for t in tests]
    assert tests[0].numbers["p_value"] == 2 / 64 and tests[0].numbers["n_pairs"] == 6
    # one quantity carries the verdict; the other two are shown beside it
    assert [t.scored for t in tests] == [True, False, False]
    from matteralign.analysis.evidence import Claim

    shown_only = Claim("regimes", "4", "", "", tests=[tests[0].__class__(
        **{**tests[0].__dict__, "verdict": "inconclusive"}), *tests[1:]])
    assert shown_only.verdict == "inconclusive"  # secondary agreements do not decide
    # the twins' roles swapped: the "restricted" rung is the better one
    swapped = held_out_study(arrays, ids, elements, "N", [(t, r) for r, t in pairs], "ani-1x",
                             errors, k=10, bootstrap=20)
    assert swapped.mean_mae_did()[0] < 0
    verdicts = held_out_tests("qm9", swapped, expected=True)
    assert [t.verdict for t in verdicts] == [UNTESTABLE]  # the design check fails first
    assert "not out of distribution" in verdicts[0].reason
    swapped.mae_did, swapped.mae_did_replicates = held.mae_did, held.mae_did_replicates
    # (the design check passing, the representation quantities all go the other way)
    assert [t.verdict for t in held_out_tests("qm9", swapped, True)] == [DISAGREES] * 3


def test_three_pairs_cannot_reach_the_level_and_a_missing_file_is_said():
    arrays, ids, elements, pairs, errors = _design(3)
    held = held_out_study(arrays, ids, elements, "N", pairs, "ani-1x", errors, k=10,
                          bootstrap=10)
    tests = held_out_tests("qm9", held, expected=True)
    assert {t.verdict for t in tests} == {UNTESTABLE}
    assert "6 pairs" in tests[0].reason and tests[0].numbers["min_p"] == 0.25
    assert held_out_tests("qm9", None, expected=False) == []
    assert "held_out.h5" in held_out_tests("qm9", None, expected=True)[0].reason


def test_no_collapse_gives_no_significant_representation_change():
    arrays, ids, elements, pairs, errors = _design(6, collapse=False, seed=1)
    for model, e in errors.items():  # keep the design check passing
        if model.startswith("ani-qm9-noN"):
            e["abs_error_ev"] = e["abs_error_ev"] * np.where(e["elements"] == "CHNO", 3.0, 1.0)
    held = held_out_study(arrays, ids, elements, "N", pairs, "ani-1x", errors, k=10,
                          bootstrap=20)
    tests = held_out_tests("qm9", held, expected=True)
    assert AGREES not in {t.verdict for t in tests}, [t.reason for t in tests]

