"""The console script lists what is registered, and reports errors without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from matteralign.cli import main
from matteralign.models import registered_models


def test_models_lists_every_registered_model(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name, cls in registered_models().items():
        line = next(row for row in out.splitlines() if row.startswith(name + " "))
        assert cls.family in line and cls.modality in line
    assert "embedding layer" in out and "weights here" in out


def test_datasets_lists_sources(capsys):
    assert main(["datasets", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "qm9" in out and "qm9pack" in out


def test_console_script_error_is_one_clear_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "matteralign", "embed", "no-such-model",
         "--structures", str(tmp_path / "s.h5"), "--out", str(tmp_path / "e.h5")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown model 'no-such-model'" in proc.stderr and "Traceback" not in proc.stderr


#: options that name a file or folder a command writes
OUTPUT_OPTIONS = {"--out", "--figure", "--figure-id", "--figure-ii", "--table", "--json",
                  "--atoms-out", "--by-element", "--dest"}


def _subcommands(parser) -> dict[str, object]:
    """Every (sub-)subcommand of the CLI by its full name ("data fetch", ...)."""
    import argparse

    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subcommands(sub).items()})
    return found


def test_every_command_that_writes_a_named_path_has_force():
    from matteralign.cli import build_parser

    writers = {}
    for name, sub in _subcommands(build_parser()).items():
        options = {o for a in sub._actions for o in a.option_strings}
        if options & OUTPUT_OPTIONS:
            writers[name] = "--force" in options
    assert {"export-structures", "card", "prepare", "embed", "data fetch"} <= set(writers)
    assert [name for name, has in writers.items() if not has] == []


@pytest.mark.parametrize("command, existing", [
    (["prepare", "no-such-dataset", "--n", "3", "--out", "{tmp}/s.h5"], "ids.txt"),
    (["embed", "no-such-model", "--structures", "{tmp}/s.h5", "--out", "{tmp}/e.h5"], "e.h5"),
    (["embed", "no-such-model", "--structures", "{tmp}/s.h5", "--out", "{tmp}/new.h5",
      "--atoms-out", "{tmp}/a.h5"], "a.h5"),
    (["align", "--embeddings", "{tmp}/e.h5", "--out", "cknna={tmp}/c.h5"], "c.h5"),
    (["summary", "--embeddings", "{tmp}/e.h5", "--out", "{tmp}/s.tsv"], "s.tsv"),
    (["answers", "--results", "{tmp}", "--config", "{{}}", "--out", "{tmp}/a.html"], "a.json"),
    (["card", "{tmp}/e.h5", "--dataset", "qm9", "--results", "{tmp}", "--out", "{tmp}"],
     "card.html"),
], ids=lambda v: v[0] if isinstance(v, list) else v)
def test_an_existing_output_stops_the_command_before_any_work(tmp_path, capsys, command,
                                                              existing):
    """A file the command did not make (here: the user's) is named, kept, and replaced only
    with --force; the inputs are not even read."""
    (tmp_path / "e.h5").write_text("placeholder input\n")
    mine = tmp_path / existing
    mine.write_text("the user's own file\n")
    argv = [arg.format(tmp=tmp_path) for arg in command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{mine} (" in err and "already exists: nothing was written" in err
    assert "--force" in err and err.count("\n") == 1
    assert mine.read_text() == "the user's own file\n"
    # with --force the command goes on to its inputs (which fail here)
    assert main([*argv, "--force"]) == 2
    assert "already exists" not in capsys.readouterr().err


def test_a_card_is_written_into_a_folder_with_a_card_only_with_force(tmp_path):
    """The default folder (cards/{name}) is known only once the card is built: write_card
    itself refuses, before drawing anything."""
    from matteralign.outputs import OutputExistsError
    from matteralign.plots.card_page import write_card

    (tmp_path / "card.json").write_text("an earlier card, edited\n")
    with pytest.raises(OutputExistsError, match="card.json"):
        write_card({}, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]
    assert (tmp_path / "card.json").read_text() == "an earlier card, edited\n"
