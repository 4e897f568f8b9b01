"""Finding the relay's local Unix socket (PROTOCOL.md section 11) when no ``--host`` is given.

Invariants:
- Candidates come in one order: ``$PARLEY_SOCKET``, then the relay's documented defaults in
  the relay's own order (``/run/parley/relay.sock``, ``$XDG_RUNTIME_DIR/parley/relay.sock``,
  ``/tmp/parley-<uid>/relay.sock``). The defaults mirror ``relay.config.default_unix_socket``
  (this package never imports the relay); a test compares the two for the same environment.
- ``$PARLEY_SOCKET`` is the user's explicit choice: it is used whether or not it exists (a
  missing socket is then reported as unreachable). A default is used only if a socket file
  is there. The Textual-free client has no config file, so there is no config candidate.
- Nothing here connects: it only names paths and checks that they are sockets.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Mapping
from pathlib import Path

SOCKET_ENV = "PARLEY_SOCKET"
SYSTEM_SOCKET = Path("/run/parley/relay.sock")
SOCKET_FILE_NAME = "relay.sock"


def default_socket_candidates(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The relay's default socket paths, most system-wide first (see module invariants)."""
    env = os.environ if environ is None else environ
    candidates = [SYSTEM_SOCKET]
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime:
        candidates.append(Path(runtime) / "parley" / SOCKET_FILE_NAME)
    candidates.append(Path("/tmp") / f"parley-{os.geteuid()}" / SOCKET_FILE_NAME)
    return candidates


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except OSError:
        return False


def find_local_socket(environ: Mapping[str, str] | None = None) -> Path | None:
    """The socket to log in on: ``$PARLEY_SOCKET`` if set, else the first default that
    exists, else None (then the client uses TLS to localhost as before)."""
    env = os.environ if environ is None else environ
    explicit = env.get(SOCKET_ENV)
    if explicit:
        return Path(explicit)
    return next((p for p in default_socket_candidates(env) if _is_socket(p)), None)


def local_login_name() -> str:
    """This process's Unix login name: the name the relay gives a new local account."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid{os.geteuid()}"
