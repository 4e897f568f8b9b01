"""An in-process Relay on a real SQLite store with sessions on socket pairs: for relay unit
tests that read what a session would receive from its staged output (no relay process)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

from relay.config import RelayConfig
from relay.connection import Connection, ConnState
from relay.handlers import HANDLERS
from relay.loop import Relay
from relay.store import Store


@contextlib.contextmanager
def in_process_relay(path: Path, *names: str) -> Iterator[Relay]:
    """A Relay over a new store at ``path`` with users ``names`` (uids 1, 2, ... in order);
    every session and socket it made is closed at the end."""
    with Store(path) as store:
        for name in names:
            assert store.add_user(name, name, "h", 0) is not None
        store.commit()
        relay = Relay(RelayConfig(), store, None, HANDLERS)
        try:
            yield relay
        finally:
            for conn in list(relay.connections.values()):
                relay.close(conn, "test over")
            for peer in _PEERS.pop(id(relay), []):
                peer.close()
            relay.hasher.close()
            relay.readiness.selector.close()


_PEERS: dict[int, list[socket.socket]] = {}


def online(relay: Relay, uid: int, version: int = 2, device: str = "") -> Connection:
    """A logged-in session of ``uid`` on device ``device`` (v2.1 when named), its far end
    kept open so writes succeed."""
    ours, theirs = socket.socketpair()
    _PEERS.setdefault(id(relay), []).append(theirs)
    ours.setblocking(False)
    conn = Connection(uid, ours, f"peer{uid}", "127.0.0.1", 65536, 0.0)
    conn.state = ConnState.OPEN
    conn.uid = uid
    conn.version = version
    conn.box = relay.devices.register(uid, device, 0)
    conn.device, conn.v21 = device, bool(device)
    relay.connections[conn.id] = conn
    relay.sessions.attach(conn)
    return conn
