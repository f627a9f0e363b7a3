"""git_commit records the checkout's commit, and "+dirty" when tracked files were changed or
a folder of code holds a new, untracked file."""

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


@pytest.mark.parametrize("folder", ["src/pkg/models", "workflow/rules", "config"])
def test_a_new_untracked_file_in_a_code_folder_is_dirty(repo: Path, folder: str) -> None:
    """A new adapter starts out untracked: it is code that ran, and not in the commit."""
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "src" / "pkg" / "__init__.py").write_text("")
    git(repo, "add", "src")
    git(repo, "commit", "-q", "-m", "package")
    head = git(repo, "rev-parse", "HEAD")
    assert git_commit(repo) == head
    (repo / folder).mkdir(parents=True, exist_ok=True)
    (repo / folder / "new_adapter.py").write_text("x = 3\n")
    assert git_commit(repo) == f"{head}+dirty"
    assert git_commit(repo / "src" / "pkg") == f"{head}+dirty"  # asked from inside


def test_ignored_files_in_a_code_folder_stay_clean(repo: Path) -> None:
    (repo / ".gitignore").write_text("__pycache__/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore")
    head = git(repo, "rev-parse", "HEAD")
    (repo / "src" / "__pycache__").mkdir(parents=True)
    (repo / "src" / "__pycache__" / "code.cpython-311.pyc").write_bytes(b"\0")
    assert git_commit(repo) == head


def test_outside_a_checkout_is_unknown(tmp_path: Path) -> None:
    assert git_commit(tmp_path) == "unknown"


def test_provenance_asks_this_checkout() -> None:
    root = Path(__file__).resolve().parents[2]
    assert provenance()["git_commit"] == git_commit(root)
