"""Claim 2 under control: the ladder's exact rank test over its rungs and its noise ceiling,
on synthetic rungs whose alignment to the best rung is built to rise as their error falls."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from matteralign.analysis.align import align_dataset
from matteralign.analysis.evidence import (
    AGREES,
    DISAGREES,
    UNTESTABLE,
    pair_replicates,
    pair_value,
)
from matteralign.analysis.ladder import NUMBERS, Ladder, read_ladder, write_ladder
from matteralign.analysis.ladder_claims import ladder_tests, size_ceilings
from matteralign.io import EmbeddingFile, read_metric, write_embeddings
from matteralign.metrics.resampling import paired_interval

SIZES = [100, 200, 400, 800, 1600, 3200]
N = 90


def synthetic_ladder(root, embeddings):
    """Embedding files of ``embeddings`` (name -> [N, d]) aligned by CKNNA, and the ladder of
    its rungs with test errors falling with size (slightly higher for other seeds)."""
    paths = []
    for name, x in embeddings.items():
        path = root / f"{name}.h5"
        write_embeddings(path, EmbeddingFile(
            ids=[f"s{i}" for i in range(N)], embeddings=x.astype(np.float32),
            valid=np.ones(N, bool), errors=[""] * N,
            attrs={"model": name, "modality": "atoms", "dataset": "qm9",
                   "dataset_sha256": "toy", "random_init": False}))
        paths.append(path)
    align_dataset(paths, {"cknna": root / "cknna.h5"}, k=8, bootstrap=6, permutations=19,
                  seed=0)
    rungs = [n for n in embeddings if n != "ani-1x"]
    table = {k: np.zeros(len(rungs)) for k in NUMBERS}
    for i, name in enumerate(rungs):
        size, seed = (int(v) for v in name[len("ani-qm9-n"):].split("-s"))
        table["size"][i], table["seed"][i] = size, seed
        table["test_mae_ev_per_atom"][i] = 0.05 / np.sqrt(size / 100) * (1 + 0.01 * seed)
    curves = {n: np.array([[0, 10.0], [1, 5.0]]) for n in rungs}
    return read_metric(root / "cknna.h5"), Ladder(rungs, table, curves)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Rungs s0 at six sizes (noise falling with size), seeds 1, 2 at 200 and 3200, ani-1x."""
    root = tmp_path_factory.mktemp("ladder")
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(N, 6))
    mix = rng.normal(size=(6, 12))
    names = {f"ani-qm9-n{s}-s0": 2.0 / np.sqrt(s / 100) for s in SIZES}
    names |= {f"ani-qm9-n{s}-s{k}": 2.0 / np.sqrt(s / 100) for s in (200, 3200) for k in (1, 2)}
    names["ani-1x"] = 0.3
    embeddings = {name: np.tanh(latent @ mix + noise * rng.normal(size=(N, 12)))
                  for name, noise in names.items()}
    metric, ladder = synthetic_ladder(root, embeddings)
    write_ladder(root / "ladder.h5", ladder)
    return read_metric(root / "cknna.h5"), read_ladder(root / "ladder.h5")


def test_ladder_file_round_trip(study):
    _, ladder = study
    assert ladder.accuracy_ladder() == [f"ani-qm9-n{s}-s0" for s in SIZES]
    assert ladder.curves["ani-qm9-n100-s0"].shape == (2, 2)


def test_alignment_rising_with_accuracy_agrees_with_an_exact_p(study):
    metric, ladder = study
    other, same, ani = ladder_tests("qm9", metric, ladder)
    assert other.label == "qm9: trained ladder → the most accurate rung of another seed"
    assert other.scored and not same.scored and not ani.scored
    numbers = other.numbers
    # seeds 1 and 2 were trained at 200 and 3200; the 3200 of seed 1 is the more accurate
    assert numbers["reference"] == "ani-qm9-n3200-s1" and numbers["n_rungs"] == 6
    # six rungs of the ladder's seed, none the reference: every ordering, min p = 2/6!
    assert numbers["min_p"] == pytest.approx(2 / 720)
    assert numbers["rho"] < -0.8 and other.verdict == AGREES
    # the same-seed best rung, shown: five rungs besides it
    assert same.numbers["reference"] == "ani-qm9-n3200-s0" and same.numbers["n_rungs"] == 5
    assert same.numbers["min_p"] == pytest.approx(2 / 120)
    calibrated = [pair_value(metric, f"ani-qm9-n{s}-s0", "ani-qm9-n3200-s0").calibrated
                  for s in SIZES[:-1]]
    assert all(b > a for a, b in itertools.pairwise(calibrated))  # as built
    assert same.numbers["rho"] == pytest.approx(-1.0) and same.verdict == AGREES
    assert ani.numbers["reference"] == "ani-1x" and ani.numbers["n_rungs"] == 6


def test_a_rise_that_only_a_shared_seed_explains_does_not_agree(tmp_path):
    """Rungs of one seed share their initial weights: each shares more of the best rung's own
    idiosyncrasy as it grows, at a constant share of the data signal. An independently seeded
    rung shares only that signal: the same-seed test agrees, the verdict's test must not."""
    rng = np.random.default_rng(7)
    latent, mix = rng.normal(size=(N, 6)), rng.normal(size=(6, 12))
    signal = 0.8 * (latent @ mix)
    best_own = rng.normal(size=(N, 12))
    embeddings = {}
    for i, s in enumerate(SIZES):
        t = i / (len(SIZES) - 1)  # 0 … 1: the largest rung is the best one
        embeddings[f"ani-qm9-n{s}-s0"] = signal + 2.0 * (
            np.sqrt(t) * best_own + np.sqrt(1 - t) * rng.normal(size=(N, 12)))
    embeddings |= {f"ani-qm9-n3200-s{k}": signal + 2.0 * rng.normal(size=(N, 12))
                   for k in (1, 2)}
    embeddings["ani-1x"] = signal + 2.0 * rng.normal(size=(N, 12))
    metric, ladder = synthetic_ladder(tmp_path, {n: np.tanh(x / 3)
                                                 for n, x in embeddings.items()})
    other, same, _ = ladder_tests("qm9", metric, ladder)
    assert same.verdict == AGREES, same.reason  # the shared seed makes it rise
    assert other.verdict == "inconclusive", other.reason


def test_reversed_errors_disagree_and_too_few_rungs_are_untestable(study):
    metric, ladder = study
    flipped = Ladder(ladder.names, {**ladder.numbers,
                                    "test_mae_ev_per_atom": 1 / ladder.numbers[
                                        "test_mae_ev_per_atom"]}, ladder.curves)
    best = ladder_tests("qm9", metric, flipped)[1]
    # the least accurate rung is now the "most accurate": ranks reversed, so ρ flips sign
    assert best.numbers["reference"] == "ani-qm9-n100-s0"
    other = ladder_tests("qm9", metric, flipped)[0]
    assert other.numbers["rho"] > 0 and other.verdict in (DISAGREES, "inconclusive")
    assert best.numbers["rho"] > 0 and best.verdict in (DISAGREES, "inconclusive")
    keep = [i for i, n in enumerate(ladder.names) if "-n100-" not in n and "-n200-" not in n]
    short = Ladder([ladder.names[i] for i in keep],
                   {k: v[keep] for k, v in ladder.numbers.items()}, ladder.curves)
    assert ladder_tests("qm9", metric, short)[0].verdict == UNTESTABLE


def test_noise_ceiling_is_the_mean_over_seed_pairs(study):
    metric, ladder = study
    ceilings = size_ceilings(metric, ladder)
    assert sorted(ceilings) == [200, 3200]  # sizes trained at three seeds
    names = [f"ani-qm9-n3200-s{k}" for k in range(3)]
    pairs = list(itertools.combinations(names, 2))
    expected = np.mean([pair_value(metric, a, b).raw for a, b in pairs])
    assert ceilings[3200].value == pytest.approx(expected, abs=1e-12)
    reps = np.mean([pair_replicates(metric, a, b) for a, b in pairs], axis=0)
    assert [ceilings[3200].low, ceilings[3200].high] == pytest.approx(
        list(paired_interval(expected, reps)))
    best = ladder_tests("qm9", metric, ladder)[0]
    growth = best.numbers["ceiling_growth"]
    assert growth["sizes"] == [200, 3200]
    assert growth["value"] == pytest.approx(ceilings[3200].value - ceilings[200].value)


def test_shared_initialisation_is_same_seed_minus_other_seed_pairs(study):
    from matteralign.analysis.ladder_claims import shared_initialisation

    metric, ladder = study
    found = shared_initialisation(metric, ladder)
    assert found["sizes"] == [200, 3200] and (found["n_same"], found["n_other"]) == (3, 6)
    small = [f"ani-qm9-n200-s{k}" for k in range(3)]
    large = [f"ani-qm9-n3200-s{k}" for k in range(3)]
    same = np.mean([pair_value(metric, a, b).raw for a, b in zip(small, large, strict=True)])
    other = np.mean([pair_value(metric, small[i], large[j]).raw
                     for i in range(3) for j in range(3) if i != j])
    assert found["value"] == pytest.approx(same - other, abs=1e-12)
    # the synthetic rungs share no initialisation: the effect's interval holds 0
    assert found["ci"][0] <= 0 <= found["ci"][1]
    best = ladder_tests("qm9", metric, ladder)[0]
    assert best.numbers["shared_initialisation"]["value"] == found["value"]
