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
- Every device (PROTOCOL.md section 9) has its own inbox ``seq`` space and cursor: the
  ``received`` table maps each (device, seq) stored to its message row, at most once; the
  cursor of device ``d`` is ``meta["last_seq"]`` for the device ``""`` (what schema 1
  kept) and ``meta["last_seq@d"]`` otherwise: everything of that device's inbox up to it
  has been stored. Several devices may share one file (the TUI, ``parley tail`` and
  ``parley send`` of one user on one box do): one message that reached two devices is one
  row — the same (peer, id) from another device's inbox, or an ``outgoing`` copy of a
  message whose id is already an outgoing row (sent by this installation or already
  copied), maps to the existing row; the lookup and the insert happen under the file's
  write lock, so two processes storing one message at once still make one row.
  :meth:`add_incoming` does not commit: the caller commits before acknowledging (so an Ack
  never claims a message the disk does not have).
- Rooms (PROTOCOL.md section 10) are conversations keyed by their negative id; a room
  message is one row per file however many devices or joins brought it (known by (room,
  id), a ROOM_EVENT by (room, actor, second, text)), and each device reports it once.
  Schema 2 files get the ``sender`` column (schema 3) when opened.
- Schema 1 files are migrated in place when opened: their inbound seqs become the inbox of
  the device ``""``; no row is lost.
- State transitions of outgoing rows only move forward: PENDING → SENT → DELIVERED, PENDING →
  FAILED, FAILED → PENDING (explicit resend) or SENT (a late OK Ack); DELIVERED is final.
- ``conversations.unread`` counts incoming messages of the chat-visible types
  (:data:`UNREAD_TYPES`) only: board strokes and transfer control messages never count.
- ``snapshots`` holds derived state that can always be rebuilt from ``messages`` (e.g. a
  drawing board as of a local id): losing or ignoring a row costs time, never data.
- Everything runs on the caller's thread; WAL + synchronous=NORMAL keeps each call short.

(About 600 lines: every statement on ``messages`` — history, outbox, the devices' inboxes, rooms —
in one module, so that the invariants above can be checked in one place.)
"""

from __future__ import annotations

import dataclasses
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

SCHEMA_VERSION = 3
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
CREATE INDEX IF NOT EXISTS inbound_id ON messages (peer, msg_id) WHERE outgoing = 0;
CREATE TABLE IF NOT EXISTS received (
    device   TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    local_id INTEGER NOT NULL,
    PRIMARY KEY (device, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS received_by_row ON received (local_id);
CREATE UNIQUE INDEX IF NOT EXISTS outbound_id ON messages (msg_id) WHERE outgoing = 1;
CREATE INDEX IF NOT EXISTS outbox ON messages (local_id) WHERE outgoing = 1 AND state = 0;
CREATE TABLE IF NOT EXISTS snapshots (
    key   TEXT PRIMARY KEY,
    upto  INTEGER NOT NULL,
    data  TEXT NOT NULL
);
"""

# Schema 1 → 2: inbound seqs were unique per file (one inbox); they become the inbox of the
# device "" (every pre-device login was that device), and the per-file unique index goes.
_MIGRATE_FROM_1 = """
INSERT OR IGNORE INTO received (device, seq, local_id)
    SELECT '', seq, local_id FROM messages WHERE outgoing = 0 AND seq IS NOT NULL;
DROP INDEX IF EXISTS inbound_seq;
"""

# Schema 2 → 3: rooms (PROTOCOL.md section 10). A room is the conversation of its negative
# id; ``sender`` names the author of an incoming room message (0 otherwise).
_SENDER_COLUMN = "ALTER TABLE messages ADD COLUMN sender INTEGER NOT NULL DEFAULT 0"

_COLUMNS = (
    "local_id, peer, outgoing, msg_id, seq, type, text, data, file, timestamp, state, code, "
    "attempts, sender"
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
        self.closed = False  # True once closed: late writers (last-seen stamps) skip
        self._db.row_factory = None
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        self._db.executescript(_SCHEMA)
        if version < 2:
            self._db.executescript(_MIGRATE_FROM_1)
        if version < 3:
            self._add_sender_column()
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        self._db.commit()

    def _add_sender_column(self) -> None:
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(messages)")}
        if "sender" in columns:
            return
        try:
            self._db.execute(_SENDER_COLUMN)
        except sqlite3.OperationalError as exc:  # another process sharing the file was first
            if "duplicate column" not in str(exc):
                raise

    @classmethod
    def open(cls, path: Path | str) -> LocalStore:
        """Open (creating if needed) the database at ``path``; ``":memory:"`` for tests."""
        return cls(open_private_database(path, SCHEMA_VERSION))

    def close(self) -> None:
        self._db.commit()
        self._db.close()
        self.closed = True

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
        """The inbox cursor of the device ``""`` (see :meth:`cursor`)."""
        return self.cursor("")

    def cursor(self, device: str) -> int:
        """``device``'s inbox cursor: every message of its inbox with seq <= it is stored."""
        return from_sql_u64(self.meta_get(_cursor_key(device)))

    def set_last_seq(self, seq: int, device: str = "") -> None:
        """Move ``device``'s cursor (not committed; commit before acknowledging ``seq``)."""
        self.meta_set(_cursor_key(device), to_sql_u64(seq))

    def rebase_inbox(self, device: str = "") -> None:
        """The relay's inbox of ``device`` restarted below our cursor: forget that device's
        seqs, its cursor = 0 (the rows stay; a replayed message maps to its row again)."""
        self._db.execute("DELETE FROM received WHERE device = ?", (device,))
        self.meta_set(_cursor_key(device), 0)
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
        after: int | None = None,
    ) -> list[HistoryEntry]:
        """Up to ``limit`` messages with ``peer`` older than local id ``before`` (newest page
        when None), oldest first. Pass the first entry's ``local_id`` as ``before`` to page
        back. ``types`` restricts to those ``Message.type`` values. With ``after``: the
        oldest ``limit`` messages newer than it instead (paging forward)."""
        sql = f"SELECT {_COLUMNS} FROM messages WHERE peer = ?"
        args: list[object] = [peer]
        if before is not None:
            sql += " AND local_id < ?"
            args.append(before)
        if after is not None:
            sql += " AND local_id > ?"
            args.append(after)
        if types is not None:
            wanted = sorted(set(types))
            sql += f" AND type IN ({','.join('?' * len(wanted))})"
            args.extend(wanted)
        sql += f" ORDER BY local_id {'ASC' if after is not None else 'DESC'} LIMIT ?"
        args.append(limit)
        rows = self._db.execute(sql, args).fetchall()
        entries = [_entry(row) for row in rows]
        return entries if after is not None else entries[::-1]

    def search(
        self, pattern: str, *, types: Iterable[int], peer: int | None = None, limit: int = 201
    ) -> list[HistoryEntry]:
        """Messages whose text matches the LIKE ``pattern`` (escape character ``\\``; see
        :func:`tui.search.like_pattern`), of ``peer`` only unless None, newest first."""
        wanted = sorted(set(types))
        sql = (
            f"SELECT {_COLUMNS} FROM messages WHERE text LIKE ? ESCAPE '\\' "
            f"AND type IN ({','.join('?' * len(wanted))})"
        )
        args: list[object] = [pattern, *wanted]
        if peer is not None:
            sql += " AND peer = ?"
            args.append(peer)
        sql += " ORDER BY local_id DESC LIMIT ?"
        args.append(limit)
        return [_entry(row) for row in self._db.execute(sql, args).fetchall()]

    def count(self, peer: int) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM messages WHERE peer = ?", (peer,))
        return int(row.fetchone()[0])

    def get(self, local_id: int) -> HistoryEntry | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE local_id = ?", (local_id,)
        ).fetchone()
        return _entry(row) if row else None

    def add_incoming(self, message: pb.Message, device: str = "") -> HistoryEntry | None:
        """Store a durable message from ``device``'s inbox; None if that device already
        stored its seq. An ``outgoing`` copy (sent by this user from another device) is an
        outgoing row in state SENT. A message another device sharing this file already
        stored (see the module docstring) is not stored again: its existing entry is
        returned, so this device still reports it once.

        Does not commit and does not move the cursor (see the module docstring).
        """
        seq = to_sql_u64(message.seq) if message.seq else None
        began = not self._db.in_transaction
        if began:
            # Take the write lock before looking: another process of this user (a device
            # sharing the file) may be storing the same message right now.
            self._db.execute("BEGIN IMMEDIATE")
        if (
            seq is not None
            and self._db.execute(
                "SELECT 1 FROM received WHERE device = ? AND seq = ?", (device, seq)
            ).fetchone()
        ):
            if began:  # nothing written: do not keep the lock until the next commit
                self._db.commit()
            return None
        existing = self._same_message(message, device)
        if (
            existing is not None
            and message.room
            and self._db.execute(
                "SELECT 1 FROM received WHERE local_id = ? AND device = ?",
                (existing.local_id, device),
            ).fetchone()
        ):
            # This device already has it (a room's history sent again on a new join).
            if began:
                self._db.commit()
            return None
        if existing is not None:
            entry = existing
            if entry.outgoing and entry.state in (MessageState.PENDING, MessageState.FAILED):
                # The copy proves the relay stored it; the row itself is its sender's to
                # move (that process still waits for its Ack), so only this report says so.
                entry = dataclasses.replace(entry, state=MessageState.SENT, code=0)
        else:
            entry = self._insert_incoming(HistoryEntry.from_incoming(message))
        if seq is not None and entry.local_id is not None:
            self._db.execute(
                "INSERT OR IGNORE INTO received (device, seq, local_id) VALUES (?, ?, ?)",
                (device, seq, entry.local_id),
            )
        return entry

    def _same_message(self, message: pb.Message, device: str) -> HistoryEntry | None:
        """The row of ``message`` if another device (or this installation sending it) has
        already stored it: same outgoing id, or same (peer, id) not yet from ``device``."""
        if message.room:
            return self._same_room_message(message)
        if not 0 < message.id <= MAX_MESSAGE_ID:
            return None  # v1 senders give no id: nothing to recognise it by
        if message.outgoing:
            return self.find_outgoing(message.id)
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages m WHERE outgoing = 0 AND peer = ? AND msg_id = ? "
            "AND NOT EXISTS (SELECT 1 FROM received r WHERE r.local_id = m.local_id "
            "AND r.device = ?) ORDER BY local_id LIMIT 1",
            (message.uid, message.id, device),
        ).fetchone()
        return _entry(row) if row else None

    def _same_room_message(self, message: pb.Message) -> HistoryEntry | None:
        """The row of room ``message`` if it is already stored, whichever device (or this
        installation sending it) stored it, and however often: a member who joins again
        gets the room's history again. A message is known by (room, id) (ids are random
        63-bit numbers); a ROOM_EVENT, which has no id, by its room, actor, second and
        text."""
        peer = -message.room
        if 0 < message.id <= MAX_MESSAGE_ID:
            own = self.find_outgoing(message.id)
            if own is not None and own.peer == peer:
                return own
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE outgoing = 0 AND peer = ? "
                "AND msg_id = ? ORDER BY local_id LIMIT 1",
                (peer, message.id),
            ).fetchone()
        elif message.type == pb.Message.ROOM_EVENT:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE outgoing = 0 AND peer = ? "
                "AND msg_id = 0 AND type = ? AND sender = ? AND timestamp = ? AND text = ? "
                "ORDER BY local_id LIMIT 1",
                (peer, message.type, message.uid, message.timestamp, message.msg),
            ).fetchone()
        else:
            return None
        return _entry(row) if row else None

    def _insert_incoming(self, entry: HistoryEntry) -> HistoryEntry:
        cursor = self._db.execute(
            "INSERT INTO messages (peer, outgoing, msg_id, seq, type, text, data, "
            "file, timestamp, state, sender) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry.peer,
                int(entry.outgoing),
                to_sql_u64(entry.msg_id),
                None if entry.outgoing or entry.seq is None else to_sql_u64(entry.seq),
                entry.type,
                entry.text,
                entry.data,
                entry.file.SerializeToString() if entry.file is not None else None,
                entry.timestamp,
                int(entry.state),
                entry.sender,
            ),
        )
        local_id = int(cursor.lastrowid or 0)
        unread = not entry.outgoing and entry.type in UNREAD_TYPES
        self._touch_conversation(entry.peer, local_id, int(unread))
        return dataclasses.replace(
            entry, local_id=local_id, seq=None if entry.outgoing else entry.seq
        )

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

    def failed(self, peer: int) -> list[HistoryEntry]:
        """Every outgoing FAILED entry of the conversation with ``peer``, oldest first (what
        "re-send failed" acts on, loaded on screen or not)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM messages WHERE peer = ? AND outgoing = 1 AND state = ? "
            "ORDER BY local_id",
            (peer, int(MessageState.FAILED)),
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

    def mark_sent(self, msg_id: int, seq: int) -> HistoryEntry | None:
        """Ack OK: PENDING/FAILED → SENT. None if unknown or already SENT/DELIVERED. The
        row keeps the time it was written (an outbox message may go out hours later)."""
        return self._transition(
            msg_id,
            "state = ?, seq = ?, code = 0",
            (int(MessageState.SENT), to_sql_u64(seq) if seq else None),
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


def _cursor_key(device: str) -> str:
    return "last_seq" if not device else f"last_seq@{device}"


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
        sender,
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
        sender=int(sender),
    )
