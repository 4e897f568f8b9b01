"""Persistent state of file transfers, both directions, in a small SQLite file of its own.

One database per (relay, user), next to the history database (:func:`transfers_path`), so
a restarted app resumes: a receiver from its part file, a sender from the source path it
recorded when the receiver re-accepts.

Invariants:
- A row exists for every transfer this client has offered or been offered since the file
  was created; ``id`` (the local handle) never changes and is never reused.
- ``(outgoing, peer, transfer_id)`` is unique for protocol-v2 transfers (``transfer_id``
  > 0); a v1 FILE (``transfer_id`` 0) is keyed by ``history_id``, the local id of the
  history row that holds its data.
- States only move forward: OFFERED → ACTIVE → COMPLETED, and any non-final state →
  DECLINED / CANCELLED / FAILED. Final states are never left (:meth:`TransferStore.update`
  refuses to), so a late or replayed message cannot revive a finished transfer.
- Every write commits before returning (WAL, synchronous=NORMAL: cheap); all of it runs on
  the caller's thread, like :class:`tui.client.store.LocalStore`.
"""

from __future__ import annotations

import enum
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from tui.client.sqlite_files import open_private_database
from tui.client.store import from_sql_u64, history_path, to_sql_u64

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transfers (
    id           INTEGER PRIMARY KEY,
    outgoing     INTEGER NOT NULL,
    peer         INTEGER NOT NULL,
    transfer_id  INTEGER NOT NULL,
    name         TEXT NOT NULL,
    offered_name TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sha256       BLOB NOT NULL,
    state        INTEGER NOT NULL,
    offset       INTEGER NOT NULL DEFAULT 0,
    start_offset INTEGER NOT NULL DEFAULT 0,
    sent_bytes   INTEGER NOT NULL DEFAULT 0,
    path         TEXT,
    part_path    TEXT,
    legacy       INTEGER NOT NULL DEFAULT 0,
    history_id   INTEGER,
    offer_msg_id INTEGER,
    source_mtime INTEGER,
    reason       TEXT NOT NULL DEFAULT '',
    created      REAL NOT NULL,
    updated      REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS transfers_by_wire_id
    ON transfers (outgoing, peer, transfer_id) WHERE transfer_id != 0;
CREATE UNIQUE INDEX IF NOT EXISTS transfers_by_history
    ON transfers (history_id) WHERE history_id IS NOT NULL;
"""


class TransferState(enum.IntEnum):
    OFFERED = 0  # outgoing: offer sent, no answer yet; incoming: waiting for accept/decline
    ACTIVE = 1  # accepted: bytes are moving, or will when both sides are online
    COMPLETED = 2  # verified (SHA-256 and size) and in place; the sender got the confirmation
    DECLINED = 3  # the receiver said no
    CANCELLED = 4  # either side cancelled (``reason`` says who)
    FAILED = 5  # refused by the relay, checksum mismatch, unreadable source… (``reason``)

    @property
    def final(self) -> bool:
        return self >= TransferState.COMPLETED


@dataclass(frozen=True)
class Transfer:
    """A snapshot of one transfer; events carry these. Text fields from the peer are
    untrusted: ``name`` is already a safe base name, ``offered_name`` is the sender's
    name with terminal controls removed — show either as plain text, never as markup.

    ``id`` is the local handle every :class:`~tui.client.transfer.TransferManager` method
    takes; ``transfer_id`` is the wire id (0 for a v1 FILE). ``offset``: bytes confirmed
    (receiver: contiguous bytes received; sender: bytes the receiver acknowledged).
    ``path``: sender: the source file; receiver: where the file goes (set on accept, final
    after completion). ``start_offset``: where the last (re)start began (> 0: resumed).
    ``sent_bytes``: sender: chunk bytes transmitted, retransmissions included.
    ``rate`` (bytes/s) and ``eta`` (s, None when unknown) are live estimates, 0/None when
    idle.
    """

    id: int
    outgoing: bool
    peer: int
    transfer_id: int
    name: str
    offered_name: str
    size: int
    sha256: bytes
    state: TransferState
    offset: int = 0
    start_offset: int = 0
    sent_bytes: int = 0
    path: Path | None = None
    part_path: Path | None = None
    legacy: bool = False
    history_id: int | None = None
    offer_msg_id: int | None = None
    source_mtime: int | None = None
    reason: str = ""
    created: float = 0.0
    updated: float = 0.0
    rate: float = 0.0
    eta: float | None = None


_COLUMNS = tuple(f.name for f in fields(Transfer) if f.name not in {"rate", "eta"})
_PATH_COLUMNS = {"path", "part_path"}
_U64_COLUMNS = {"transfer_id", "offer_msg_id"}


def transfers_path(data_dir: Path, host: str, port: int, username: str) -> Path:
    """The transfers database of ``username`` on ``host:port``, next to its history."""
    history = history_path(data_dir, host, port, username)
    return history.with_name("transfers-" + history.name.removeprefix("history-"))


def _to_sql(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in _PATH_COLUMNS:
        return str(value)
    if column in _U64_COLUMNS:
        return to_sql_u64(int(value))
    if isinstance(value, enum.IntEnum | bool):
        return int(value)
    return value


def _row(row: Any) -> Transfer:
    values = dict(zip(_COLUMNS, row, strict=True))
    for column in _PATH_COLUMNS:
        if values[column] is not None:
            values[column] = Path(values[column])
    for column in _U64_COLUMNS:
        if values[column] is not None:
            values[column] = from_sql_u64(int(values[column]))
    values["state"] = TransferState(values["state"])
    values["outgoing"] = bool(values["outgoing"])
    values["legacy"] = bool(values["legacy"])
    values["sha256"] = bytes(values["sha256"])
    return Transfer(**values)


class TransferStore:
    """The ``transfers`` table; see the module docstring."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._db.commit()

    @classmethod
    def open(cls, path: Path | str) -> TransferStore:
        """Open (creating if needed, mode 0600 in a 0700 dir) ``path``; ``":memory:"`` too."""
        return cls(open_private_database(path, SCHEMA_VERSION))

    def close(self) -> None:
        self._db.commit()
        self._db.close()

    def add(self, transfer: Transfer) -> Transfer:
        """Insert a new transfer (its ``id`` is ignored and assigned); returns the stored one.
        ``sqlite3.IntegrityError`` if its wire id or history id is already known."""
        now = time.time()
        transfer = replace(transfer, created=transfer.created or now, updated=now)
        columns = [c for c in _COLUMNS if c != "id"]
        cursor = self._db.execute(
            f"INSERT INTO transfers ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})",
            [_to_sql(c, getattr(transfer, c)) for c in columns],
        )
        self._db.commit()
        return replace(transfer, id=int(cursor.lastrowid or 0))

    def update(self, transfer: Transfer, **changes: Any) -> Transfer:
        """Apply ``changes`` to the stored row of ``transfer``; returns the new snapshot.
        A transfer in a final state is returned unchanged (final states are final)."""
        current = self.get(transfer.id)
        if current is None:
            raise KeyError(f"no transfer {transfer.id}")
        if current.state.final:
            return current
        unknown = set(changes) - set(_COLUMNS) - {"id"}
        if unknown or "id" in changes:
            raise ValueError(f"cannot update {sorted(unknown or {'id'})}")
        changes["updated"] = time.time()
        assignments = ", ".join(f"{c} = ?" for c in changes)
        self._db.execute(
            f"UPDATE transfers SET {assignments} WHERE id = ?",
            [*(_to_sql(c, v) for c, v in changes.items()), transfer.id],
        )
        self._db.commit()
        return replace(current, **changes)

    def get(self, local_id: int) -> Transfer | None:
        row = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM transfers WHERE id = ?", (local_id,)
        ).fetchone()
        return _row(row) if row else None

    def find(self, outgoing: bool, peer: int, transfer_id: int) -> Transfer | None:
        """The v2 transfer with this wire id (None for ``transfer_id`` 0)."""
        if transfer_id <= 0:
            return None
        row = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM transfers "
            "WHERE outgoing = ? AND peer = ? AND transfer_id = ?",
            (int(outgoing), peer, to_sql_u64(transfer_id)),
        ).fetchone()
        return _row(row) if row else None

    def find_room_offer(self, transfer_id: int) -> Transfer | None:
        """The file this user offered to a room (``peer`` = the room's negative id) with
        this wire id: each member who accepts it gets a transfer of its own."""
        if transfer_id <= 0:
            return None
        row = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM transfers "
            "WHERE outgoing = 1 AND peer < 0 AND transfer_id = ?",
            (to_sql_u64(transfer_id),),
        ).fetchone()
        return _row(row) if row else None

    def find_by_history(self, history_id: int) -> Transfer | None:
        row = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM transfers WHERE history_id = ?", (history_id,)
        ).fetchone()
        return _row(row) if row else None

    def find_by_offer(self, msg_id: int) -> Transfer | None:
        row = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM transfers WHERE offer_msg_id = ?",
            (to_sql_u64(msg_id),),
        ).fetchone()
        return _row(row) if row else None

    def all(self, *, include_final: bool = True, limit: int = 1000) -> list[Transfer]:
        """Transfers, newest first (at most ``limit``)."""
        where = "" if include_final else f"WHERE state < {int(TransferState.COMPLETED)}"
        rows = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM transfers {where} ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [_row(r) for r in rows]

    def unfinished(self) -> Iterator[Transfer]:
        """Transfers not in a final state, oldest first."""
        rows = self._db.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM transfers "
            f"WHERE state < {int(TransferState.COMPLETED)} ORDER BY id"
        ).fetchall()
        return (_row(r) for r in rows)

    def delete(self, local_id: int) -> bool:
        """Forget a transfer in a final state (the Files pane's "clear"); False otherwise."""
        cursor = self._db.execute(
            f"DELETE FROM transfers WHERE id = ? AND state >= {int(TransferState.COMPLETED)}",
            (local_id,),
        )
        self._db.commit()
        return cursor.rowcount > 0
