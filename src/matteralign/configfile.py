"""Reading a study config file strictly: UTF-8 text, YAML (or JSON) without repeated keys.

PyYAML keeps the last of two equal keys without a word, so a second ``metrics:`` block would
silently replace the first. Every config the project reads (``matteralign check-config``, the
answers page's ``--config`` and the workflow, which re-reads each ``--configfile`` that
Snakemake loaded with its own lenient loader) goes through :func:`read_config_file`, so a
repeated key, an undecodable byte or an oversized file stops the run naming the file, the
key and the line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from matteralign.errors import MatterAlignError

#: a study config is a few kB: a larger file is refused before it is parsed (parsing a
#: million-item list alone takes PyYAML many seconds)
MAX_CONFIG_BYTES = 1_000_000
#: the most items of one list or mapping (a config names tens of models and datasets)
MAX_ITEMS = 1_000
#: the most values of the whole config once YAML aliases are expanded (alias "bombs")
MAX_VALUES = 100_000
#: the deepest nesting (the schema's deepest key is 5 levels down)
MAX_DEPTH = 20

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"
_INT = "tag:yaml.org,2002:int"
#: integers YAML 1.1 (PyYAML, Snakemake) reads as octal: 0100 is 64
_OCTAL = re.compile(r"[-+]?0[0-7_]+")
#: ... and as base 60: 1:30 is 90
_SEXAGESIMAL = re.compile(r"[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+")


class ConfigFileError(MatterAlignError, ValueError):
    """A config file that cannot be read as written; the message names the file and line."""


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else f"<{node.tag}>"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Walk:
    """One pass over the composed YAML nodes, before anything is constructed."""

    def __init__(self, loader: yaml.SafeLoader, where: str) -> None:
        self.loader, self.where = loader, where
        self.sizes: dict[int, int] = {}  # expanded value counts, per node (aliases share)
        self.open: set[int] = set()

    def fail(self, node: yaml.Node, message: str) -> ConfigFileError:
        return ConfigFileError(f"config file {self.where}, line {node.start_mark.line + 1}: "
                               f"{message}")

    def size(self, node: yaml.Node, path: str, depth: int) -> int:
        """Values under ``node`` (itself included); refuses what :func:`read_config_file`
        promises to refuse."""
        if id(node) in self.sizes:
            return self.sizes[id(node)]
        what = f"config key {path}" if path else "the top level"
        if id(node) in self.open:
            raise self.fail(node, f"{what} contains itself (a recursive YAML alias); write the "
                            "value out")
        if depth > MAX_DEPTH:
            raise self.fail(node, f"{what} is nested more than {MAX_DEPTH} levels deep; a "
                            "study config is a few levels of keys")
        if isinstance(node, yaml.ScalarNode):
            text = str(node.value)
            if node.tag == _INT and _OCTAL.fullmatch(text):
                raise self.fail(node, f"{what}: {text} has a leading zero, which YAML reads "
                                f"as an octal number; write {text.lstrip('+-0_') or 0} (or "
                                "quote it if it is text)")
            if node.tag == _INT and _SEXAGESIMAL.fullmatch(text):
                raise self.fail(node, f"{what}: YAML reads {text} as a base-60 number; quote "
                                "it if it is text, or write the integer")
            return 1
        self.open.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            self.check_count(node, what, len(node.value))
            total = 1 + sum(self.size(item, f"{path}[{i}]", depth + 1)
                            for i, item in enumerate(node.value))
        else:
            assert isinstance(node, yaml.MappingNode)
            self.check_count(node, what, len(node.value))
            self.check_duplicates(node, path)
            total = 1
            for key, value in node.value:
                label = path if key.tag == _MERGE else _join(path, _key_text(key))
                total += self.size(key, label, depth + 1) + self.size(value, label, depth + 1)
        self.open.discard(id(node))
        if total > MAX_VALUES:
            raise self.fail(node, f"{what} expands to more than {MAX_VALUES:,} values (YAML "
                            "aliases repeated inside each other); write the config out")
        self.sizes[id(node)] = total
        return total

    def check_count(self, node: yaml.Node, what: str, count: int) -> None:
        if count > MAX_ITEMS:
            raise self.fail(node, f"{what} has {count:,} items, more than a study config takes "
                            f"(at most {MAX_ITEMS:,}); shorten it")

    def check_duplicates(self, node: yaml.MappingNode, path: str) -> None:
        seen: dict[Any, yaml.Node] = {}
        for key, _ in node.value:
            if key.tag == _MERGE or not isinstance(key, yaml.ScalarNode):
                continue
            value = self.loader.construct_object(key)
            try:
                first = seen.setdefault(value, key)
            except TypeError:  # an unhashable key: the schema refuses it later
                continue
            if first is not key:
                name = _join(path, _key_text(key))
                raise ConfigFileError(
                    f"config file {self.where}: config key {name} appears twice (lines "
                    f"{first.start_mark.line + 1} and {key.start_mark.line + 1}); YAML would "
                    "keep only the second: merge them into one")


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise ConfigFileError(
            f"config file {where}, line {line}, column {column}: byte "
            f"0x{data[err.start]:02x} is not UTF-8 text; save the file as UTF-8 (e.g. "
            f"`iconv -f latin1 -t utf-8`)") from None


def parse_config_text(text: str, where: str) -> Any:
    """The YAML (or JSON) document of ``text``, refusing repeated keys, octal-looking
    integers, recursive or exploding aliases and oversized lists; ``where`` names it."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _Walk(loader, where).size(node, "", 0)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(p) for p in (err.context, err.problem) if p)
        raise ConfigFileError(f"config file {where}{at}: not valid YAML ({problem}); fix the "
                              "syntax there (e.g. indentation, a missing colon or quote)"
                              ) from None
    except yaml.YAMLError as err:
        raise ConfigFileError(f"config file {where}: not valid YAML ({err})") from None
    finally:
        loader.dispose()


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping in the config file ``path``, read strictly (see the module docstring).
    Raises :class:`ConfigFileError`."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigFileError(
                f"config file {path} is {size:,} bytes; a study config is a few kB (at most "
                f"{MAX_CONFIG_BYTES:,} bytes): is it the right file, or does it hold a huge "
                "list?")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigFileError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigFileError(f"config file {path} is a folder; give the YAML file") from None
    except OSError as err:
        raise ConfigFileError(f"config file {path} cannot be read: {err.strerror}") from None
    raw = parse_config_text(_decode(data, str(path)), str(path))
    if raw is None:
        raise ConfigFileError(f"config file {path} is empty; give at least datasets: and "
                              "models:")
    if not isinstance(raw, dict):
        raise ConfigFileError(f"config file {path}: the top level must be a mapping of keys "
                              f"(results, datasets, models, ...), not {type(raw).__name__}")
    return raw
