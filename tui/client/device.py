"""The device names of Parley's own clients, and the slot locks that keep two apart.

PROTOCOL.md section 9: every receiving session names its device, and a new login on the
same (user, device) kicks the old one. Parley's clients are named after what they are and
the host they run on: ``tui@<host>`` for the TUI, ``tail@<host>`` for ``parley tail``;
``parley send`` is send-only and has no device. A user who runs two of the same kind at
once on one host (a second ssh login opens a second TUI) must not have them kick each
other, so each running client holds a *slot*: an exclusive ``fcntl.flock`` on a lock file
in its data directory. The first free slot wins: ``tui@host``, then ``tui@host#2``,
``tui@host#3``…; the kernel drops a lock when its process ends, so the next TUI that runs
second takes ``#2`` again (and finds that device's inbox and cursor where it left them).

Invariants:
- A name is this process's only while its :class:`DeviceClaim` holds the lock (until
  :meth:`DeviceClaim.release` or the process ends).
- Names are at most :data:`~tui.client.login.MAX_DEVICE_LENGTH` printable characters: the
  host part is shortened, never the kind or the slot suffix.
- Locks are per data directory and user (``devices/`` under the data dir, one file per
  user and name), so two users, or two data directories, never contend.
- A name chosen by the user (``--device``) is used as given, never replaced by another
  slot: it is locked when free; when another process holds it, it is used anyway (the
  user asked for it, and the relay then kicks the other session).
- Nothing here talks to the relay.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from protocol.validation import username_key
from tui.client.login import MAX_DEVICE_LENGTH, check_device

TUI = "tui"
TAIL = "tail"
MAX_SLOTS = 99  # beyond this many of one kind at once, the last slot is shared (and kicks)
LOCK_DIR = "devices"


def default_device(kind: str, slot: int = 1, hostname: str | None = None) -> str:
    """The name of slot ``slot`` (1 = the first) of ``kind`` on ``hostname`` (this host's
    name when None): ``tui@host``, ``tui@host#2``..."""
    host = hostname if hostname is not None else socket.gethostname()
    host = "".join(ch for ch in host if ch.isprintable()) or "localhost"
    suffix = "" if slot <= 1 else f"#{slot}"
    room = MAX_DEVICE_LENGTH - len(kind) - 1 - len(suffix)
    return check_device(f"{kind}@{host[:room]}{suffix}")


def lock_path(data_dir: Path, username: str, device: str) -> Path:
    """The lock file of ``username``'s ``device`` under ``data_dir`` (readable, sanitised,
    with a short hash so that distinct names never collide)."""
    key = f"{username_key(username)}\0{device}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9_.@#-]", "_", f"{username_key(username)}-{device}")[:80]
    return data_dir / LOCK_DIR / f"{readable.lstrip('.')}-{digest}.lock"


@dataclass
class DeviceClaim:
    """A device name and the lock that makes it this process's (None: not locked)."""

    name: str
    _fd: int | None = field(default=None, repr=False)

    @property
    def locked(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Give the slot back (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def __enter__(self) -> DeviceClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on ``path``, or None if another holds it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def claim_device(
    data_dir: Path,
    username: str,
    kind: str,
    *,
    explicit: str | None = None,
    hostname: str | None = None,
    max_slots: int = MAX_SLOTS,
) -> DeviceClaim:
    """The device this process of ``kind`` uses for ``username``: ``explicit`` if given
    (``ValueError`` if it is not a valid name), else the first free slot (see the module
    docstring). Release the claim when the session ends."""
    if explicit is not None:
        name = check_device(explicit)
        return DeviceClaim(name, _try_lock(lock_path(data_dir, username, name)))
    for slot in range(1, max_slots + 1):
        name = default_device(kind, slot, hostname)
        fd = _try_lock(lock_path(data_dir, username, name))
        if fd is not None:
            return DeviceClaim(name, fd)
    return DeviceClaim(default_device(kind, max_slots, hostname))
