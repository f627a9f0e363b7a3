"""The ladder's rungs, declared by the config's ``ladder:`` section.

A rung is one ANI network (the ANI-1x architecture) trained by the study on a QM9 training
set of ``size`` molecules with one ``seed``. Training sets are nested prefixes of one seeded
permutation of QM9's H/C/N/O molecules that are not study structures, so a larger rung sees
every molecule of a smaller one; the seed changes only the network's initialisation and the
batch order. The accuracy ladder is ``sizes`` at ``seed``; the seed replicates are
``replicate_sizes`` at each of ``replicate_seeds`` (with ``seed``: at least three models that
differ only by seed). Each rung becomes a study model named :func:`rung_name`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: the dataset the ladder trains on and embeds (its study structures are never trained on)
DATASET = "qm9"
#: what the rungs are called: ani-qm9-n{size}-s{seed}
RUNG_PATTERN = re.compile(r"^ani-qm9-n(?P<size>[1-9][0-9]*)-s(?P<seed>0|[1-9][0-9]*)$")
#: QM9 molecules of ANI-1x's elements (H, C, N, O: no fluorine) in qm9pack 1.0.3; a test
#: recounts them from the CSVs
QM9_HCNO_MOLECULES = 128_908
#: every QM9 molecule of qm9pack 1.0.3
QM9_MOLECULES = 130_831
#: ANI-1x's per-element hidden layers (its NeuroChem network files: train0/networks)
ANI1X_HIDDEN: dict[str, list[int]] = {"H": [160, 128, 96], "C": [144, 112, 96],
                                      "N": [128, 112, 96], "O": [128, 112, 96]}


@dataclass(frozen=True)
class Rung:
    size: int
    seed: int

    @property
    def name(self) -> str:
        return rung_name(self.size, self.seed)


def rung_name(size: int, seed: int) -> str:
    return f"ani-qm9-n{size}-s{seed}"


def parse_rung_name(name: str) -> Rung | None:
    """The rung a model name denotes (None: not a ladder model)."""
    match = RUNG_PATTERN.match(name)
    return Rung(int(match["size"]), int(match["seed"])) if match else None


def enabled(config: Mapping[str, Any]) -> bool:
    return bool(config.get("ladder", {}).get("enabled"))


def rungs(ladder: Mapping[str, Any]) -> list[Rung]:
    """Every rung: the accuracy ladder (``sizes`` at ``seed``), then the seed replicates."""
    seed = int(ladder["seed"])
    out = [Rung(int(size), seed) for size in sorted(ladder["sizes"])]
    for size in sorted(ladder["replicate_sizes"]):
        out += [Rung(int(size), int(s)) for s in ladder["replicate_seeds"] if int(s) != seed]
    return out


def training_sizes(ladder: Mapping[str, Any]) -> list[int]:
    return sorted({rung.size for rung in rungs(ladder)})


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
    clash = sorted(set(config.get("models", {})) & {r.name for r in rungs(ladder)})
    if clash:
        problems.append(f"models: {clash} are the ladder's own model names; remove them from "
                        "`models` (the ladder adds its rungs itself)")
    return problems
