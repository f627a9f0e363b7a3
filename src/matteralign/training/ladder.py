"""The ladder's rungs, declared by the config's ``ladder:`` section.

A rung is one ANI network (the ANI-1x architecture) trained by the study on a QM9 training
set of ``size`` molecules with one ``seed``. Training sets are nested prefixes of one seeded
permutation of QM9's H/C/N/O molecules that are not study structures, so a larger rung sees
every molecule of a smaller one; the seed changes only the network's initialisation and the
batch order. The accuracy ladder is ``sizes`` at ``seed``; the seed replicates are
``replicate_sizes`` at each of ``replicate_seeds`` (with ``seed``: at least three models that
differ only by seed). The held-out design (``held_out``) trains, at ``held_out.sizes``, a
twin of each rung of that size and seed on molecules without ``held_out.element`` only: the
same model trained with and without a part of chemistry, embedded on the same held-in and
held-out study molecules. Each rung becomes a study model named :func:`rung_name`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: the dataset the ladder trains on and embeds (its study structures are never trained on)
DATASET = "qm9"
#: what the rungs are called: ani-qm9-n{size}-s{seed}, or ani-qm9-no{element}-n{size}-s{seed}
#: for a rung trained without the molecules that contain ``element``
RUNG_PATTERN = re.compile(r"^ani-qm9(?:-no(?P<excluded>[NO]))?-n(?P<size>[1-9][0-9]*)"
                          r"-s(?P<seed>0|[1-9][0-9]*)$")
#: the elements the held-out design may leave out of training (H and C are in every QM9
#: molecule but a handful; F is never trained on, ANI-1x has no fluorine)
HOLDABLE = ("N", "O")
#: QM9 molecules of ANI-1x's elements (H, C, N, O: no fluorine) in qm9pack 1.0.3; a test
#: recounts them from the CSVs
QM9_HCNO_MOLECULES = 128_908
#: QM9's H/C/N/O molecules without nitrogen, without oxygen (a test recounts them)
QM9_HCNO_WITHOUT = {"N": 50_604, "O": 18_798}
#: every QM9 molecule of qm9pack 1.0.3
QM9_MOLECULES = 130_831
#: ANI-1x's per-element hidden layers (its NeuroChem network files: train0/networks)
ANI1X_HIDDEN: dict[str, list[int]] = {"H": [160, 128, 96], "C": [144, 112, 96],
                                      "N": [128, 112, 96], "O": [128, 112, 96]}


@dataclass(frozen=True)
class Rung:
    size: int
    seed: int
    #: the element whose molecules the rung never saw ("": all of QM9's H/C/N/O chemistry)
    excluded: str = ""

    @property
    def name(self) -> str:
        return rung_name(self.size, self.seed, self.excluded)

    @property
    def group(self) -> str:
        """The rungs that differ from this one only by seed share this name."""
        return self.name.rsplit("-s", 1)[0]

    @property
    def twin(self) -> Rung:
        """The rung of the same size and seed trained on all of the chemistry."""
        return Rung(self.size, self.seed)


def rung_name(size: int, seed: int, excluded: str = "") -> str:
    return f"ani-qm9{'-no' + excluded if excluded else ''}-n{size}-s{seed}"


def parse_rung_name(name: str) -> Rung | None:
    """The rung a model name denotes (None: not a ladder model)."""
    match = RUNG_PATTERN.match(name)
    if match is None:
        return None
    return Rung(int(match["size"]), int(match["seed"]), match["excluded"] or "")


def enabled(config: Mapping[str, Any]) -> bool:
    return bool(config.get("ladder", {}).get("enabled"))


def held_out_element(ladder: Mapping[str, Any]) -> str:
    """The element of the held-out design ("" when it is off)."""
    return str(ladder.get("held_out", {}).get("element") or "")


def rungs(ladder: Mapping[str, Any]) -> list[Rung]:
    """Every rung: the accuracy ladder (``sizes`` at ``seed``), the seed replicates, then the
    held-out twins (every rung of a ``held_out.sizes`` size, trained without the element)."""
    seed = int(ladder["seed"])
    out = [Rung(int(size), seed) for size in sorted(ladder["sizes"])]
    for size in sorted(ladder["replicate_sizes"]):
        out += [Rung(int(size), int(s)) for s in ladder["replicate_seeds"] if int(s) != seed]
    element = held_out_element(ladder)
    if element:
        sizes = {int(s) for s in ladder["held_out"]["sizes"]}
        out += [Rung(r.size, r.seed, element) for r in list(out) if r.size in sizes]
    return out


def held_out_pairs(ladder: Mapping[str, Any]) -> list[tuple[Rung, Rung]]:
    """(rung trained without the element, its twin trained on everything), by size and seed."""
    return [(r, r.twin) for r in rungs(ladder) if r.excluded]


def training_sizes(ladder: Mapping[str, Any], excluded: str = "") -> list[int]:
    return sorted({rung.size for rung in rungs(ladder) if rung.excluded == excluded})


def ladder_folder(results: str, name: str) -> str:
    return f"{results}/ladder/{name}"


def ladder_models(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The rungs as model entries of the study (``weights`` = the rung's folder)."""
    if not enabled(config):
        return {}
    return {rung.name: {"weights": ladder_folder(config["results"], rung.name),
                        "datasets": [DATASET], "options": {}}
            for rung in rungs(config["ladder"])}


def ladder_problems(config: Mapping[str, Any], study_n: int | None) -> list[str]:
    """Why the ``ladder:`` section cannot run (each naming its key), before any job."""
    ladder = config.get("ladder", {})
    if not ladder.get("enabled"):
        return []
    problems = []
    if DATASET not in config.get("datasets", {}):
        problems.append(f"ladder.enabled: the ladder trains on and embeds {DATASET}, which is "
                        "not in `datasets`; add it or set ladder.enabled: false")
    missing = sorted(set(ladder["replicate_sizes"]) - set(ladder["sizes"]))
    if missing:
        problems.append(f"ladder.replicate_sizes: {missing} not in ladder.sizes "
                        f"{sorted(ladder['sizes'])}; a replicate size must be a rung size")
    if not ladder["replicate_sizes"] or not [s for s in ladder["replicate_seeds"]
                                             if s != ladder["seed"]]:
        problems.append("ladder.replicate_seeds: no seed other than ladder.seed, so no two "
                        "rungs differ only by seed (the noise ceiling needs them)")
    element = held_out_element(ladder)
    if element:
        if element not in HOLDABLE:
            problems.append(f"ladder.held_out.element: {element!r} cannot be held out; one of "
                            f"{list(HOLDABLE)} (or null: no held-out design)")
        unknown = sorted(set(ladder["held_out"]["sizes"]) - set(ladder["sizes"]))
        if unknown or not ladder["held_out"]["sizes"]:
            problems.append(f"ladder.held_out.sizes: {unknown or '[]'} not in ladder.sizes "
                            f"{sorted(ladder['sizes'])}; every held-out rung needs its twin "
                            "trained on all the chemistry (a rung size)")
    widths = ladder["hidden"]
    if sorted(widths) != sorted(ANI1X_HIDDEN):
        problems.append(f"ladder.hidden: needs exactly the elements {sorted(ANI1X_HIDDEN)} "
                        f"(ANI-1x's), got {sorted(widths)}")
    elif len({w[-1] for w in widths.values()}) != 1:
        last = {k: w[-1] for k, w in widths.items()}
        problems.append("ladder.hidden: every element's last hidden layer needs the same "
                        f"width (one embedding space), got {last}")
    pool = QM9_HCNO_MOLECULES - (study_n or 0)
    needed = max(ladder["sizes"]) + ladder["validation"] + ladder["test"]
    # a study n above QM9's size is datasets.qm9.n's problem, reported as such
    if needed > pool and (study_n or 0) <= QM9_MOLECULES:
        problems.append(f"ladder.sizes: the largest rung ({max(ladder['sizes'])}) plus "
                        f"ladder.validation ({ladder['validation']}) and ladder.test "
                        f"({ladder['test']}) need {needed} molecules, but QM9 has only {pool} "
                        "H/C/N/O molecules outside the study's structures; lower them")
    if element in HOLDABLE and ladder["held_out"]["sizes"]:
        free = QM9_HCNO_WITHOUT[element] - (study_n or 0)
        asked = max(ladder["held_out"]["sizes"])
        if asked > free - ladder["validation"] - ladder["test"] and (study_n or 0) <= QM9_MOLECULES:
            problems.append(f"ladder.held_out.sizes: {asked} molecules without {element} asked, "
                            f"QM9 has at most {free} outside the study's structures (less its "
                            "test and validation molecules); lower it")
    clash = sorted(set(config.get("models", {})) & {r.name for r in rungs(ladder)})
    if clash:
        problems.append(f"models: {clash} are the ladder's own model names; remove them from "
                        "`models` (the ladder adds its rungs itself)")
    return problems
