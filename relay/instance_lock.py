"""The data dir's lock: which process (a relay, or a restore) owns the store right now.

A running relay holds an exclusive ``flock`` on ``<data dir>/relay.lock`` for its whole
life; ``parley-relay restore`` takes the same lock while it replaces the database, and
``parley-relay status`` only looks whether someone holds it. The kernel drops a flock when
its holder exits, however it exits (SIGKILL, a crash): a lock is never stale, unlike a pid
file, and a pid that the system reused can never look like a live relay.

Invariants:
- At most one process holds the lock; the holder writes "PID PURPOSE" into the file right
  after taking it, so others can say who holds it.
- Taking the lock retries for up to ``wait`` seconds: a ``status`` command looking at the
  lock (a shared lock for a moment) never makes a relay's start fail.
- The lock file is private to the relay's user (0600), like everything in the data dir.

State owned: the open lock file of the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE_NAME = "relay.lock"
_RETRY_S = 0.05


@dataclass(frozen=True)
class LockHolder:
    """Who holds the lock, as its holder wrote it (pid 0 and purpose "" if unreadable)."""

    pid: int
    purpose: str

    def describe(self) -> str:
        what = {"relay": "a relay", "restore": "a restore"}.get(self.purpose, "a process")
        return f"{what} (pid {self.pid})" if self.pid else what


class DataDirBusy(Exception):
    """Another process holds the data dir's lock."""

    def __init__(self, holder: LockHolder) -> None:
        super().__init__(holder.describe())
        self.holder = holder


def _read_holder(path: Path) -> LockHolder:
    try:
        pid, _, purpose = path.read_text(encoding="ascii").strip().partition(" ")
        return LockHolder(int(pid), purpose)
    except (OSError, ValueError):
        return LockHolder(0, "")


def _open(data_dir: Path) -> int:
    return os.open(data_dir / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)


class DataDirLock:
    """The exclusive lock of one data dir, held until :meth:`release` (module docstring)."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path

    @classmethod
    def acquire(cls, data_dir: Path, purpose: str, wait: float = 2.0) -> DataDirLock:
        """Take the lock for ``purpose`` ("relay" or "restore"); raise :class:`DataDirBusy`
        if another process still holds it after ``wait`` seconds."""
        path = data_dir / LOCK_FILE_NAME
        fd = _open(data_dir)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise DataDirBusy(_read_holder(path)) from None
                time.sleep(_RETRY_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {purpose}\n".encode("ascii"), 0)
        return cls(fd, path)

    def release(self) -> None:
        """Give the lock up (idempotent); the file stays, empty of meaning."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = -1


def lock_holder(data_dir: Path) -> LockHolder | None:
    """Who holds ``data_dir``'s lock now, or None if nobody does (no relay runs on it)."""
    path = data_dir / LOCK_FILE_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
