"""Lock files that say who holds them, for locks that outlive a single open file handle.

A lock is a small JSON file (key ``matteralign_lock``) naming the process that holds it: PID,
host, boot and process start time, a random token, and what it is for. It appears under its
name only complete (hard-linked from a temporary file, else ``O_CREAT | O_EXCL``), so it is
created exclusively and never written over: a file of that name that is not such a lock is
refused, never emptied. A lock whose process is gone (same host, PID dead or reused, or the
host rebooted) is stale and taken over with a note; one held from another host cannot be
judged from here and is reported with how to remove it. Release deletes the file only while
it still holds the releaser's token.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from matteralign.errors import MatterAlignError

#: the key that marks a lock file this module wrote (its value: the format version)
FORMAT_KEY = "matteralign_lock"
FORMAT_VERSION = 1
#: an empty file younger than this may be a lock being written without hard links
_YOUNG_S = 5.0
#: a lock record is far smaller; a bigger file is not one (and is not read further)
_MAX_BYTES = 1 << 16


class LockHeldError(MatterAlignError, RuntimeError):
    """The lock is held by a live process (or one on another host); ``record`` names it."""

    def __init__(self, message: str, record: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.record = dict(record)


class NotALockError(MatterAlignError, FileExistsError):
    """A file of the lock's name exists and is not a lock this module wrote."""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    """The start time of ``pid`` in clock ticks since boot (Linux), "" where unknown: with
    the PID, it tells a live holder from a new process that reuses a dead holder's PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else ""


def describe(record: Mapping[str, Any]) -> str:
    """``PID 123 on host h (since 2025-...)``: who holds a lock."""
    return (f"PID {record.get('pid', '?')} on host {record.get('host', '?')} "
            f"(since {record.get('created', '?')})")


def read_lock(path: str | os.PathLike[str], purpose: str = "") -> dict[str, Any] | None:
    """The record of the lock at ``path``; None when there is none (or it is an empty
    file); :class:`NotALockError` when the file is something else (the message says what
    the name is needed for: ``purpose``)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            text = handle.read(_MAX_BYTES).decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise NotALockError(_foreign(path, "is a folder", purpose)) from None
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        record = None
    if not isinstance(record, dict) or FORMAT_KEY not in record:
        raise NotALockError(_foreign(path, "is not a matteralign lock file", purpose))
    return record


def _foreign(path: Path, what: str, purpose: str) -> str:
    used = f"the lock of {purpose}" if purpose else "a lock"
    return (f"{path} {what}, but matteralign needs that name for {used}; the file was left "
            "untouched: move or rename it, then run again")


def holder_alive(record: Mapping[str, Any]) -> bool | None:
    """Whether the lock's process still runs: False when it is gone (same host: PID dead,
    PID reused by a newer process, or the host rebooted), None when it was taken on another
    host (not knowable from here)."""
    if record.get("host") != socket.gethostname():
        return None
    boot = _boot_id()
    if boot and record.get("boot_id") and record["boot_id"] != boot:
        return False
    try:
        pid = int(record.get("pid", 0))
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    start = _process_start(pid)
    return not (start and record.get("pid_start") and str(record["pid_start"]) != start)


def new_record(info: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a lock this process takes, with ``info`` (what it is for)."""
    return {FORMAT_KEY: FORMAT_VERSION, "pid": os.getpid(), "host": socket.gethostname(),
            "boot_id": _boot_id(), "pid_start": _process_start(os.getpid()),
            "token": secrets.token_hex(8),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **info}


def _create(path: Path, record: Mapping[str, Any]) -> bool:
    """Put ``record`` at ``path`` if nothing is there; False when something is."""
    data = (json.dumps(record, indent=1) + "\n").encode()
    tmp = path.with_name(f".{path.name}.{record['token']}.tmp")
    with open(tmp, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)  # atomic and exclusive: the lock appears complete
        return True
    except FileExistsError:  # (over NFS a lost reply reads so though the link was made)
        return os.stat(tmp).st_nlink == 2
    except OSError as err:  # a filesystem without hard links
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
    finally:
        tmp.unlink(missing_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return True


def _retire_empty(path: Path, note: Callable[[str], None]) -> None:
    """Remove an empty file at ``path``, which holds nothing to lose: the lock of an earlier
    matteralign (an empty file it held with flock, waited for here while it still does)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            note(f"waiting for {path}, held by a build of an earlier matteralign")
            fcntl.flock(fd, fcntl.LOCK_EX)
        held, now = os.fstat(fd), os.stat(path)
        same = (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)
        if same and now.st_size == 0 and time.time() - now.st_mtime > _YOUNG_S:
            os.unlink(path)
            note(f"replaced the empty lock file {path} (left by an earlier matteralign)")
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def _take_over(path: Path, stale: Mapping[str, Any], note: Callable[[str], None]) -> None:
    """Remove the stale lock ``stale`` at ``path``; a lock another process put there since it
    was read stays."""
    aside = path.with_name(f".{path.name}.stale-{secrets.token_hex(4)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another process took it over first
    try:
        moved = read_lock(aside)
    except NotALockError:
        moved = None
    if moved is None or moved.get("token") != stale.get("token"):
        try:
            os.link(aside, path)  # a file put there meanwhile: back it goes
        except FileExistsError:
            return  # (and a third one since: the moved one stays aside, not deleted)
        aside.unlink()
        return
    aside.unlink()
    note(f"took over the stale lock {path} of {describe(stale)}: that process is gone")


def acquire(path: str | os.PathLike[str], info: Mapping[str, Any], *,
            wait: float | None = 0.0, poll: float = 1.0,
            note: Callable[[str], None] = print) -> dict[str, Any]:
    """Take the lock at ``path`` for this process and return its record.

    A live holder is waited for up to ``wait`` seconds (None: as long as it takes, told once
    through ``note``), then :class:`LockHeldError` names it; a stale lock is taken over; a
    file that is not a lock raises :class:`NotALockError` and is left as it is."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = new_record(info)
    deadline = None if wait is None else time.monotonic() + wait
    told = False
    while True:
        if _create(path, record):
            return record
        holder = read_lock(path, str(info.get("purpose", "")))
        if holder is None:  # an empty file, or a lock released since
            if path.exists():
                _retire_empty(path, note)
                time.sleep(min(poll, 0.05))
            continue
        alive = holder_alive(holder)
        if alive is False:
            _take_over(path, holder, note)
            continue
        if deadline is not None and time.monotonic() >= deadline:
            where = "" if alive else (
                f"; it was taken on another host, so whether it still runs cannot be told "
                f"from here: if it is gone, delete {path}")
            raise LockHeldError(f"{path} is held by {describe(holder)}{where}", holder)
        if not told:
            note(f"waiting for {path}, held by {describe(holder)}")
            told = True
        time.sleep(poll)


def release(path: str | os.PathLike[str], record: Mapping[str, Any]) -> bool:
    """Delete the lock at ``path`` if it is still ``record``'s (same token); True if it was."""
    path = Path(path)
    try:
        holder = read_lock(path)
    except NotALockError:
        return False
    if holder is None or holder.get("token") != record.get("token"):
        return False
    path.unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], info: Mapping[str, Any], *,
           wait: float | None = 0.0, poll: float = 1.0,
           note: Callable[[str], None] = print) -> Iterator[dict[str, Any]]:
    """:func:`acquire` for the block, :func:`release` after it (also on an error)."""
    record = acquire(path, info, wait=wait, poll=poll, note=note)
    try:
        yield record
    finally:
        release(path, record)
