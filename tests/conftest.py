"""Shared fixtures. Tests run from the driver environment (.venv)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]

# Property tests draw the same examples on every run (a red CI run can be replayed, a green
# one does not turn red by chance); HYPOTHESIS_PROFILE=explore searches new examples.
settings.register_profile("reproducible", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


def family_python(family: str) -> Path:
    """The interpreter of a built family environment; fail in CI, skip elsewhere if missing."""
    python = ROOT / ".envs" / family / "bin" / "python"
    if not (ROOT / ".envs" / family / "matteralign-env.json").exists():
        message = (f"environment {family!r} not built: run `make envs` (or .venv/bin/matteralign "
                   f"env build workflow/envs/{family}.yaml --prefix .envs/{family})")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return python
