"""relay.status without a process: the figures taken from connections, the readable table,
the data dir's lock. (The relay writing them and the command reading them are tested
against the real relay in tests/e2e/test_operator.py.)"""

from __future__ import annotations

import json
import socket
import stat
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from relay.config import RelayConfig
from relay.connection import Connection, ConnState
from relay.instance_lock import DataDirBusy, DataDirLock, lock_holder
from relay.status import (
    EXIT_NO_FRESH_STATUS,
    EXIT_NOT_RUNNING,
    format_status,
    human_bytes,
    live_figures,
    run_status_command,
    write_private_atomically,
)


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def connection(
    sockets: list[socket.socket],
    conn_id: int,
    uid: int = 0,
    device: str = "",
    send_only: bool = False,
    queued: int = 0,
    state: ConnState = ConnState.OPEN,
) -> Connection:
    ours, theirs = socket.socketpair()
    sockets += [ours, theirs]
    conn = Connection(conn_id, ours, f"peer{conn_id}", "127.0.0.1", 4096, 0.0)
    conn.state = state
    conn.uid, conn.username, conn.device, conn.send_only = uid, f"user{uid}", device, send_only
    if queued:
        conn.queue(b"x" * queued)
        conn.release_staged()
    return conn


def test_live_figures_count_sessions_devices_and_the_largest_buffers(
    sockets: list[socket.socket],
) -> None:
    conns = [
        connection(sockets, 1, uid=7, device="tui@box", queued=10),
        connection(sockets, 2, uid=7, device="tail@box", queued=500),
        connection(sockets, 3, uid=7, send_only=True),  # a session, but no device
        connection(sockets, 4, uid=8, device="", queued=30),
        connection(sockets, 5, uid=8, device=""),  # same (uid, device): one device
        connection(sockets, 6),  # not logged in
        connection(sockets, 7, uid=9, state=ConnState.CLOSING, queued=20),  # being reset
    ]
    figures = live_figures({conn.id: conn for conn in conns})
    assert (figures["connections"], figures["sessions"], figures["devices"]) == (7, 5, 3)
    assert [(b["conn"], b["bytes"]) for b in figures["output_buffers"]] == [
        (2, 500),
        (4, 30),
        (7, 20),
        (1, 10),
    ]
    assert figures["output_buffers"][0]["user"] == "user7"
    assert figures["output_buffers"][0]["device"] == "tail@box"


def status(**overrides: Any) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "version": "1.2.3",
        "pid": 42,
        "uptime_s": 7500.0,
        "age_s": 1.0,
        "sessions": 3,
        "devices": 2,
        "connections": 4,
        "rooms": 1,
        "messages_per_second": 2.5,
        "durable_per_second": 2.0,
        "messages_total": 99,
        "db_bytes": 3 * 1024 * 1024,
        "wal_bytes": 1024 * 1024,
        "store_available": True,
        "data_dir": "/var/lib/parley-relay",
        "largest_queues": [{"username": "bob", "device": "tui@box", "messages": 12}],
        "output_buffers": [
            {"conn": 5, "user": "alice", "device": "", "peer": "1.2.3.4:5", "bytes": 2048}
        ],
    }
    figures.update(overrides)
    return figures


def test_the_table_names_every_figure() -> None:
    table = format_status(status())
    assert "Parley relay 1.2.3, pid 42, up 2 h 05 min" in table
    for line in (
        "  sessions       3",
        "  devices        2",
        "  rooms          1",
        "  messages/s     2.5 (durable 2.0; 99 since start)",
        "  store          4.0 MiB (database 3.0 MiB + log 1.0 MiB) in /var/lib/parley-relay",
        "          12  bob (tui@box)",
        "     2.0 KiB  conn 5 alice from 1.2.3.4:5",
    ):
        assert line in table, table


def test_the_table_shows_untrusted_text_inert_and_says_when_the_store_cannot_write() -> None:
    hostile = "eve\x1b[2J\x07"
    table = format_status(
        status(
            store_available=False,
            largest_queues=[{"username": hostile, "device": "\r", "messages": 1}],
        )
    )
    assert "\x1b" not in table and "\x07" not in table and "\r" not in table
    assert "eve?[2J? (?)" in table
    assert "cannot write" in table


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * 1024**3)] == [
        "0 bytes",
        "1023 bytes",
        "1.0 KiB",
        "5.0 GiB",
    ]


def test_the_lock_is_exclusive_names_its_holder_and_goes_with_it(tmp_path: Path) -> None:
    assert lock_holder(tmp_path) is None
    lock = DataDirLock.acquire(tmp_path, "restore")
    assert stat.S_IMODE((tmp_path / "relay.lock").stat().st_mode) == 0o600
    holder = lock_holder(tmp_path)
    assert holder is not None and holder.purpose == "restore"
    with pytest.raises(DataDirBusy) as busy:
        DataDirLock.acquire(tmp_path, "relay", wait=0.0)
    assert "a restore (pid " in str(busy.value)
    lock.release()
    lock.release()  # idempotent
    assert lock_holder(tmp_path) is None
    DataDirLock.acquire(tmp_path, "relay", wait=0.0).release()


def test_the_command_trusts_only_the_status_of_the_lock_holder(tmp_path: Path) -> None:
    config = RelayConfig(data_dir=tmp_path)
    out, err = StringIO(), StringIO()
    assert run_status_command(config, as_json=True, out=out, err=err) == EXIT_NOT_RUNNING
    lock = DataDirLock.acquire(tmp_path, "relay")
    try:
        # A status file left by an earlier relay (another pid) is not this relay's.
        write_private_atomically(
            tmp_path / "status.json", json.dumps(status(pid=1, written=0.0)).encode()
        )
        err = StringIO()
        assert run_status_command(config, as_json=True, out=out, err=err) == (EXIT_NO_FRESH_STATUS)
        assert "has written no status yet" in err.getvalue()
        assert stat.S_IMODE((tmp_path / "status.json").stat().st_mode) == 0o600
    finally:
        lock.release()
    assert out.getvalue() == ""
