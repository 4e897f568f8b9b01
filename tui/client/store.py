"""Local SQLite state of one user on one relay: history, outbox and the inbox cursor.

SQL only: the values it stores and returns are the domain types of
:mod:`tui.client.history`.

Invariants:
- One database file per (relay, user), created mode 0600 in a 0700 directory.
- ``messages.local_id`` grows with local time (creation for ours, arrival for theirs); the
  ``(peer, local_id)`` index makes a conversation page a bounded index range scan, whatever
  the conversation's length.
- The outbox is the set of outgoing rows in state PENDING. An outgoing message is committed
  (:meth:`LocalStore.add_outgoing`) before anyone can send it. ``msg_id`` of outgoing rows is
  unique, non-zero and fits 63 bits (SQLite integers are signed).
- An inbound durable message is stored at most once per inbox ``seq`` (unique index);
  ``meta.last_seq`` is the inbox cursor: everything up to it has been stored.
  :meth:`add_incoming` does not commit: the caller commits before acknowledging (so an Ack
  never claims a message the disk does not have).
- State transitions of outgoing rows only move forward: PENDING → SENT → DELIVERED, PENDING →
  FAILED, FAILED → PENDING (explicit resend) or SENT (a late OK Ack); DELIVERED is final.
- ``conversations.unread`` counts incoming messages of the chat-visible types
  (:data:`UNREAD_TYPES`) only: board strokes and transfer control messages never count.
- ``snapshots`` holds derived state that can always be rebuilt from ``messages`` (e.g. a
  drawing board as of a local id): losing or ignoring a row costs time, never data.
- Everything runs on the caller's thread; WAL + synchronous=NORMAL keeps each call short.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import platformdirs

from protocol import chat_pb2 as pb
from protocol.validation import username_key
from tui.client.history import UNREAD_TYPES, Conversation, HistoryEntry, MessageState
from tui.client.sqlite_files import open_private_database

SCHEMA_VERSION = 1
MAX_MESSAGE_ID = (1 << 63) - 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS peers (
    uid      INTEGER PRIMARY KEY,
    username TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS conversations (
    peer          INTEGER PRIMARY KEY,
    last_local_id INTEGER NOT NULL,
    unread        INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS messages (
    local_id  INTEGER PRIMARY KEY,
    peer      INTEGER NOT NULL,
    outgoing  INTEGER NOT NULL,
    msg_id    INTEGER NOT NULL,
    seq       INTEGER,
    type      INTEGER NOT NULL,
    text      TEXT NOT NULL,
    data      BLOB NOT NULL,
    file      BLOB,
    timestamp INTEGER NOT NULL,
    state     INTEGER NOT NULL,
    code      INTEGER NOT NULL DEFAULT 0,
    attempts  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_peer ON messages (peer, local_id);
CREATE UNIQUE INDEX IF NOT EXISTS inbound_seq ON messages (seq)
    WHERE outgoing = 0 AND seq IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS outbound_id ON messages (msg_id) WHERE outgoing = 1;
CREATE INDEX IF NOT EXISTS outbox ON messages (local_id) WHERE outgoing = 1 AND state = 0;
CREATE TABLE IF NOT EXISTS snapshots (
    key   TEXT PRIMARY KEY,
    upto  INTEGER NOT NULL,
    data  TEXT NOT NULL
);
"""

_COLUMNS = (
    "local_id, peer, outgoing, msg_id, seq, type, text, data, file, timestamp, state, code, "
    "attempts"
)


def default_data_dir() -> Path:
    """Where histories live by default (platformdirs user data dir)."""
    return Path(platformdirs.user_data_dir("parley"))


def history_path(data_dir: Path, host: str, port: int, username: str) -> Path:
    """The database of ``username`` on relay ``host:port`` under ``data_dir``.

    The name is readable but sanitised, with a short hash so distinct keys never collide.
    """
    key = f"{host.lower()}:{port}:{username_key(username)}"
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{host.lower()}_{port}_{username_key(username)}")
    readable = readable[:80]
    return data_dir / f"history-{readable.lstrip('.')}-{digest}.sqlite3"


class LocalStore:
    """The database; see the module docstring for its invariants."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._db.row_factory = None
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._db.commit()

    @classmethod
    def open(cls, path: Path | str) -> LocalStore:
        """Open (creating if needed) the database at ``path``; ``":memory:"`` for tests."""
        return cls(open_private_database(path, SCHEMA_VERSION))

    def close(self) -> None:
        self._db.commit()
        self._db.close()

    def commit(self) -> None:
        self._db.commit()

    # --- meta -------------------------------------------------------------------------

    def meta_get(self, key: str, default: int = 0) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else default

    def meta_set(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def last_seq(self) -> int:
        """The inbox cursor: every message with seq <= last_seq has been stored."""
        return from_sql_u64(self.meta_get("last_seq"))

    def set_last_seq(self, seq: int) -> None:
        """Move the cursor (not committed; commit before acknowledging ``seq``)."""
        self.meta_set("last_seq", to_sql_u64(seq))

    def rebase_inbox(self) -> None:
        """The relay's inbox restarted below our cursor: forget inbound seqs, cursor = 0."""
        self._db.execute("UPDATE messages SET seq = NULL WHERE outgoing = 0")
        self.meta_set("last_seq", 0)
        self._db.commit()

    # --- peers and conversations --------------------------------------------------------

    def set_peer_names(self, names: Iterable[tuple[int, str]]) -> None:
        self._db.executemany(
            "INSERT INTO peers (uid, username) VALUES (?, ?) "
            "ON CONFLICT (uid) DO UPDATE SET username = excluded.username",
            list(names),
        )
        self._db.commit()

    def peer_name(self, uid: int) -> str | None:
        row = self._db.execute("SELECT username FROM peers WHERE uid = ?", (uid,)).fetchone()
        return str(row[0]) if row else None

    def conversations(self) -> list[Conversation]:
        """Every conversation, most recent first."""
        rows = self._db.execute(
            "SELECT c.peer, p.username, c.last_local_id, c.unread FROM conversations c "
            "LEFT JOIN peers p ON p.uid = c.peer ORDER BY c.last_local_id DESC"
        ).fetchall()
        return [Conversation(int(r[0]), r[1], int(r[2]), int(r[3])) for r in rows]

    def mark_read(self, peer: int) -> None:
        self._db.execute("UPDATE conversations SET unread = 0 WHERE peer = ?", (peer,))
        self._db.commit()

    def _touch_conversation(self, peer: int, local_id: int, unread: int) -> None:
        self._db.execute(
            "INSERT INTO conversations (peer, last_local_id, unread) VALUES (?, ?, ?) "
            "ON CONFLICT (peer) DO UPDATE SET last_local_id = excluded.last_local_id, "
            "unread = unread + excluded.unread",
            (peer, local_id, unread),
        )

    # --- history ------------------------------------------------------------------------

    def page(
        self,
        peer: int,
        *,
        before: int | None = None,
        limit: int = 50,
        types: Iterable[int] | None = None,
    ) -> list[HistoryEntry]:
        """Up to ``limit`` messages with ``peer`` older than local id ``before`` (newest page
        when None), oldest first. Pass the first entry's ``local_id`` as ``before`` to page
        back. ``types`` restricts to those ``Message.type`` values."""
        sql = f"SELECT {_COLUMNS} FROM messages WHERE peer = ?"
        args: list[object] = [peer]
        if before is not None:
            sql += " AND local_id < ?"
            args.append(before)
        if types is not None:
            wanted = sorted(set(types))
            sql += f" AND type IN ({','.join('?' * len(wanted))})"
            args.extend(wanted)
        sql += " ORDER BY local_id DESC LIMIT ?"
        args.append(limit)
        rows = self._db.execute(sql, args).fetchall()
        return [_entry(row) for row in reversed(rows)]

    def count(self, peer: int) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM messages WHERE peer = ?", (peer,))
        return int(row.fetchone()[0])

    def get(self, local_id: int) -> HistoryEntry | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE local_id = ?", (local_id,)
        ).fetchone()
        return _entry(row) if row else None

    def add_incoming(self, message: pb.Message) -> HistoryEntry | None:
        """Store a durable incoming message; None if its seq is already stored.

        Does not commit and does not move the cursor (see the module docstring).
        """
        entry = HistoryEntry.from_incoming(message)
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO messages (peer, outgoing, msg_id, seq, type, text, data, "
            "file, timestamp, state) VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.peer,
                to_sql_u64(entry.msg_id),
                to_sql_u64(entry.seq) if entry.seq is not None else None,
                entry.type,
                entry.text,
                entry.data,
                entry.file.SerializeToString() if entry.file is not None else None,
                entry.timestamp,
                int(MessageState.RECEIVED),
            ),
        )
        if cursor.rowcount == 0:
            return None
        local_id = int(cursor.lastrowid or 0)
        self._touch_conversation(entry.peer, local_id, int(entry.type in UNREAD_TYPES))
        return HistoryEntry.from_incoming(message, local_id)

    # --- snapshots of derived state -------------------------------------------------------

    def snapshot(self, key: str) -> tuple[int, str] | None:
        """The snapshot stored under ``key``: (the local id it covers up to, its data)."""
        row = self._db.execute("SELECT upto, data FROM snapshots WHERE key = ?", (key,))
        found = row.fetchone()
        return (int(found[0]), str(found[1])) if found else None

    def save_snapshot(self, key: str, upto: int, data: str) -> None:
        """Store (replace) the snapshot ``key`` covering messages up to ``upto``; commits."""
        self._db.execute(
            "INSERT INTO snapshots (key, upto, data) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET upto = excluded.upto, data = excluded.data",
            (key, upto, data),
        )
        self._db.commit()

    # --- outbox -------------------------------------------------------------------------

    def new_message_id(self) -> int:
        """A fresh random message id: non-zero, 63 bits, unused by any outgoing row."""
        while True:
            candidate = secrets.randbits(63)
            if candidate and self.find_outgoing(candidate) is None:
                return candidate

    def add_outgoing(
        self,
        peer: int,
        message_type: int,
        *,
        text: str = "",
        data: bytes = b"",
        file: pb.FileInfo | None = None,
        now: float | None = None,
    ) -> HistoryEntry:
        """Persist a durable outgoing message as PENDING and commit; returns its entry."""
        msg_id = self.new_message_id()
        timestamp = int(time.time() if now is None else now)
        cursor = self._db.execute(
            "INSERT INTO messages (peer, outgoing, msg_id, type, text, data, file, timestamp, "
            "state) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?)",
            (
                peer,
                msg_id,
                message_type,
                text,
                data,
                file.SerializeToString() if file is not None else None,
                timestamp,
                int(MessageState.PENDING),
            ),
        )
        local_id = int(cursor.lastrowid or 0)
        self._touch_conversation(peer, local_id, 0)
        self._db.commit()
        entry = self.get(local_id)
        assert entry is not None
        return entry

    def find_outgoing(self, msg_id: int) -> HistoryEntry | None:
        if not 0 < msg_id <= MAX_MESSAGE_ID:
            return None
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE outgoing = 1 AND msg_id = ?", (msg_id,)
        ).fetchone()
        return _entry(row) if row else None

    def pending(self) -> list[HistoryEntry]:
        """The outbox: outgoing PENDING entries, oldest first."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE outgoing = 1 AND state = 0 ORDER BY local_id"
        ).fetchall()
        return [_entry(row) for row in rows]

    def record_attempt(self, msg_id: int) -> int:
        """Count one more send of ``msg_id``; returns the new count (committed)."""
        self._db.execute(
            "UPDATE messages SET attempts = attempts + 1 WHERE outgoing = 1 AND msg_id = ?",
            (msg_id,),
        )
        self._db.commit()
        entry = self.find_outgoing(msg_id)
        return entry.attempts if entry else 0

    def _transition(
        self, msg_id: int, sets: str, args: tuple[object, ...], from_states: Iterable[MessageState]
    ) -> HistoryEntry | None:
        if not 0 < msg_id <= MAX_MESSAGE_ID:
            return None
        states = ",".join(str(int(s)) for s in from_states)
        cursor = self._db.execute(
            f"UPDATE messages SET {sets} WHERE outgoing = 1 AND msg_id = ? AND state IN ({states})",
            (*args, msg_id),
        )
        self._db.commit()
        return self.find_outgoing(msg_id) if cursor.rowcount else None

    def mark_sent(self, msg_id: int, seq: int, timestamp: int) -> HistoryEntry | None:
        """Ack OK: PENDING/FAILED → SENT. None if unknown or already SENT/DELIVERED."""
        return self._transition(
            msg_id,
            "state = ?, seq = ?, timestamp = ?, code = 0",
            (int(MessageState.SENT), to_sql_u64(seq) if seq else None, timestamp),
            (MessageState.PENDING, MessageState.FAILED),
        )

    def mark_delivered(self, msg_id: int) -> HistoryEntry | None:
        """Receipt: any outgoing state but DELIVERED → DELIVERED."""
        return self._transition(
            msg_id,
            "state = ?, code = 0",
            (int(MessageState.DELIVERED),),
            (MessageState.PENDING, MessageState.SENT, MessageState.FAILED),
        )

    def mark_failed(self, msg_id: int, code: int) -> HistoryEntry | None:
        """Refused or out of attempts: PENDING → FAILED, keeping the refusal code."""
        return self._transition(
            msg_id,
            "state = ?, code = ?",
            (int(MessageState.FAILED), code),
            (MessageState.PENDING,),
        )

    def reset_for_resend(self, msg_id: int) -> HistoryEntry | None:
        """User asked to resend: FAILED → PENDING with a fresh attempt budget."""
        return self._transition(
            msg_id,
            "state = ?, code = 0, attempts = 0",
            (int(MessageState.PENDING),),
            (MessageState.FAILED,),
        )


def to_sql_u64(value: int) -> int:
    """A uint64 as the signed 64-bit integer SQLite stores (two's complement)."""
    return value - (1 << 64) if value > MAX_MESSAGE_ID else value


def from_sql_u64(value: int) -> int:
    """Inverse of :func:`to_sql_u64`."""
    return value + (1 << 64) if value < 0 else value


def _entry(row: Any) -> HistoryEntry:
    (
        local_id,
        peer,
        outgoing,
        msg_id,
        seq,
        mtype,
        text,
        data,
        file,
        timestamp,
        state,
        code,
        attempts,
    ) = row
    info: pb.FileInfo | None = None
    if file is not None:
        info = pb.FileInfo()
        info.ParseFromString(bytes(file))
    return HistoryEntry(
        local_id=int(local_id),
        peer=int(peer),
        outgoing=bool(outgoing),
        msg_id=from_sql_u64(int(msg_id)),
        seq=from_sql_u64(int(seq)) if seq is not None else None,
        type=int(mtype),
        text=str(text),
        data=bytes(data),
        file=info,
        timestamp=int(timestamp),
        state=MessageState(state),
        code=int(code),
        attempts=int(attempts),
    )
