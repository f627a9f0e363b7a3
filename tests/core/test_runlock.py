"""One results folder, one run: the lock the workflow takes in its results folder, and the
lock files under it (exclusive, never written over, stale ones taken over)."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
from pathlib import Path

import pytest

from matteralign.locks import (
    LockHeldError,
    NotALockError,
    acquire,
    new_record,
    read_lock,
    release,
)
from matteralign.runlock import RUN_LOCK, ResultsInUseError, RunLock

ROOT = Path(__file__).resolve().parents[2]
#: above any PID a kernel hands out (pid_max is at most 2**22)
DEAD_PID = 2**30


def _write(path: Path, **fields: object) -> None:
    record = {**new_record({"purpose": "a workflow run", "checkout": "/elsewhere/checkout",
                            "workdir": "/elsewhere"}), **fields}
    path.write_text(json.dumps(record))


def test_a_second_run_on_the_folder_is_refused_naming_the_first(tmp_path: Path) -> None:
    first = RunLock(tmp_path / "results", checkout=tmp_path / "checkout-a")
    first.acquire(note=pytest.fail)
    held = read_lock(tmp_path / "results" / RUN_LOCK)
    assert held["checkout"] == str((tmp_path / "checkout-a").resolve())
    assert (held["pid"], held["host"]) == (os.getpid(), socket.gethostname())
    second = RunLock(tmp_path / "results", checkout=tmp_path / "checkout-b")
    with pytest.raises(ResultsInUseError) as refused:
        second.acquire(note=pytest.fail)
    message = str(refused.value)
    for part in (str(tmp_path / "results"), str((tmp_path / "checkout-a").resolve()),
                 f"PID {os.getpid()}", socket.gethostname(), "--config results="):
        assert part in message, part
    assert "\n" not in message
    second.release()  # not its lock: stays
    assert (tmp_path / "results" / RUN_LOCK).exists()
    first.release()
    first.release()
    assert not (tmp_path / "results" / RUN_LOCK).exists()
    second.acquire(note=pytest.fail)  # free again
    second.release()


@pytest.mark.parametrize("stale", [{"pid": DEAD_PID}, {"pid_start": "1"}, {"boot_id": "old"}],
                         ids=["dead-pid", "reused-pid", "rebooted"])
def test_the_lock_of_a_run_that_is_gone_is_taken_over_with_a_note(tmp_path: Path,
                                                                  stale: dict) -> None:
    path = tmp_path / RUN_LOCK
    _write(path, **{"pid": os.getpid(), **stale})
    if "boot_id" in stale and not read_lock(path)["boot_id"]:
        pytest.skip("no boot id on this system")
    notes: list[str] = []
    lock = RunLock(tmp_path, checkout=ROOT)
    lock.acquire(note=notes.append)
    assert len(notes) == 1 and "stale lock" in notes[0] and "/elsewhere" not in notes[0]
    assert read_lock(path)["checkout"] == str(ROOT.resolve())
    lock.release()


def test_a_lock_from_another_host_is_refused_with_how_to_clear_it(tmp_path: Path) -> None:
    _write(tmp_path / RUN_LOCK, host="node-elsewhere", pid=DEAD_PID)
    with pytest.raises(ResultsInUseError) as refused:
        RunLock(tmp_path, checkout=ROOT).acquire(note=pytest.fail)
    message = str(refused.value)
    assert "node-elsewhere" in message and "/elsewhere/checkout" in message
    assert f"delete {tmp_path / RUN_LOCK}" in message


@pytest.mark.parametrize("content", ["my notes\n", '{"pid": 1}\n', "[1, 2]"])
def test_a_file_of_the_lock_name_that_is_not_a_lock_is_left_untouched(tmp_path: Path,
                                                                      content: str) -> None:
    path = tmp_path / RUN_LOCK
    path.write_text(content)
    with pytest.raises(NotALockError, match="not a matteralign lock file.*move or rename"):
        RunLock(tmp_path, checkout=ROOT).acquire(note=pytest.fail)
    assert path.read_text() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == [RUN_LOCK]  # no temp file left


def test_release_deletes_only_the_releasers_lock(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    mine = acquire(path, {"purpose": "test"}, note=pytest.fail)
    assert not release(path, {**mine, "token": "someone-else"}) and path.exists()
    assert release(path, mine) and not path.exists()
    assert not release(path, mine)


def _race(path: str, start, finish, results) -> None:
    start.wait()
    try:
        acquire(path, {"purpose": "race"}, note=lambda _: None)
    except LockHeldError:
        results.put("refused")
        return
    results.put("won")
    finish.wait(30)  # held until every racer has tried (a dead winner's lock is stale)


@pytest.mark.parametrize("stale", [False, True], ids=["free", "stale"])
def test_of_processes_that_take_the_lock_at_once_exactly_one_wins(tmp_path: Path,
                                                                  stale: bool) -> None:
    if stale:  # all of them find the lock of a dead run and take it over at once
        _write(tmp_path / "x.lock", pid=DEAD_PID)
    context = multiprocessing.get_context("fork")
    start, finish, results = context.Event(), context.Event(), context.Queue()
    racers = [context.Process(target=_race, args=(str(tmp_path / "x.lock"), start, finish,
                                                  results)) for _ in range(6)]
    for racer in racers:
        racer.start()
    start.set()
    outcomes = sorted(results.get(timeout=30) for _ in racers)
    finish.set()
    for racer in racers:
        racer.join(timeout=30)
    assert outcomes == ["refused"] * 5 + ["won"]
    assert [p.name for p in tmp_path.iterdir()] == ["x.lock"]  # nothing left aside
