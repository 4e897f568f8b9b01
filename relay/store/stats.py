"""Read-only figures about a store for its operator: size on disk, rooms, the largest queues.

Used by ``parley-relay status`` (its own read-only connection, beside the running relay)
and by the relay's periodic summary line (:mod:`relay.status`).

Invariants:
- Nothing here writes. Each function costs at most one pass over the users (or devices)
  table through its seq columns (stored messages of an inbox = ``head_seq -
  delivered_seq``), never a scan of the message tables: the relay calls
  :func:`largest_inboxes` once per summary interval only (default 5 minutes), and the status
  command runs in its own process.
- Tolerant of the schema's age: a store without a ``rooms`` table has 0 rooms; queues are
  per (user, device) once the schema has devices, per user before.

Owns no state.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import NamedTuple

from relay.store.database import Database
from relay.store.inboxes import BOX_BASE

SQL_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"
SQL_ROOM_COUNT = "SELECT count(*) FROM rooms"
SQL_LARGEST_USER_INBOXES = (
    "SELECT uid, username, '', head_seq - delivered_seq AS stored FROM users"
    " WHERE head_seq > delivered_seq ORDER BY stored DESC, uid LIMIT ?"
)
# With devices (schema 7): a user's uid box keeps its seqs in users (its device, if one has
# adopted it, is the devices row whose box is the uid); every other box in devices.
SQL_LARGEST_DEVICE_INBOXES = (
    "SELECT u.uid, u.username, coalesce(d.name, ''), u.head_seq - u.delivered_seq AS stored"
    " FROM users AS u LEFT JOIN devices AS d ON d.box = u.uid"
    " WHERE u.head_seq > u.delivered_seq"
    " UNION ALL"
    " SELECT d.uid, u.username, d.name, d.head_seq - d.delivered_seq"
    " FROM devices AS d JOIN users AS u ON u.uid = d.uid"
    f" WHERE d.box >= {BOX_BASE} AND d.head_seq > d.delivered_seq"
    " ORDER BY stored DESC LIMIT ?"
)
_DEVICE_SEQ_COLUMNS = frozenset({"box", "uid", "name", "head_seq", "delivered_seq"})


class InboxQueue(NamedTuple):
    """One inbox and the messages stored in it, waiting for its device."""

    uid: int
    username: str
    device: str
    messages: int


def store_bytes(db_path: Path) -> tuple[int, int]:
    """Bytes of the database file and of its write-ahead log (0 for a missing file)."""
    sizes = []
    for path in (db_path, db_path.with_name(db_path.name + "-wal")):
        try:
            sizes.append(path.stat().st_size)
        except FileNotFoundError:
            sizes.append(0)
    return sizes[0], sizes[1]


def _tables(con: sqlite3.Connection) -> set[str]:
    return {name for (name,) in con.execute(SQL_TABLES)}


def room_count(con: sqlite3.Connection) -> int:
    """Rooms in the store (0 when its schema has no rooms table yet)."""
    if "rooms" not in _tables(con):
        return 0
    count: int = con.execute(SQL_ROOM_COUNT).fetchone()[0]
    return count


def largest_inboxes(con: sqlite3.Connection, limit: int) -> list[InboxQueue]:
    """The ``limit`` inboxes holding the most stored messages, largest first (empty ones
    left out): per device box where the schema has devices, else per user. A user's uid box
    that no device has adopted yet is listed with the device ""."""
    sql = SQL_LARGEST_USER_INBOXES
    if "devices" in _tables(con):
        columns = {row[1] for row in con.execute("PRAGMA table_info(devices)")}
        if columns >= _DEVICE_SEQ_COLUMNS:
            sql = SQL_LARGEST_DEVICE_INBOXES
    return [InboxQueue(*row) for row in con.execute(sql, (limit,))]


def largest_inbox_of(db: Database) -> InboxQueue | None:
    """The relay's own store's largest inbox (the summary line's figure), or None."""
    queues = largest_inboxes(db._con, 1)
    return queues[0] if queues else None
