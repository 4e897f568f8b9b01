"""Live figures of the running relay for its admin: ``status.json`` and the summary line.

The relay writes ``<data dir>/status.json`` every :data:`STATUS_INTERVAL` seconds
(:class:`StatusReporter`, driven by the loop's once-a-second maintenance) and logs a
one-line summary every ``summary_interval`` seconds. ``parley-relay status``
(:func:`run_status_command`) reads the file, adds the figures it reads from the store itself
(rooms, the largest queues: :mod:`relay.store.stats`) and prints them.

Invariants:
- What the loop pays per status write: one pass over its connections (no SQL, no store
  read), a small JSON document written to a temporary file and renamed over the old one (a
  reader never sees half a file), mode 0600 in the 0700 data dir: only the relay's user
  reads it. The summary line adds one bounded query (:func:`relay.store.stats.
  largest_inbox_of`) per summary interval.
- A failed write (disk full, data dir gone) is logged once, until a write succeeds again;
  the relay goes on.
- The command trusts the file only while the data dir's lock is held
  (:mod:`relay.instance_lock`) by the pid the file names, and only while the file is
  younger than ``--max-age``; otherwise it says the relay is not running, or stuck, and
  exits non-zero.
- Usernames, devices and peers are untrusted text: printed with every unprintable
  character replaced.

State owned: when the next status write and summary are due, and the counters at the last
of each.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import quote

from relay.config import RelayConfig
from relay.connection import Connection, ConnState
from relay.instance_lock import lock_holder
from relay.store import Store
from relay.store.stats import largest_inbox_of, largest_inboxes, room_count, store_bytes

log = logging.getLogger("parley.relay")

STATUS_FILE_NAME = "status.json"
STATUS_FORMAT = 1
STATUS_INTERVAL = 2.0  # seconds between two writes of status.json
DEFAULT_MAX_AGE = 10.0  # a status older than this: the relay is stuck (5 missed writes)
TOP = 5  # largest queues and output buffers listed

EXIT_NOT_RUNNING = 3
EXIT_NO_FRESH_STATUS = 4


def relay_version() -> str:
    """The installed package's version, read from its dist-info on ``sys.path``: importing
    ``importlib.metadata`` would cost every relay 2 MiB of memory and 20 ms of start."""
    for entry in sys.path:
        for info in sorted(Path(entry or ".").glob("parley_chat-*.dist-info")):
            with contextlib.suppress(OSError):
                for line in (info / "METADATA").read_text(encoding="utf-8").splitlines():
                    if line.startswith("Version:"):
                        return line.partition(":")[2].strip()
                    if not line:
                        break  # the headers end at the first empty line
    return "unknown"


class StatusSource(Protocol):
    """What the status reads of the loop."""

    config: RelayConfig
    store: Store
    connections: dict[int, Connection]
    now: float
    wall: int
    message_count: int
    durable_count: int


def live_figures(connections: dict[int, Connection]) -> dict[str, Any]:
    """Sessions (logged-in, open connections), devices (distinct (uid, device) among the
    sessions that receive), connections, and the largest output buffers: one pass."""
    sessions = 0
    devices: set[tuple[int, str]] = set()
    for conn in connections.values():
        if conn.uid and conn.state is ConnState.OPEN:
            sessions += 1
            if not conn.send_only:
                devices.add((conn.uid, conn.device))
    buffers = heapq.nlargest(
        TOP,
        (conn for conn in connections.values() if conn.pending_bytes),
        key=lambda conn: conn.pending_bytes,
    )
    return {
        "connections": len(connections),
        "sessions": sessions,
        "devices": len(devices),
        "output_buffers": [
            {
                "conn": conn.id,
                "uid": conn.uid,
                "user": conn.username,
                "device": conn.device,
                "peer": conn.peer,
                "bytes": conn.pending_bytes,
            }
            for conn in buffers
        ],
    }


def write_private_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` at once (temporary file, then rename), mode 0600."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    os.replace(temporary, path)


class StatusReporter:
    """status.json and the summary line of one relay (module docstring)."""

    def __init__(self, config: RelayConfig, now: float, wall: float) -> None:
        self.path = config.data_dir / STATUS_FILE_NAME
        self._db_path = config.db_path
        self._summary_interval = config.summary_interval
        self._started_mono = now
        self._started_wall = wall
        self._version = relay_version()
        self._next_write = now
        self._last_write: tuple[float, int, int] | None = None  # now, messages, durable
        self._next_summary = now + config.summary_interval
        self._last_summary = (now, 0)  # now, messages
        self._write_failing = False

    def tick(self, loop: StatusSource) -> None:
        """Write status.json and log the summary line when they are due."""
        now = loop.now
        if now >= self._next_write:
            self._next_write = now + STATUS_INTERVAL
            self._write(loop)
        if self._summary_interval and now >= self._next_summary:
            self._next_summary = now + self._summary_interval
            self._summary(loop)

    def figures(self, loop: StatusSource) -> dict[str, Any]:
        """Everything status.json holds (the loop's side; module docstring)."""
        now = loop.now
        messages, durable = loop.message_count, loop.durable_count
        previous = self._last_write
        if previous is None or now <= previous[0]:
            rate = durable_rate = 0.0
        else:
            elapsed = now - previous[0]
            rate = (messages - previous[1]) / elapsed
            durable_rate = (durable - previous[2]) / elapsed
        self._last_write = (now, messages, durable)
        db_bytes, wal_bytes = store_bytes(self._db_path)
        return {
            "format": STATUS_FORMAT,
            "pid": os.getpid(),
            "version": self._version,
            "started": self._started_wall,
            "written": time.time(),
            "uptime_s": now - self._started_mono,
            "interval_s": STATUS_INTERVAL,
            **live_figures(loop.connections),
            "messages_total": messages,
            "messages_per_second": rate,
            "durable_per_second": durable_rate,
            "store_available": loop.store.available,
            "db_bytes": db_bytes,
            "wal_bytes": wal_bytes,
        }

    def _write(self, loop: StatusSource) -> None:
        data = json.dumps(self.figures(loop), indent=1).encode()
        try:
            write_private_atomically(self.path, data)
        except OSError as exc:
            if not self._write_failing:
                log.warning(
                    "cannot write %s (%s); 'parley-relay status' goes stale", self.path, exc
                )
            self._write_failing = True
            return
        if self._write_failing:
            log.info("%s is written again", self.path)
            self._write_failing = False

    def _summary(self, loop: StatusSource) -> None:
        now, messages = loop.now, loop.message_count
        since, counted = self._last_summary
        self._last_summary = (now, messages)
        rate = (messages - counted) / (now - since) if now > since else 0.0
        live = live_figures(loop.connections)
        try:
            queue = largest_inbox_of(loop.store)
        except sqlite3.Error as exc:
            largest = f"unknown ({exc})"
        else:
            largest = (
                "none"
                if queue is None
                else f"{_inbox_name(queue.username, queue.device)} {queue.messages} msgs"
            )
        db_bytes, wal_bytes = store_bytes(self._db_path)
        log.info(
            "summary: sessions=%d devices=%d connections=%d msgs/s=%.1f store=%s largest queue=%s",
            live["sessions"],
            live["devices"],
            live["connections"],
            rate,
            human_bytes(db_bytes + wal_bytes),
            largest,
        )

    def remove(self) -> None:
        """The relay stops: its status goes with it."""
        with contextlib.suppress(OSError):
            self.path.unlink()


# -- the command: parley-relay status ----------------------------------------------------------


def printable(text: str) -> str:
    """Untrusted text fit for a terminal: unprintable characters become '?'."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _inbox_name(username: object, device: object) -> str:
    name = printable(str(username))
    return f"{name} ({printable(str(device))})" if device else name


def human_bytes(size: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


def store_figures(db_path: Path) -> dict[str, Any]:
    """Rooms and the largest inboxes, read from the store by this process (read-only)."""
    uri = f"file:{quote(str(db_path))}?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True, timeout=5.0)
        try:
            queues = largest_inboxes(con, TOP)
            return {
                "rooms": room_count(con),
                "largest_queues": [queue._asdict() for queue in queues],
            }
        finally:
            con.close()
    except sqlite3.Error as exc:
        return {"rooms": None, "largest_queues": [], "store_error": str(exc)}


def _fail(message: str, code: int, err: TextIO) -> int:
    print(f"parley-relay: {message}", file=err)
    return code


def run_status_command(
    config: RelayConfig,
    *,
    as_json: bool,
    max_age: float = DEFAULT_MAX_AGE,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """``parley-relay status``: 0 with the figures; 3 if no relay runs on the data dir; 4
    if one runs but its status is missing or older than ``max_age`` seconds."""
    data_dir = config.data_dir
    holder = lock_holder(data_dir)
    if holder is None:
        return _fail(
            f"no relay is running on {data_dir} (nobody holds its relay.lock); start it "
            f"with 'parley-relay --data-dir {data_dir}' or 'systemctl start parley-relay'",
            EXIT_NOT_RUNNING,
            err,
        )
    if holder.purpose == "restore":
        return _fail(
            f"no relay is running on {data_dir}: {holder.describe()} is replacing its store; "
            f"start the relay once it is done",
            EXIT_NOT_RUNNING,
            err,
        )
    path = data_dir / STATUS_FILE_NAME
    try:
        status = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        status = None
    if not isinstance(status, dict) or status.get("pid") != holder.pid:
        return _fail(
            f"{holder.describe()} runs on {data_dir} but has written no status yet (it "
            f"writes {path.name} every {STATUS_INTERVAL:g} s): try again in a few seconds",
            EXIT_NO_FRESH_STATUS,
            err,
        )
    age = time.time() - float(status.get("written", 0))
    if age > max_age:
        return _fail(
            f"{holder.describe()} has not updated {path} for {age:.0f} s: it may be stuck. "
            f"Look at its log (journalctl -u parley-relay) and restart it if it stays so",
            EXIT_NO_FRESH_STATUS,
            err,
        )
    status["age_s"] = age
    status["data_dir"] = str(data_dir)
    status.update(store_figures(config.db_path))
    if as_json:
        json.dump(status, out, indent=2)
        out.write("\n")
    else:
        out.write(format_status(status))
    return 0


def format_status(status: dict[str, Any]) -> str:
    """The readable table of ``parley-relay status``."""
    store = "cannot write (disk full?)" if not status.get("store_available", True) else ""
    db_bytes, wal_bytes = int(status["db_bytes"]), int(status["wal_bytes"])
    rooms = "unknown" if status.get("rooms") is None else str(status["rooms"])
    age = float(status["age_s"])
    lines = [
        f"Parley relay {printable(str(status['version']))}, pid {status['pid']}, "
        f"up {_duration(float(status['uptime_s']) + age)} (figures {age:.0f} s old)",
        f"  sessions       {status['sessions']}",
        f"  devices        {status['devices']}",
        f"  connections    {status['connections']}",
        f"  rooms          {rooms}",
        f"  messages/s     {status['messages_per_second']:.1f} "
        f"(durable {status['durable_per_second']:.1f}; {status['messages_total']} since start)",
        f"  store          {human_bytes(db_bytes + wal_bytes)} (database "
        f"{human_bytes(db_bytes)} + log {human_bytes(wal_bytes)}) in "
        f"{printable(str(status['data_dir']))}",
    ]
    if store:
        lines.append(f"  store state    {store}")
    if status.get("store_error"):
        lines.append(f"  store figures  unreadable: {printable(str(status['store_error']))}")
    lines.append("Largest queues (messages stored for a device that is away)")
    queues = status.get("largest_queues") or []
    lines += [
        f"  {q['messages']:>10}  {_inbox_name(q['username'], q['device'])}" for q in queues
    ] or ["  none"]
    lines.append("Largest output buffers (bytes queued to a connection)")
    buffers = status.get("output_buffers") or []
    lines += [
        f"  {human_bytes(b['bytes']):>10}  conn {b['conn']} "
        f"{_inbox_name(b['user'] or '-', b['device'])} "
        f"from {printable(str(b['peer']))}"
        for b in buffers
    ] or ["  none"]
    return "\n".join(lines) + "\n"
