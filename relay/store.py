"""The relay's persistent store: users, buddy relations, inboxes, the dedup window, tokens.

Invariants:
- One :class:`Store` owns one ``sqlite3`` connection and is used from one thread only (the
  relay's event loop, or an admin CLI command). ``check_same_thread`` stays on to enforce it.
- Writes open a transaction lazily (``BEGIN IMMEDIATE``) and nothing is durable until
  :meth:`Store.commit`; the relay calls it once per event-loop iteration (group commit) and
  acknowledges only after it returned. Reads on the same store see its uncommitted writes.
- A write or commit that fails for any reason but a constraint (disk full, I/O error,
  read-only file, lock timeout) rolls back *every* write since the last commit and raises
  :class:`StoreUnavailable`; from then on writes raise it at once (best-effort ones, marked
  so, are skipped) until :meth:`Store.probe` has written and committed again. Reads work
  throughout.
- Journal mode is WAL. With ``synchronous=NORMAL`` a committed transaction survives a crash
  or SIGKILL of the process (the WAL frames are in the OS page cache); only an OS crash or
  power loss may lose the last commits, and it never corrupts the file. ``FULL`` also
  survives power loss at the price of an fsync per commit.
- ``users.head_seq`` is the highest inbox seq ever assigned to a user: it only grows and is
  kept when inbox rows are deleted. Seqs are assigned by the caller (which caches them)
  above it. ``users.delivered_seq`` is the highest seq the user has received: its stored
  messages are exactly (delivered_seq, head_seq].
- The inbox stores *runs*: one row per run of consecutive seqs of one recipient accepted
  together, holding their whole MESSAGE frames back to back (one b-tree insert per run, not
  per message: the relay's hot path). A delivery through seq N deletes the runs that end at
  or below N; a run delivered only in part stays, and readers skip its frames <= the
  user's ``delivered_seq`` (and count in the recipient's stored bytes until deleted).
- Every accepted message with a client id has a dedup record from the moment it is stored
  until its time bucket expires, delivered or not: one ``accepted`` row per run, whose
  ``records`` hold the run's (sender, client id) pairs as self-synchronising text, ``,``
  then 24 hex digits and ``,`` per record (seq = first_seq + index). A search for one
  record's text can match only that whole record, so a lookup returns at most the row that
  holds it, whatever the other ids look like. The run row carries the senders and ids as
  little-endian arrays (receipts are read from it at delivery).
- Both tables are appended at the right edge of their b-trees (rowid keys; the indexes lead
  with the recipient of live runs only, or with the time bucket): a commit writes a few
  pages whatever the number of recipients (hot spots per recipient in a growing table
  tripled the WAL pages per commit).
- Relations are stored as mirrored pairs of rows, one from each side's point of view
  (BUDDY/BUDDY or REQUEST_SENT/REQUEST_RECEIVED), always written and deleted together.
- Rows owned by a user go with it: relations (both ways) and tokens through
  ``ON DELETE CASCADE``, its inbox runs and their dedup records deleted by
  :meth:`Store.remove_user` (no foreign key on the hot tables); uids are never reused
  (AUTOINCREMENT).
- A new user's name differs from every stored one in ``username_key`` (case-insensitive,
  UNIQUE; logins look users up by it) and in ``username_skeleton`` (look-alikes, Unicode
  TR39; indexed, not unique: pairs registered before the skeleton existed are both kept).
- The database file and its -wal/-shm are private to the relay's user (mode 0600): created
  so, and an existing file open to others is fixed (and logged) on open.
- The schema version is ``PRAGMA user_version``; :data:`MIGRATIONS` step *n* takes it from
  *n - 1* to *n*, each step in its own transaction.
"""

from __future__ import annotations

import binascii
import contextlib
import enum
import functools
import logging
import os
import sqlite3
import stat
import struct
import sys
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain, starmap
from pathlib import Path
from typing import Any, NamedTuple, Self

from protocol.framing import frame_ends, pack_header
from protocol.types import FrameType
from protocol.validation import username_skeleton

log = logging.getLogger("parley.relay")

BUSY_TIMEOUT_S = 5.0
PRIVATE_FILE_MODE = 0o600  # the database and its -wal/-shm: hashes and queued messages
KICKS_PER_CALL = 100  # admin kicks applied per Store.take_kicks call (the rest: next call)
MAX_RUN_MESSAGES = 64  # messages per inbox run (bounds the scan back to a run's first seq)
MAX_RUN_BYTES = 64 * 1024  # a run is closed once its frames reach this size
SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
PROBE_BYTES = 64 * 1024  # what Store.probe writes (and deletes) to see whether writes fit

# Step n migrates user_version n-1 -> n. Never edit a released step; append a new one.
# A step is SQL, or a function of the connection and the store's dedup bucket size.
MigrationStep = str | Callable[[sqlite3.Connection, int], None]
MIGRATIONS: tuple[tuple[MigrationStep, ...], ...] = (
    (
        """CREATE TABLE users (
            uid INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL,
            username_key TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
            protocol_version INTEGER NOT NULL DEFAULT 0, head_seq INTEGER NOT NULL DEFAULT 0,
            created INTEGER NOT NULL)""",
        """CREATE TABLE relations (
            uid INTEGER NOT NULL REFERENCES users(uid) ON DELETE CASCADE,
            peer INTEGER NOT NULL REFERENCES users(uid) ON DELETE CASCADE,
            relation INTEGER NOT NULL CHECK (relation IN (0, 1, 2)),
            PRIMARY KEY (uid, peer)) WITHOUT ROWID""",
        "CREATE INDEX relations_by_peer ON relations(peer)",
        # WITHOUT ROWID: one b-tree per insert, rows clustered by (recipient, seq). Most
        # payloads are small; large ones (v1 FILE) spill to overflow pages. No foreign key:
        # checking it costs ~0.8 us per relayed message (a quarter of the row's cost);
        # remove_user deletes a user's rows itself.
        """CREATE TABLE inbox (
            recipient INTEGER NOT NULL,
            seq INTEGER NOT NULL, sender INTEGER NOT NULL, client_id INTEGER NOT NULL,
            type INTEGER NOT NULL, timestamp INTEGER NOT NULL, payload BLOB NOT NULL,
            PRIMARY KEY (recipient, seq)) WITHOUT ROWID""",
        # Keyed by time bucket first: one b-tree insert per record (no separate index on
        # time), and expiry deletes whole leading-key ranges.
        """CREATE TABLE dedup (
            bucket INTEGER NOT NULL, sender INTEGER NOT NULL, client_id INTEGER NOT NULL,
            seq INTEGER NOT NULL, timestamp INTEGER NOT NULL,
            PRIMARY KEY (bucket, sender, client_id)) WITHOUT ROWID""",
        """CREATE TABLE tokens (
            token_hash BLOB PRIMARY KEY,
            uid INTEGER NOT NULL REFERENCES users(uid) ON DELETE CASCADE,
            expires INTEGER NOT NULL) WITHOUT ROWID""",
        "CREATE INDEX tokens_by_uid ON tokens(uid)",
    ),
    (
        "ALTER TABLE users ADD COLUMN delivered_seq INTEGER NOT NULL DEFAULT 0",
        # Runs of consecutive messages (see the module docstring), at most MAX_RUN_MESSAGES.
        # A rowid table: a run (often 1-5 KiB) fits in its leaf page, where a WITHOUT ROWID
        # row keeps only ~1 KiB inline and spills the rest to overflow pages. The index holds
        # live (undelivered) runs only, so it stays small.
        """CREATE TABLE inbox_runs (
            id INTEGER PRIMARY KEY,
            recipient INTEGER NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
            senders BLOB NOT NULL, client_ids BLOB NOT NULL, frames BLOB NOT NULL)""",
        "CREATE UNIQUE INDEX inbox_runs_by_recipient ON inbox_runs(recipient, first_seq)",
        # Dedup records, one row per run: senders (u32) and client ids (u64) packed
        # little-endian, record i has seq first_seq + i. Rows migrated from the schema-1 dedup
        # table have recipient 0 (unknown) and one record each. Append-only until pruned by
        # bucket; lookups scan a bucket inside SQLite (instr on the ids).
        """CREATE TABLE accepted (
            id INTEGER PRIMARY KEY, bucket INTEGER NOT NULL, recipient INTEGER NOT NULL,
            first_seq INTEGER NOT NULL, timestamp INTEGER NOT NULL, senders BLOB NOT NULL,
            client_ids BLOB NOT NULL)""",
        "CREATE INDEX accepted_by_bucket ON accepted(bucket)",
        lambda con, bucket_seconds: _runs_from_schema_1(con, bucket_seconds),
        "DROP TABLE inbox",
        "DROP TABLE dedup",
    ),
    (
        # Sessions an admin command (another process) asks the running relay to end; the
        # relay deletes each row once applied. Independent of the other steps' tables.
        """CREATE TABLE IF NOT EXISTS admin_kicks (
            id INTEGER PRIMARY KEY, uid INTEGER NOT NULL, reason TEXT NOT NULL)""",
    ),
    (
        # Usernames are also unique by their confusable skeleton (username_skeleton). Not a
        # UNIQUE index: look-alike accounts registered before this step are both kept; add_user
        # refuses new names whose skeleton is taken. Touches the users table only.
        "ALTER TABLE users ADD COLUMN username_skeleton TEXT NOT NULL DEFAULT ''",
        lambda con, _bucket_seconds: _fill_username_skeletons(con),
        "CREATE INDEX users_by_skeleton ON users(username_skeleton)",
    ),
    (
        # Dedup records become exact to look up: the packed sender and id arrays (where a
        # crafted id could hold another id's bytes at any offset) become self-synchronising
        # records (module docstring). And the table Store.probe writes to. Touches only the
        # accepted table and its own.
        """CREATE TABLE accepted_records (
            id INTEGER PRIMARY KEY, bucket INTEGER NOT NULL, recipient INTEGER NOT NULL,
            first_seq INTEGER NOT NULL, timestamp INTEGER NOT NULL, records BLOB NOT NULL)""",
        lambda con, _bucket_seconds: _records_from_packed_arrays(con),
        "DROP TABLE accepted",
        "ALTER TABLE accepted_records RENAME TO accepted",
        "CREATE INDEX accepted_by_bucket ON accepted(bucket)",
        "CREATE TABLE write_probe (id INTEGER PRIMARY KEY, filler BLOB NOT NULL)",
    ),
)

_USER_COLS = "uid, username, username_key, password_hash, protocol_version, head_seq, created"

# Not ON CONFLICT DO NOTHING: that would still consume a uid from the AUTOINCREMENT sequence.
SQL_ADD_USER = (
    "INSERT INTO users (username, username_key, username_skeleton, password_hash, created)"
    " SELECT ?1, ?2, ?3, ?4, ?5 WHERE NOT EXISTS"
    " (SELECT 1 FROM users WHERE username_key = ?2 OR username_skeleton = ?3)"
)
SQL_USERNAME_TAKEN = "SELECT 1 FROM users WHERE username_key = ? OR username_skeleton = ?"
SQL_SET_USERNAME_SKELETON = "UPDATE users SET username_skeleton = ? WHERE uid = ?"
SQL_USER_BY_UID = f"SELECT {_USER_COLS} FROM users WHERE uid = ?"
SQL_USER_BY_KEY = f"SELECT {_USER_COLS} FROM users WHERE username_key = ?"
SQL_LIST_USERS = f"SELECT {_USER_COLS} FROM users ORDER BY uid LIMIT ?"
SQL_LIST_USERS_MATCHING = (
    f"SELECT {_USER_COLS} FROM users WHERE instr(parley_fold(username), ?) > 0 ORDER BY uid LIMIT ?"
)
SQL_SET_PASSWORD_HASH = "UPDATE users SET password_hash = ? WHERE uid = ?"
SQL_SET_PROTOCOL_VERSION = "UPDATE users SET protocol_version = ? WHERE uid = ?"
SQL_REMOVE_USER = "DELETE FROM users WHERE uid = ?"
SQL_USER_COUNT = "SELECT count(*) FROM users"

SQL_RELATION_STATE = (
    "SELECT (SELECT 1 FROM users WHERE uid = ?2),"
    " (SELECT relation FROM relations WHERE uid = ?1 AND peer = ?2)"
)
SQL_PUT_RELATION = "INSERT OR REPLACE INTO relations (uid, peer, relation) VALUES (?, ?, ?)"
SQL_REMOVE_RELATION = (
    "DELETE FROM relations WHERE (uid = ?1 AND peer = ?2) OR (uid = ?2 AND peer = ?1)"
)
SQL_RELATIONS_OF = (
    "SELECT r.peer, u.username, r.relation, u.protocol_version"
    " FROM relations AS r JOIN users AS u ON u.uid = r.peer WHERE r.uid = ? ORDER BY r.peer"
)
SQL_BUDDY_IDS = "SELECT peer FROM relations WHERE uid = ? AND relation = 0"
SQL_ARE_BUDDIES = "SELECT 1 FROM relations WHERE uid = ? AND peer = ? AND relation = 0"

SQL_HEAD_SEQ = "SELECT head_seq FROM users WHERE uid = ?"
SQL_DELIVERED_SEQ = "SELECT delivered_seq FROM users WHERE uid = ?"
SQL_INSERT_RUN = (
    "INSERT INTO inbox_runs (recipient, first_seq, last_seq, senders, client_ids, frames)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
SQL_INSERT_ACCEPTED = (
    "INSERT INTO accepted (bucket, recipient, first_seq, timestamp, records)"
    " VALUES (?, ?, ?, ?, ?)"
)
SQL_RAISE_HEAD_SEQ = "UPDATE users SET head_seq = max(head_seq, ?2) WHERE uid = ?1"
# Runs ending after since_seq; the first one may start at or before it. A run holds at most
# MAX_RUN_MESSAGES seqs, which bounds the index range to scan.
SQL_RUNS_AFTER = (
    "SELECT first_seq, last_seq, frames FROM inbox_runs WHERE recipient = ?1"
    f" AND first_seq > ?2 - {MAX_RUN_MESSAGES} AND last_seq > ?2 ORDER BY first_seq LIMIT ?3"
)
# first_seq <= ?2 bounds the index range: delivered runs are gone, so it is short.
SQL_DELETE_RUNS_THROUGH = (
    "DELETE FROM inbox_runs WHERE recipient = ?1 AND first_seq <= ?2 AND last_seq <= ?2"
    " RETURNING length(frames)"
)
SQL_INBOX_BYTES = "SELECT coalesce(sum(length(frames)), 0) FROM inbox_runs WHERE recipient = ?"
SQL_SET_DELIVERED_SEQ = (
    "UPDATE users SET delivered_seq = min(?2, head_seq) WHERE uid = ?1 AND delivered_seq < ?2"
)
SQL_REMOVE_USER_RUNS = "DELETE FROM inbox_runs WHERE recipient = ?"
SQL_REMOVE_USER_ACCEPTED = "DELETE FROM accepted WHERE recipient = ?"

# instr() on blobs is a byte search inside SQLite; the key is one whole record's text
# (",<24 hex digits>,"), which can only match that record: the one row that holds it comes
# back to Python, with the record's offset. Newest first: a sender's retry is almost always
# of a recent message, found after a short scan; a miss (a Bloom false positive) scans the
# bucket's rows for this recipient at byte-search speed, whatever their ids.
SQL_ACCEPTED_FOR = (
    "SELECT first_seq, timestamp, instr(records, ?3) FROM accepted"
    " WHERE bucket = ?1 AND recipient IN (?2, 0) AND instr(records, ?3) > 0"
    " ORDER BY id DESC LIMIT 1"
)
SQL_NEWEST_ACCEPTED_BUCKET = "SELECT max(bucket) FROM accepted"
# Runs holding seqs in (?2, ?3]: their senders and ids are owed receipts when delivered.
SQL_RUNS_BETWEEN = (
    "SELECT first_seq, senders, client_ids FROM inbox_runs WHERE recipient = ?1"
    f" AND first_seq > ?2 - {MAX_RUN_MESSAGES} AND first_seq <= ?3 AND last_seq > ?2"
    " ORDER BY first_seq"
)
SQL_PRUNE_ACCEPTED = (
    "DELETE FROM accepted WHERE id IN (SELECT id FROM accepted WHERE bucket < ? LIMIT ?)"
)
SQL_ACCEPTED_SINCE = "SELECT records FROM accepted WHERE bucket >= ?"
SQL_PROBE_WRITE = "INSERT OR REPLACE INTO write_probe (id, filler) VALUES (1, zeroblob(?))"
SQL_PROBE_CLEAR = "DELETE FROM write_probe"

SQL_ADD_TOKEN = "INSERT OR REPLACE INTO tokens (token_hash, uid, expires) VALUES (?, ?, ?)"
SQL_TOKEN_OWNER = "SELECT uid FROM tokens WHERE token_hash = ? AND expires > ?"
SQL_REVOKE_TOKENS = "DELETE FROM tokens WHERE uid = ?"
SQL_PRUNE_TOKENS = "DELETE FROM tokens WHERE expires <= ?"

SQL_QUEUE_KICK = "INSERT INTO admin_kicks (uid, reason) VALUES (?, ?)"
SQL_QUEUED_KICKS = "SELECT id, uid, reason FROM admin_kicks ORDER BY id LIMIT ?"
SQL_DELETE_KICKS_THROUGH = "DELETE FROM admin_kicks WHERE id <= ?"


class StoreError(Exception):
    """The database file cannot be used by this version of the relay."""


class StoreUnavailable(Exception):
    """The store cannot write now (disk full, I/O error, read-only file, lock timeout).

    Every write since the last commit has been rolled back; writes are refused until
    :meth:`Store.probe` succeeds. Reads still work.
    """


def _means_unavailable(exc: sqlite3.DatabaseError) -> bool:
    """A write failed because of the storage, not because of the SQL or its arguments."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


class _Writer:
    """The connection as writers use it: a failed statement that means the storage cannot
    write rolls the transaction back and raises :class:`StoreUnavailable` (constraint
    violations and programming errors still raise as themselves)."""

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        self._store = store

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if not _means_unavailable(exc):
                raise
            raise self._store._failed(exc) from exc

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._failures():
            return self._store._con.execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]]
                    ) -> sqlite3.Cursor:
        with self._failures():
            return self._store._con.executemany(sql, seq_of_parameters)

    def fetchall(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """Run a writing statement that returns rows (``RETURNING``) to its end."""
        with self._failures():
            return self._store._con.execute(sql, parameters).fetchall()


class Delivered(NamedTuple):
    """What :meth:`Store.delete_inbox_through` did: the (sender, client_id) owed a receipt,
    in seq order, and the bytes of the runs it deleted."""

    receipts: list[tuple[int, int]]
    freed_bytes: int


class Relation(enum.IntEnum):
    """A relation seen from one user's side; same numbers as ``chat_pb2.User.Relation``."""

    BUDDY = 0
    REQUEST_SENT = 1
    REQUEST_RECEIVED = 2


class AddBuddyOutcome(enum.IntEnum):
    """Result of :meth:`Store.add_buddy`; same numbers as ``AddBuddyResponse.Code``."""

    SUCCESS = 0
    FAILED = 1
    PENDING = 2


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user row. ``head_seq`` is the highest inbox seq ever assigned to the user."""

    uid: int
    username: str
    username_key: str
    password_hash: str
    protocol_version: int
    head_seq: int
    created: int


@dataclass(frozen=True, slots=True)
class RelationRecord:
    """A relation of some user to ``peer``, from that user's point of view."""

    peer: int
    peer_username: str
    relation: Relation
    peer_protocol_version: int


class InboxRow(NamedTuple):
    """A durable message to store. ``client_id`` is the sender's message id (0 for v1);
    ``frame`` is the whole MESSAGE frame the recipient gets (header included).

    A NamedTuple, not a dataclass: one is built per relayed message.
    """

    recipient: int
    seq: int
    sender: int
    client_id: int
    timestamp: int
    frame: bytes


class StoredRun(NamedTuple):
    """Stored messages ``first_seq`` .. ``last_seq`` of one recipient: their frames back to
    back (see :func:`protocol.framing.frame_ends`)."""

    first_seq: int
    last_seq: int
    frames: bytes


class DedupRecord(NamedTuple):
    """The OK Ack given for (sender, client_id): its seq and timestamp.

    ``bucket`` is the record's time bucket (see :meth:`Store.find_dedup`); records are kept
    until their bucket is pruned.
    """

    bucket: int
    sender: int
    client_id: int
    seq: int
    timestamp: int


# Packed arrays of the accepted table: little-endian whatever the machine.
_U32 = "I" if array("I").itemsize == 4 else "L"
_U64 = "Q"
_SWAP = sys.byteorder == "big"


def _pack(typecode: str, values: Sequence[int]) -> bytes:
    packed = array(typecode, values)
    if _SWAP:
        packed.byteswap()
    return packed.tobytes()


def _unpack(typecode: str, blob: bytes) -> array[int]:
    values = array(typecode)
    values.frombytes(blob)
    if _SWAP:
        values.byteswap()
    return values


# The accepted table as schema 2 made it (before its records became self-synchronising).
_SQL_INSERT_ACCEPTED_SCHEMA_2 = (
    "INSERT INTO accepted (bucket, recipient, first_seq, timestamp, senders, client_ids)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def _runs_from_schema_1(con: sqlite3.Connection, bucket_seconds: int) -> None:
    """Migration step 2: schema-1 inbox rows become one-message runs with dedup records,
    schema-1 dedup records become recipient-0 records, and ``delivered_seq`` is set below
    each user's oldest stored message (or at head_seq when none is stored)."""
    for recipient, seq, sender, client_id, timestamp, payload in con.execute(
            "SELECT recipient, seq, sender, client_id, timestamp, payload FROM inbox").fetchall():
        con.execute(SQL_INSERT_RUN, (recipient, seq, seq, _pack(_U32, [sender]),
                                     _pack(_U64, [client_id]),
                                     pack_header(len(payload), FrameType.MESSAGE)
                                     + bytes(payload)))
        if client_id:
            con.execute(_SQL_INSERT_ACCEPTED_SCHEMA_2, (
                timestamp // bucket_seconds, recipient, seq, timestamp, _pack(_U32, [sender]),
                _pack(_U64, [client_id])))
    for bucket, sender, client_id, seq, timestamp in con.execute(
            "SELECT bucket, sender, client_id, seq, timestamp FROM dedup").fetchall():
        con.execute(_SQL_INSERT_ACCEPTED_SCHEMA_2, (
            bucket, 0, seq, timestamp, _pack(_U32, [sender]), _pack(_U64, [client_id])))
    con.execute("UPDATE users SET delivered_seq = coalesce("
                "(SELECT min(seq) - 1 FROM inbox WHERE recipient = uid), head_seq)")


# One dedup record: sender (u32) and client id (u64), little-endian, as 24 hex digits.
_RECORD = struct.Struct("<IQ")
_RECORD_TEXT = 2 * _RECORD.size + 1  # its digits and the "," after them


@functools.cache
def _records_struct(count: int) -> struct.Struct:
    return struct.Struct("<" + "IQ" * count)


def encode_records(senders: Sequence[int], client_ids: Sequence[int]) -> bytes:
    """The ``accepted.records`` text of these (sender, client id) pairs (module docstring)."""
    packed = _records_struct(len(client_ids)).pack(*chain.from_iterable(zip(senders, client_ids,
                                                                             strict=True)))
    return b"," + binascii.hexlify(packed, b",", _RECORD.size) + b","


def record_key(sender: int, client_id: int) -> bytes:
    """The text one (sender, client id) record has inside ``accepted.records``."""
    return b"," + binascii.hexlify(_RECORD.pack(sender, client_id)) + b","


def decode_records(records: bytes) -> Iterator[tuple[int, int]]:
    """(sender, client id) of each record of an ``accepted.records`` text, in order."""
    return _RECORD.iter_unpack(binascii.unhexlify(records.replace(b",", b"")))


def _records_from_packed_arrays(con: sqlite3.Connection) -> None:
    """Migration step: every schema-2 dedup row, its packed arrays as records."""
    rows = con.execute("SELECT id, bucket, recipient, first_seq, timestamp, senders, client_ids"
                       " FROM accepted")
    con.executemany(
        "INSERT INTO accepted_records (id, bucket, recipient, first_seq, timestamp, records)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        ((row_id, bucket, recipient, first_seq, timestamp,
          encode_records(_unpack(_U32, senders), _unpack(_U64, ids)))
         for row_id, bucket, recipient, first_seq, timestamp, senders, ids in rows))


def _fill_username_skeletons(con: sqlite3.Connection) -> None:
    """Migration step: every existing user gets the skeleton of its name (no user is dropped,
    even where two existing names share one)."""
    con.executemany(SQL_SET_USERNAME_SKELETON, [
        (username_skeleton(username), uid)
        for uid, username in con.execute("SELECT uid, username FROM users").fetchall()])


def _fold(text: str) -> str:
    """Case-insensitive matching form of a username or a query."""
    return unicodedata.normalize("NFC", text.casefold())


def _make_private(path: Path) -> None:
    """Create the database file with PRIVATE_FILE_MODE if missing (SQLite gives its -wal and
    -shm the database's mode), and take group and other access away from an existing one and
    its -wal/-shm, logging each file fixed."""
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, PRIVATE_FILE_MODE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            file.chmod(PRIVATE_FILE_MODE)
            log.warning("%s was open to other users (mode %04o); made it %04o", file, mode,
                        PRIVATE_FILE_MODE)


class Store:
    """The relay's SQLite store. See the module docstring for its invariants."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = BUSY_TIMEOUT_S,
        dedup_bucket_seconds: int = 86400,
    ) -> None:
        self.dedup_bucket_seconds = max(1, dedup_bucket_seconds)
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
        _make_private(path)
        self._con = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        self._closed = False
        self._writer = _Writer(self)
        self.available = True  # False from a failed write until a probe writes again
        self.failures = 0  # write failures (each rolled back a transaction) since opening
        self.unavailable_reason = ""  # SQLite's message for the last failure
        self._seen_data_version: int | None = None  # see take_kicks
        try:
            con = self._con
            journal = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(journal).lower() != "wal":
                raise StoreError(f"{path}: cannot use WAL journal mode (got {journal!r})")
            con.execute(f"PRAGMA synchronous = {mode}")
            con.execute("PRAGMA foreign_keys = ON")
            con.create_function("parley_fold", 1, _fold, deterministic=True)
            self._migrate(path)
        except BaseException:
            self._con.close()
            self._closed = True
            raise

    def _migrate(self, path: Path) -> None:
        con = self._con
        steps = MIGRATIONS
        while True:
            version: int = con.execute("PRAGMA user_version").fetchone()[0]
            if version > len(steps):
                raise StoreError(
                    f"{path}: schema version {version} is newer than this relay knows"
                    f" ({len(steps)}); upgrade the relay or use another database file"
                )
            if version == len(steps):
                return
            con.execute("BEGIN IMMEDIATE")  # serialises concurrent openers
            try:
                if con.execute("PRAGMA user_version").fetchone()[0] != version:
                    con.execute("ROLLBACK")  # another opener migrated meanwhile
                    continue
                for statement in steps[version]:
                    if callable(statement):
                        statement(con, self.dedup_bucket_seconds)
                    else:
                        con.execute(statement)
                con.execute(f"PRAGMA user_version = {version + 1}")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _write(self) -> _Writer:
        """The connection for writes, inside a write transaction (begun here if none is open).

        Raises :class:`StoreUnavailable` while the store is unavailable.
        """
        if not self.available:
            raise StoreUnavailable(self.unavailable_reason)
        if not self._con.in_transaction:
            self._writer.execute("BEGIN IMMEDIATE")
        return self._writer

    def _failed(self, exc: sqlite3.DatabaseError) -> StoreUnavailable:
        """Roll back (SQLite may or may not have), become unavailable, say why."""
        with contextlib.suppress(sqlite3.Error):
            self.rollback()
        self.available = False
        self.failures += 1
        self.unavailable_reason = str(exc)
        return StoreUnavailable(self.unavailable_reason)

    # -- transactions ------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """True while writes are waiting for :meth:`commit`."""
        return self._con.in_transaction

    def commit(self) -> None:
        """Make every write since the last commit durable; no-op when nothing is pending.

        Raises :class:`StoreUnavailable` (everything since the last commit rolled back) when
        the storage cannot take it.
        """
        if self._con.in_transaction:
            self._writer.execute("COMMIT")

    def probe(self) -> bool:
        """Whether the store can write again: while unavailable, write ``PROBE_BYTES`` and
        commit, then delete them and commit; success makes the store available again."""
        if self.available:
            return True
        con = self._con
        try:
            for statement, parameters in ((SQL_PROBE_WRITE, (PROBE_BYTES,)),
                                          (SQL_PROBE_CLEAR, ())):
                con.execute("BEGIN IMMEDIATE")
                con.execute(statement, parameters)
                con.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if not _means_unavailable(exc):
                raise
            with contextlib.suppress(sqlite3.Error):
                self.rollback()
            self.unavailable_reason = str(exc)
            return False
        self.available = True
        return True

    def rollback(self) -> None:
        """Drop every write since the last commit (e.g. after an IntegrityError)."""
        if self._con.in_transaction:
            self._con.execute("ROLLBACK")

    def close(self) -> None:
        """Commit pending writes and close. Idempotent."""
        if self._closed:
            return
        try:
            self.commit()
        finally:
            self._closed = True
            self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        """Close; pending writes are committed, unless the block raised: then rolled back."""
        if exc_type is not None and not self._closed:
            self.rollback()
        self.close()

    # -- users -------------------------------------------------------------------------

    def add_user(
        self, username: str, username_key: str, password_hash: str, now: int
    ) -> int | None:
        """Create a user and return its uid (from 1, never reused); None if the name is taken
        (see :meth:`username_taken`)."""
        cur = self._write().execute(SQL_ADD_USER, (
            username, username_key, username_skeleton(username), password_hash, now))
        return cur.lastrowid if cur.rowcount == 1 else None

    def username_taken(self, username: str, username_key: str) -> bool:
        """True if a user has this key (the same name, whatever its case) or a name that looks
        like ``username`` (the same confusable skeleton)."""
        row = self._con.execute(SQL_USERNAME_TAKEN,
                                (username_key, username_skeleton(username))).fetchone()
        return row is not None

    def user_by_uid(self, uid: int) -> UserRecord | None:
        row = self._con.execute(SQL_USER_BY_UID, (uid,)).fetchone()
        return None if row is None else UserRecord(*row)

    def user_by_key(self, username_key: str) -> UserRecord | None:
        row = self._con.execute(SQL_USER_BY_KEY, (username_key,)).fetchone()
        return None if row is None else UserRecord(*row)

    def list_users(self, query: str, limit: int) -> tuple[list[UserRecord], bool]:
        """Users whose name contains ``query`` case-insensitively, by uid, at most ``limit``.

        The flag is True when more users matched than were returned.
        """
        limit = max(limit, 0)
        if query:
            cur = self._con.execute(SQL_LIST_USERS_MATCHING, (_fold(query), limit + 1))
        else:
            cur = self._con.execute(SQL_LIST_USERS, (limit + 1,))
        users = list(starmap(UserRecord, cur))
        return users[:limit], len(users) > limit

    def set_password_hash(self, uid: int, password_hash: str) -> bool:
        """Replace a user's password hash; False if there is no such user."""
        return self._write().execute(SQL_SET_PASSWORD_HASH, (password_hash, uid)).rowcount == 1

    def set_protocol_version(self, uid: int, version: int) -> None:
        """Record the protocol version of the user's latest login. Best effort: skipped while
        the store is unavailable (a login must still work then)."""
        if self.available:
            self._write().execute(SQL_SET_PROTOCOL_VERSION, (version, uid))

    def remove_user(self, uid: int) -> bool:
        """Delete a user with its relations (both ways), inbox, its inbox's dedup records and
        its tokens.

        Messages it sent that still wait in other inboxes are kept, and so are their dedup
        records (harmless: uids are never reused). False if no such user.
        """
        con = self._write()
        con.execute(SQL_REMOVE_USER_ACCEPTED, (uid,))
        con.execute(SQL_REMOVE_USER_RUNS, (uid,))
        return con.execute(SQL_REMOVE_USER, (uid,)).rowcount == 1

    def user_count(self) -> int:
        count: int = self._con.execute(SQL_USER_COUNT).fetchone()[0]
        return count

    # -- relations ---------------------------------------------------------------------

    def add_buddy(self, uid: int, peer: int) -> AddBuddyOutcome:
        """``uid`` asks ``peer`` to be buddies (consent flow of PROTOCOL.md section 6).

        No relation yet: a request is recorded (PENDING). Request already sent: PENDING.
        Request received from ``peer``: both become buddies (SUCCESS). Already buddies:
        SUCCESS. ``peer`` unknown or equal to ``uid``: FAILED, nothing written.
        """
        if uid == peer:
            return AddBuddyOutcome.FAILED
        exists, current = self._con.execute(SQL_RELATION_STATE, (uid, peer)).fetchone()
        if exists is None:
            return AddBuddyOutcome.FAILED
        if current == Relation.BUDDY:
            return AddBuddyOutcome.SUCCESS
        if current == Relation.REQUEST_SENT:
            return AddBuddyOutcome.PENDING
        con = self._write()
        if current == Relation.REQUEST_RECEIVED:
            pair = ((uid, peer, Relation.BUDDY), (peer, uid, Relation.BUDDY))
            outcome = AddBuddyOutcome.SUCCESS
        else:
            pair = ((uid, peer, Relation.REQUEST_SENT), (peer, uid, Relation.REQUEST_RECEIVED))
            outcome = AddBuddyOutcome.PENDING
        con.executemany(SQL_PUT_RELATION, pair)  # raises if uid itself is unknown
        return outcome

    def remove_relation(self, uid: int, peer: int) -> bool:
        """Remove the buddy relation or request between the two, on both sides.

        False if there was none.
        """
        return self._write().execute(SQL_REMOVE_RELATION, (uid, peer)).rowcount > 0

    def relations_of(self, uid: int) -> list[RelationRecord]:
        """Every relation of ``uid`` from its point of view, ordered by peer uid."""
        cur = self._con.execute(SQL_RELATIONS_OF, (uid,))
        return [RelationRecord(p, name, Relation(rel), ver) for p, name, rel, ver in cur]

    def buddy_ids(self, uid: int) -> set[int]:
        """Uids of ``uid``'s mutual buddies (not pending requests)."""
        return {peer for (peer,) in self._con.execute(SQL_BUDDY_IDS, (uid,))}

    def are_buddies(self, a: int, b: int) -> bool:
        return self._con.execute(SQL_ARE_BUDDIES, (a, b)).fetchone() is not None

    # -- inbox -------------------------------------------------------------------------

    def head_seq(self, uid: int) -> int:
        """The highest seq ever assigned in ``uid``'s inbox; 0 if none or no such user."""
        row = self._con.execute(SQL_HEAD_SEQ, (uid,)).fetchone()
        return 0 if row is None else int(row[0])

    def append_inbox(self, rows: Iterable[InboxRow], bucket: int | None = None) -> None:
        """Store messages whose seqs the caller assigned, each above its recipient's head_seq.

        Consecutive seqs of one recipient with the same timestamp become one run (at most
        MAX_RUN_MESSAGES messages, closed once MAX_RUN_BYTES are reached), so rows should come
        in the order their seqs were assigned. head_seq never goes back. Their dedup records
        go to time bucket ``bucket`` (the relay's clock that never runs backwards), or by
        default to the bucket of each row's timestamp. Not checked (the relay must not stop
        on it): that seqs are above head_seq, or that the recipient still exists (rows stored
        for a user removed while the relay runs are never read). Raises
        ``sqlite3.IntegrityError`` if a run starts at a stored run's first seq; the open
        transaction then holds part of the batch: call :meth:`rollback`.
        """
        # [recipient, first, last, timestamp, frames, senders, ids, size] per run
        runs: list[list[Any]] = []
        open_runs: dict[int, list[Any]] = {}
        for recipient, seq, sender, client_id, timestamp, frame in rows:
            run = open_runs.get(recipient)
            if (run is None or seq != run[2] + 1 or timestamp != run[3]
                    or len(run[5]) >= MAX_RUN_MESSAGES or run[7] >= MAX_RUN_BYTES):
                run = [recipient, seq, seq, timestamp, [frame], [sender], [client_id],
                       len(frame)]
                open_runs[recipient] = run
                runs.append(run)
            else:
                run[2] = seq
                run[4].append(frame)
                run[5].append(sender)
                run[6].append(client_id)
                run[7] += len(frame)
        if not runs:
            return
        con = self._write()
        bucket_seconds = self.dedup_bucket_seconds
        heads: dict[int, int] = {}
        inserts = []
        accepted = []
        for recipient, first, last, timestamp, frames, senders, ids, _ in runs:
            packed_senders = _pack(_U32, senders)
            packed_ids = _pack(_U64, ids)
            inserts.append((recipient, first, last, packed_senders, packed_ids,
                            b"".join(frames)))
            if any(ids):
                accepted.append((timestamp // bucket_seconds if bucket is None else bucket,
                                 recipient, first, timestamp, encode_records(senders, ids)))
            heads[recipient] = max(last, heads.get(recipient, 0))
        con.executemany(SQL_INSERT_RUN, inserts)
        if accepted:
            con.executemany(SQL_INSERT_ACCEPTED, accepted)
        con.executemany(SQL_RAISE_HEAD_SEQ, heads.items())

    def inbox_after(self, uid: int, since_seq: int, limit: int) -> list[StoredRun]:
        """At most ``limit`` runs of ``uid``'s stored messages with seq > ``since_seq``, in
        seq order; the first run is cut to start after ``since_seq`` and after every message
        already delivered (:meth:`inbox_floor`)."""
        floor = max(since_seq, self.inbox_floor(uid))
        runs = [StoredRun(*row) for row in self._con.execute(SQL_RUNS_AFTER, (uid, floor, limit))]
        if runs and runs[0].first_seq <= floor:
            first = runs[0]
            skip = floor - first.first_seq + 1
            offset = frame_ends(first.frames)[skip - 1]
            runs[0] = StoredRun(floor + 1, first.last_seq, first.frames[offset:])
        return runs

    def inbox_floor(self, uid: int) -> int:
        """``uid``'s delivered_seq: its stored messages are exactly the seqs in
        (floor, head_seq], so they number ``head_seq - floor``. 0 for an unknown uid."""
        row = self._con.execute(SQL_DELIVERED_SEQ, (uid,)).fetchone()
        return 0 if row is None else int(row[0])

    def inbox_count(self, uid: int) -> int:
        """How many messages are stored for ``uid`` (not yet delivered)."""
        return self.head_seq(uid) - self.inbox_floor(uid)

    def inbox_bytes(self, uid: int) -> int:
        """Bytes of ``uid``'s stored runs (a run delivered in part counts whole until it is
        deleted): what :meth:`delete_inbox_through` frees, summed, when all is delivered."""
        size: int = self._con.execute(SQL_INBOX_BYTES, (uid,)).fetchone()[0]
        return size

    def delete_inbox_through(self, uid: int, seq: int, *, receipts: bool = True) -> Delivered:
        """``uid`` has received every message through ``seq``: raise its delivered_seq and
        delete the runs that end at or below it (head_seq and dedup records are kept).

        Returns the (sender, client_id) of the messages newly delivered that have a client
        id, in seq order (their senders are owed a receipt; ``receipts=False`` skips reading
        them: the caller knows none is owed), and the bytes of the deleted runs.
        """
        con = self._write()
        floor = self.inbox_floor(uid)
        if seq <= floor:
            return Delivered([], 0)
        owed: list[tuple[int, int]] = []
        if receipts:
            append = owed.append
            for first, senders, ids in con.execute(SQL_RUNS_BETWEEN, (uid, floor, seq)):
                sender_list = _unpack(_U32, senders)
                id_list = _unpack(_U64, ids)
                for index in range(max(0, floor + 1 - first),
                                   min(len(id_list), seq - first + 1)):
                    client_id = id_list[index]
                    if client_id:
                        append((sender_list[index], client_id))
        freed = sum(size for (size,) in con.fetchall(SQL_DELETE_RUNS_THROUGH, (uid, seq)))
        con.execute(SQL_SET_DELIVERED_SEQ, (uid, seq))
        return Delivered(owed, freed)

    def find_dedup(self, sender: int, client_id: int, buckets: Iterable[int],
                   recipient: int) -> DedupRecord | None:
        """The Ack already given for (sender, client_id) of a message to ``recipient``: the
        record in the newest of ``buckets`` that has one (delivered or not).

        Per bucket, one byte search for the record's exact text inside SQLite, which returns
        at most one row: the cost does not depend on what other ids look like.
        """
        key = record_key(sender, client_id)
        execute = self._con.execute
        for bucket in sorted(buckets, reverse=True):
            row = execute(SQL_ACCEPTED_FOR, (bucket, recipient, key)).fetchone()
            if row is not None:
                first, timestamp, position = row
                return DedupRecord(bucket, sender, client_id,
                                   first + (position - 1) // _RECORD_TEXT, timestamp)
        return None

    def newest_dedup_bucket(self) -> int | None:
        """The newest time bucket holding a dedup record, or None."""
        bucket: int | None = self._con.execute(SQL_NEWEST_ACCEPTED_BUCKET).fetchone()[0]
        return bucket

    def prune_dedup(self, before_bucket: int, limit: int = -1) -> int:
        """Forget at most ``limit`` (-1: all) dedup rows (one per run) of buckets below
        ``before_bucket``; returns how many rows."""
        return self._write().execute(SQL_PRUNE_ACCEPTED, (before_bucket, limit)).rowcount

    def dedup_keys_since(self, first_bucket: int) -> Iterator[tuple[int, int]]:
        """(sender, client_id) of every dedup record in ``first_bucket`` or later."""
        for (records,) in self._con.execute(SQL_ACCEPTED_SINCE, (first_bucket,)):
            for sender, client_id in decode_records(records):
                if client_id:
                    yield sender, client_id

    # -- resume tokens -----------------------------------------------------------------

    def add_token(self, uid: int, token_hash: bytes, expires: int) -> None:
        """Store the hash (never the token) of a resume token valid while now < ``expires``.

        Best effort: skipped while the store is unavailable, so a login still works then (the
        token is refused later and the client falls back to its password).
        """
        if self.available:
            self._write().execute(SQL_ADD_TOKEN, (token_hash, uid, expires))

    def token_owner(self, token_hash: bytes, now: int) -> int | None:
        """The uid owning the token, or None if unknown or expired."""
        row = self._con.execute(SQL_TOKEN_OWNER, (token_hash, now)).fetchone()
        return None if row is None else int(row[0])

    def revoke_tokens(self, uid: int) -> int:
        """Delete every token of ``uid``; returns how many."""
        return self._write().execute(SQL_REVOKE_TOKENS, (uid,)).rowcount

    def prune_tokens(self, now: int) -> int:
        """Delete expired tokens; returns how many."""
        return self._write().execute(SQL_PRUNE_TOKENS, (now,)).rowcount

    # -- admin kicks: an admin command (another process) asks the relay to end a session --

    def queue_kick(self, uid: int, reason: str) -> None:
        """Ask the running relay, if any, to end ``uid``'s live session with ``reason``."""
        self._write().execute(SQL_QUEUE_KICK, (uid, reason))

    def take_kicks(self, limit: int = KICKS_PER_CALL) -> list[tuple[int, str]]:
        """Up to ``limit`` queued kicks (uid, reason), oldest first, deleted in the open
        transaction. One ``PRAGMA data_version`` and nothing else when no other connection
        committed since the last call that found none queued (a batch whose deletion was
        rolled back is thus read again)."""
        version: int = self._con.execute("PRAGMA data_version").fetchone()[0]
        if version == self._seen_data_version:
            return []
        rows = self._con.execute(SQL_QUEUED_KICKS, (limit,)).fetchall()
        if rows:
            self._write().execute(SQL_DELETE_KICKS_THROUGH, (rows[-1][0],))
        else:  # read after the version: a commit since then changes it again
            self._seen_data_version = version
        return [(uid, reason) for _, uid, reason in rows]
