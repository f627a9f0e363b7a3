"""The one base of every error matteralign raises on purpose.

Each subclass carries a message that names the problem and its fix, so the command line prints
it as one line (``matteralign CMD: error: ...``) instead of a traceback. The concrete errors
live beside the code that raises them and keep ``ValueError`` or ``RuntimeError`` as a second
base, so callers that catch those still do.
"""

from __future__ import annotations


class MatterAlignError(Exception):
    """A problem the user can fix (bad config, missing weights or data, mismatched files)."""


class MissingInputError(MatterAlignError, FileNotFoundError):
    """An input file or folder that is not there (the message says what makes it)."""


class InputError(MatterAlignError, ValueError):
    """An input that is there but not what the command needs (the wrong kind of file, a
    property or model it does not hold)."""


class UnknownNameError(MatterAlignError, KeyError):
    """A model or dataset name that is not registered (the message lists the known ones)."""

    def __str__(self) -> str:  # KeyError's own str() would quote the message
        return str(self.args[0]) if self.args else ""
