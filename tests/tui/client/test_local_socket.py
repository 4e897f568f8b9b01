"""Finding the relay's Unix socket: the order of candidates, and the relay's own default."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.config import default_unix_socket
from tui.client.local_socket import (
    SOCKET_ENV,
    SYSTEM_SOCKET,
    default_socket_candidates,
    find_local_socket,
)


@pytest.fixture
def xdg_socket(tmp_path: Path) -> Iterator[Path]:
    """A real listening socket where the relay's default puts it under $XDG_RUNTIME_DIR."""
    path = tmp_path / "parley" / "relay.sock"
    path.parent.mkdir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)
    try:
        yield path
    finally:
        listener.close()


@pytest.mark.parametrize("with_runtime_dir", [True, False])
def test_defaults_are_the_relays(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, with_runtime_dir: bool
) -> None:
    """For the same environment, the relay's default socket is the candidate the relay's
    rule picks: the system path for root or /run/parley's owner, else the next one."""
    if with_runtime_dir:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    else:
        monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    candidates = default_socket_candidates()
    system_relay = os.geteuid() == 0 or os.access(SYSTEM_SOCKET.parent, os.W_OK)
    assert Path(default_unix_socket()) == candidates[0 if system_relay else 1]
    assert candidates[0] == SYSTEM_SOCKET
    assert len(candidates) == (3 if with_runtime_dir else 2)


def test_an_existing_default_is_found(xdg_socket: Path, tmp_path: Path) -> None:
    if SYSTEM_SOCKET.exists():
        pytest.skip(f"a relay socket exists at {SYSTEM_SOCKET} on this machine; it comes first")
    assert find_local_socket({"XDG_RUNTIME_DIR": str(tmp_path)}) == xdg_socket


def test_a_missing_default_is_not_used(tmp_path: Path) -> None:
    if SYSTEM_SOCKET.exists() or Path(default_socket_candidates({})[-1]).exists():
        pytest.skip("a relay socket exists at a default path on this machine")
    assert find_local_socket({"XDG_RUNTIME_DIR": str(tmp_path)}) is None


def test_the_environment_variable_beats_the_defaults(xdg_socket: Path, tmp_path: Path) -> None:
    chosen = tmp_path / "elsewhere.sock"
    env = {"XDG_RUNTIME_DIR": str(tmp_path), SOCKET_ENV: str(chosen)}
    assert find_local_socket(env) == chosen  # explicit: used even before it exists
