"""The one base of every error matteralign raises on purpose.

Each subclass carries a message that names the problem and its fix, so the command line prints
it as one line (``matteralign CMD: error: ...``) instead of a traceback. The concrete errors
live beside the code that raises them and keep ``ValueError`` or ``RuntimeError`` as a second
base, so callers that catch those still do.
"""

from __future__ import annotations


class MatterAlignError(Exception):
    """A problem the user can fix (bad config, missing weights or data, mismatched files)."""
