"""`matteralign weights fetch`: what it does offline, for shipped weights and with a cache."""

from __future__ import annotations

import subprocess
import sys
import time

from matteralign.models import RANDOM_INIT, get_model, registered_models
from tests.conftest import ROOT


def fetch(model: str, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "matteralign", "weights", "fetch", model,
                           *extra], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)


def test_offline_fetch_fails_at_once_naming_the_host_and_the_way_out(tmp_path):
    started = time.time()
    proc = fetch("esm2-t6-8m", "--dest", str(tmp_path))
    assert proc.returncode != 0
    assert time.time() - started < 30
    assert "huggingface.co unreachable" in proc.stderr
    assert "models.esm2-t6-8m.weights" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_shipped_and_weightless_models_have_nothing_to_fetch():
    proc = fetch("chgnet-0.3.0")
    assert proc.returncode == 0 and "ship inside the wheel" in proc.stdout
    proc = fetch("morgan-fp")
    assert proc.returncode == 0 and "needs no weights" in proc.stdout
    proc = fetch("esm2-t6-8n")
    assert proc.returncode != 0 and "unknown model 'esm2-t6-8n'" in proc.stderr


def test_fetched_weights_are_used_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv("MATTERALIGN_CACHE", str(tmp_path))
    cls = registered_models()["esm2-t6-8m"]
    assert get_model("esm2-t6-8m").weights_label() == RANDOM_INIT
    folder = tmp_path / "weights" / "esm2-t6-8m"  # what fetch_weights writes
    folder.mkdir(parents=True)
    assert cls.weights_status() == f"cached: {folder}"
    assert get_model("esm2-t6-8m").weights_label() == str(folder)
    # an explicit choice still wins over the cache
    assert get_model("esm2-t6-8m", weights=RANDOM_INIT).weights_label() == RANDOM_INIT
    # names that merely start alike are not taken for each other
    (tmp_path / "weights" / "esm2-t6-8m-old.pt").write_bytes(b"x")
    assert registered_models()["esm2-t33-650m"].cached_weights() is None
