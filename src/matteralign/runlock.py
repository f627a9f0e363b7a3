"""One results folder, one run: the workflow's lock inside the results folder itself.

Snakemake's own lock lives in the working directory's ``.snakemake/``, so two checkouts (or
two working directories) pointed at one results folder would both run, writing the same files
from possibly different code. The workflow takes :data:`RUN_LOCK` in the results folder when
a real run starts (onstart: not in dry runs, not in the jobs Snakemake spawns, which run
with ``--no-hooks``) and releases it when the run ends (onsuccess, onerror, and at exit). A
second run is refused with the other run's checkout, host and PID; the lock of a run whose
process is gone (killed hard, on this host) is taken over with a note.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matteralign.errors import MatterAlignError
from matteralign.locks import LockHeldError, acquire, describe, holder_alive, release

#: the lock's file name in the results folder
RUN_LOCK = ".matteralign-run.lock"


class ResultsInUseError(MatterAlignError, RuntimeError):
    """Another run holds the results folder (the message names it and what to do)."""


class RunLock:
    """The run lock of ``results`` for a workflow run from ``checkout``."""

    def __init__(self, results: str | os.PathLike[str], checkout: str | os.PathLike[str]
                 ) -> None:
        self.path = Path(results).absolute() / RUN_LOCK
        self.checkout = str(Path(checkout).resolve())
        self.record: dict[str, Any] | None = None

    def acquire(self, note: Callable[[str], None] = print) -> None:
        """Take the lock, or raise :class:`ResultsInUseError` naming the run that holds it."""
        info = {"purpose": "a workflow run on its results folder", "checkout": self.checkout,
                "workdir": os.getcwd(), "results": str(self.path.parent)}
        try:
            self.record = acquire(self.path, info, wait=0, note=note)
        except LockHeldError as err:
            other = err.record
            same = f"checkout {other.get('checkout', '?')}" + (
                " (this one)" if other.get("checkout") == self.checkout else "")
            gone = ("it is still running" if holder_alive(other) else
                    f"it runs on another host: if it no longer does, delete {self.path}")
            raise ResultsInUseError(
                f"results folder {self.path.parent} is in use by another run: snakemake of "
                f"{same} (working directory {other.get('workdir', '?')}), {describe(other)}. "
                f"Wait for it to finish, or give this run another results folder "
                f"(--config results=...); {gone}") from None
        atexit.register(self.release)  # also when the run ends without onsuccess/onerror

    def release(self) -> None:
        """Delete the lock if this process still holds it (safe to call more than once)."""
        if self.record is not None:
            release(self.path, self.record)
            self.record = None
