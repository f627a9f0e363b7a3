"""git_commit records the checkout's commit, and "+dirty" when tracked files were changed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from matteralign.provenance import git_commit, provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", "code.py")
    git(tmp_path, "commit", "-q", "-m", "first")
    return tmp_path


def test_clean_checkout_is_its_commit(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert git_commit(repo) == head
    (repo / "notes.txt").write_text("untracked files are not code that ran\n")
    assert git_commit(repo) == head


def test_changed_tracked_file_is_dirty(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = git(repo, "rev-parse", "HEAD")
    (repo / "code.py").write_text("x = 2\n")
    # a commit handed in from outside (the workflow once did) must not hide the change
    monkeypatch.setenv("MATTERALIGN_GIT_COMMIT", head)
    assert git_commit(repo) == f"{head}+dirty"


def test_outside_a_checkout_is_unknown(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == "unknown"


def test_provenance_asks_this_checkout() -> None:
    root = Path(__file__).resolve().parents[2]
    assert provenance()["git_commit"] == git_commit(root)
