"""The relay's Unix stream socket (PROTOCOL.md section 11): binding it safely, reading who is
on the other end, removing it.

Invariants:
- The socket's directory is owned by the relay's user and writable by nobody else (created
  0755 if missing; an existing one that others may write is refused), so no other user can
  replace the socket; the socket file itself is 0666, so every local user can connect.
- A socket file left by a relay that died is replaced; one another process still answers on
  is never touched: the relay refuses to start instead.
- Peer identity is the kernel's (``SO_PEERCRED``, read once at accept), never the packet's.
- :func:`remove_local_socket` unlinks the path only while it is still the file this relay
  bound (same inode), so a successor's socket is never removed.

Owns no state beyond the listening socket it returns.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_LIVE_CHECK_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """The process at the other end of a Unix socket, as the kernel saw it at connect."""

    pid: int
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class LocalListener:
    """A bound, listening Unix socket and the inode of its file."""

    sock: socket.socket
    path: Path
    inode: int


def _check_directory(directory: Path) -> None:
    """Create ``directory`` 0755, or check that an existing one only we can write."""
    if not directory.exists():
        directory.mkdir(parents=True, mode=0o755)
        directory.chmod(0o755)  # mkdir's mode is cut by the umask
        return
    info = directory.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError(f"unix socket directory {directory} is not a directory")
    if info.st_uid != os.geteuid():
        raise ValueError(
            f"unix socket directory {directory} belongs to uid {info.st_uid}, not to the "
            f"relay's user: another user could replace the socket; use another path"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        raise ValueError(
            f"unix socket directory {directory} is writable by other users (mode "
            f"{mode:04o}); run 'chmod 755 {directory}' and try again"
        )


def _clear_stale(path: Path) -> None:
    """Remove a socket file nobody answers on; refuse when a process answers on it."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ValueError(f"unix socket path {path} exists and is not a socket; remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(_LIVE_CHECK_TIMEOUT_S)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)  # stale: its relay is gone
        return
    except OSError as exc:
        raise ValueError(f"unix socket {path} cannot be checked: {exc}") from exc
    finally:
        probe.close()
    raise ValueError(
        f"another relay is listening on the unix socket {path}; stop it, or give this "
        f"one another --unix-socket (or --no-unix-socket)"
    )


def bind_local_socket(path: Path, backlog: int) -> LocalListener:
    """Bind and listen on ``path`` (module invariants); raises ``ValueError`` with what to do."""
    _check_directory(path.parent)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        path.chmod(0o666)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return LocalListener(sock, path, path.lstat().st_ino)


def remove_local_socket(listener: LocalListener) -> None:
    """Close the listener and unlink its file if it is still the one we bound."""
    listener.sock.close()
    with contextlib.suppress(OSError):
        if listener.path.lstat().st_ino == listener.inode:
            listener.path.unlink()


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """The connecting process's pid, uid and gid (``SO_PEERCRED``)."""
    pid, uid, gid = _PEERCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    )
    return PeerCredentials(pid, uid, gid)
