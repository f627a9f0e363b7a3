"""The console script lists what is registered, and reports errors without a traceback."""

from __future__ import annotations

import subprocess
import sys

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
