"""Files a command writes where its user says: an existing one is replaced only with --force.

A command's output paths come from its user (``--out``, ``--figure``, ...), so one of them can
name a file the command did not make, e.g. the study's own ``structures.h5``. Every command
checks all its outputs before it computes or writes anything, and stops when one exists.
Inside the workflow this never triggers: Snakemake deletes a job's declared outputs before
the job runs, and every rule passes only declared outputs.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from matteralign.errors import MatterAlignError

#: (what names the path: ``--out``, or e.g. ``ids.txt beside --out``; the path, None for an
#: output not asked for)
Output = tuple[str, "str | os.PathLike[str] | None"]


class OutputExistsError(MatterAlignError, FileExistsError):
    """An output path already holds a file (the message names it and the way out)."""


def refuse_existing(outputs: Iterable[Output], force: bool = False) -> None:
    """Raise :class:`OutputExistsError` naming every output that exists, unless ``force``."""
    if force:
        return
    taken = [(option, os.fspath(path)) for option, path in outputs
             if path is not None and os.path.lexists(path)]
    if not taken:
        return
    listed = ", ".join(f"{path} ({option})" for option, path in taken)
    options = "/".join(dict.fromkeys(re.findall(r"--[\w-]+", " ".join(o for o, _ in taken))))
    verb, them = ("exists", "it") if len(taken) == 1 else ("exist", "them")
    raise OutputExistsError(
        f"{listed} already {verb}: nothing was written. Choose another path with "
        f"{options or 'its option'}, or pass --force to replace {them}")
