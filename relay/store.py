"""The relay's persistent store: users, buddy relations, inboxes, the dedup window, tokens.

Invariants:
- One :class:`Store` owns one ``sqlite3`` connection and is used from one thread only (the
  relay's event loop, or an admin CLI command). ``check_same_thread`` stays on to enforce it.
- Writes open a transaction lazily (``BEGIN IMMEDIATE``) and nothing is durable until
  :meth:`Store.commit`; the relay calls it once per event-loop iteration (group commit) and
  acknowledges only after it returned. Reads on the same store see its uncommitted writes.
- Journal mode is WAL. With ``synchronous=NORMAL`` a committed transaction survives a crash
  or SIGKILL of the process (the WAL frames are in the OS page cache); only an OS crash or
  power loss may lose the last commits, and it never corrupts the file. ``FULL`` also
  survives power loss at the price of an fsync per commit.
- ``users.head_seq`` is the highest inbox seq ever assigned to a user: it only grows and is
  kept when inbox rows are deleted. Seqs are assigned by the caller (which caches them).
- Relations are stored as mirrored pairs of rows, one from each side's point of view
  (BUDDY/BUDDY or REQUEST_SENT/REQUEST_RECEIVED), always written and deleted together.
- Rows owned by a user (relations both ways, inbox, tokens) go with it through
  ``ON DELETE CASCADE``; uids are never reused (AUTOINCREMENT).
- The schema version is ``PRAGMA user_version``; :data:`MIGRATIONS` step *n* takes it from
  *n - 1* to *n*, each step in its own transaction.
"""

from __future__ import annotations

import enum
import sqlite3
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import starmap
from pathlib import Path
from typing import NamedTuple, Self

BUSY_TIMEOUT_S = 5.0
SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})

# Step n migrates user_version n-1 -> n. Never edit a released step; append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
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
)

_USER_COLS = "uid, username, username_key, password_hash, protocol_version, head_seq, created"
_INBOX_COLS = "recipient, seq, sender, client_id, type, timestamp, payload"
_DEDUP_COLS = "bucket, sender, client_id, seq, timestamp"

# Not ON CONFLICT DO NOTHING: that would still consume a uid from the AUTOINCREMENT sequence.
SQL_ADD_USER = (
    "INSERT INTO users (username, username_key, password_hash, created)"
    " SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM users WHERE username_key = ?2)"
)
SQL_USER_BY_UID = f"SELECT {_USER_COLS} FROM users WHERE uid = ?"
SQL_USER_BY_KEY = f"SELECT {_USER_COLS} FROM users WHERE username_key = ?"
SQL_LIST_USERS = f"SELECT {_USER_COLS} FROM users ORDER BY uid LIMIT ?"
SQL_LIST_USERS_MATCHING = (
    f"SELECT {_USER_COLS} FROM users WHERE instr(parley_fold(username), ?) > 0 ORDER BY uid LIMIT ?"
)
SQL_SET_PASSWORD_HASH = "UPDATE users SET password_hash = ? WHERE uid = ?"
SQL_SET_PROTOCOL_VERSION = "UPDATE users SET protocol_version = ? WHERE uid = ?"
SQL_REMOVE_USER = "DELETE FROM users WHERE uid = ?"
SQL_REMOVE_USER_DEDUP = "DELETE FROM dedup WHERE sender = ?"
SQL_REMOVE_USER_INBOX = "DELETE FROM inbox WHERE recipient = ?"
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
SQL_INSERT_INBOX = f"INSERT INTO inbox ({_INBOX_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
SQL_RAISE_HEAD_SEQ = "UPDATE users SET head_seq = max(head_seq, ?2) WHERE uid = ?1"
SQL_INBOX_AFTER = (
    f"SELECT {_INBOX_COLS} FROM inbox WHERE recipient = ? AND seq > ? ORDER BY seq LIMIT ?"
)
SQL_INBOX_COUNT = "SELECT count(*) FROM inbox WHERE recipient = ?"
SQL_INBOX_MIN_SEQ = "SELECT min(seq) FROM inbox WHERE recipient = ?"
SQL_DELETE_INBOX_THROUGH_QUIETLY = "DELETE FROM inbox WHERE recipient = ? AND seq <= ?"
SQL_DELETE_INBOX_THROUGH = (
    "DELETE FROM inbox WHERE recipient = ? AND seq <= ? RETURNING sender, client_id"
)

# A newer record supersedes a stale one for the same key; an equal or older one is ignored.
SQL_FIND_DEDUP = (
    f"SELECT {_DEDUP_COLS} FROM dedup WHERE bucket = ? AND sender = ? AND client_id = ?"
)
SQL_PRUNE_DEDUP = (
    "DELETE FROM dedup WHERE (bucket, sender, client_id) IN"
    " (SELECT bucket, sender, client_id FROM dedup WHERE bucket < ? LIMIT ?)"
)
SQL_DEDUP_KEYS_SINCE = (
    "SELECT sender, client_id FROM dedup WHERE bucket >= ?"
    " UNION ALL SELECT sender, client_id FROM inbox WHERE client_id != 0"
)
SQL_INBOX_TO_DEDUP = (
    f"INSERT OR IGNORE INTO dedup ({_DEDUP_COLS})"
    " SELECT timestamp / ?1, sender, client_id, seq, timestamp FROM inbox"
    " WHERE recipient = ?2 AND seq <= ?3 AND client_id != 0"
)
SQL_FIND_UNDELIVERED = (
    "SELECT seq, timestamp FROM inbox WHERE recipient = ? AND sender = ? AND client_id = ?"
)

SQL_ADD_TOKEN = "INSERT OR REPLACE INTO tokens (token_hash, uid, expires) VALUES (?, ?, ?)"
SQL_TOKEN_OWNER = "SELECT uid FROM tokens WHERE token_hash = ? AND expires > ?"
SQL_REVOKE_TOKENS = "DELETE FROM tokens WHERE uid = ?"
SQL_PRUNE_TOKENS = "DELETE FROM tokens WHERE expires <= ?"


class StoreError(Exception):
    """The database file cannot be used by this version of the relay."""


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
    """A stored durable message. ``client_id`` is the sender's message id (0 for v1).

    A NamedTuple, not a dataclass: one is built per relayed message, and a tuple in column
    order goes to ``executemany`` as it is.
    """

    recipient: int
    seq: int
    sender: int
    client_id: int
    type: int
    timestamp: int
    payload: bytes


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


def _fold(text: str) -> str:
    """Case-insensitive matching form of a username or a query."""
    return unicodedata.normalize("NFC", text.casefold())


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
        self._con = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        self._closed = False
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
                    con.execute(statement)
                con.execute(f"PRAGMA user_version = {version + 1}")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _write(self) -> sqlite3.Connection:
        """The connection, inside a write transaction (begun here if none is open)."""
        con = self._con
        if not con.in_transaction:
            con.execute("BEGIN IMMEDIATE")
        return con

    # -- transactions ------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """True while writes are waiting for :meth:`commit`."""
        return self._con.in_transaction

    def commit(self) -> None:
        """Make every write since the last commit durable; no-op when nothing is pending."""
        if self._con.in_transaction:
            self._con.execute("COMMIT")

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
        """Create a user and return its uid (from 1, never reused); None if the key exists."""
        cur = self._write().execute(SQL_ADD_USER, (username, username_key, password_hash, now))
        return cur.lastrowid if cur.rowcount == 1 else None

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
        """Record the protocol version of the user's latest login."""
        self._write().execute(SQL_SET_PROTOCOL_VERSION, (version, uid))

    def remove_user(self, uid: int) -> bool:
        """Delete a user with its relations (both ways), inbox, tokens and sent-dedup rows.

        Messages it sent that still wait in other inboxes are kept. False if no such user.
        """
        con = self._write()
        con.execute(SQL_REMOVE_USER_DEDUP, (uid,))
        con.execute(SQL_REMOVE_USER_INBOX, (uid,))
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

    def append_inbox(self, rows: Sequence[InboxRow]) -> None:
        """Store messages whose seqs the caller assigned (above each recipient's head_seq).

        Raises ``sqlite3.IntegrityError`` on a duplicate (recipient, seq) or an unknown
        recipient; the open transaction then holds part of the batch: call :meth:`rollback`.
        """
        if not rows:
            return
        con = self._write()
        con.executemany(SQL_INSERT_INBOX, rows)
        heads: dict[int, int] = {}
        for row in rows:
            if row.seq > heads.get(row.recipient, 0):
                heads[row.recipient] = row.seq
        con.executemany(SQL_RAISE_HEAD_SEQ, heads.items())

    def inbox_after(self, uid: int, since_seq: int, limit: int) -> list[InboxRow]:
        """At most ``limit`` stored messages of ``uid`` with seq > ``since_seq``, in seq order."""
        cur = self._con.execute(SQL_INBOX_AFTER, (uid, since_seq, limit))
        return list(starmap(InboxRow, cur))

    def inbox_floor(self, uid: int) -> int:
        """The seq below ``uid``'s oldest stored message (its head_seq when none is stored).

        Deletions are always prefix deletions (through a seq), so the stored messages are
        exactly the seqs in (floor, head_seq] and their count is ``head_seq - floor``.
        """
        row = self._con.execute(SQL_INBOX_MIN_SEQ, (uid,)).fetchone()
        if row is None or row[0] is None:
            return self.head_seq(uid)
        return int(row[0]) - 1

    def inbox_count(self, uid: int) -> int:
        count: int = self._con.execute(SQL_INBOX_COUNT, (uid,)).fetchone()[0]
        return count

    def delete_inbox_through(self, uid: int, seq: int, *,
                             keep_dedup: bool = True) -> list[tuple[int, int]]:
        """Delete ``uid``'s messages with seq <= ``seq`` (delivered); head_seq is kept.

        The (sender, client_id, seq, timestamp) of deleted messages that had a client id move
        into the dedup table in the same statement batch, so a sender's retry after the
        delivery still finds its original Ack (see :meth:`find_dedup`). Returns those
        (sender, client_id) pairs, in no particular order: their senders are owed a receipt.
        """
        con = self._write()
        if not keep_dedup:  # the caller knows no row in range has a client id
            con.execute(SQL_DELETE_INBOX_THROUGH_QUIETLY, (uid, seq))
            return []
        con.execute(SQL_INBOX_TO_DEDUP, (self.dedup_bucket_seconds, uid, seq))
        return [(sender, client_id) for sender, client_id in
                con.execute(SQL_DELETE_INBOX_THROUGH, (uid, seq)) if client_id]

    def find_dedup(self, sender: int, client_id: int, buckets: Iterable[int],
                   recipient: int | None = None) -> DedupRecord | None:
        """The Ack already given for (sender, client_id): the newest dedup record in any of
        ``buckets`` or, when ``recipient`` is given, a stored (undelivered) message of
        ``recipient`` with that sender and id. Point lookups, then one scan of that inbox.
        """
        execute = self._con.execute
        for bucket in sorted(buckets, reverse=True):
            row = execute(SQL_FIND_DEDUP, (bucket, sender, client_id)).fetchone()
            if row is not None:
                return DedupRecord(*row)
        if recipient is not None:
            row = execute(SQL_FIND_UNDELIVERED, (recipient, sender, client_id)).fetchone()
            if row is not None:
                seq, timestamp = row
                return DedupRecord(timestamp // self.dedup_bucket_seconds, sender, client_id,
                                   seq, timestamp)
        return None

    def prune_dedup(self, before_bucket: int, limit: int = -1) -> int:
        """Forget at most ``limit`` (-1: all) records of buckets below ``before_bucket``."""
        return self._write().execute(SQL_PRUNE_DEDUP, (before_bucket, limit)).rowcount

    def dedup_keys_since(self, first_bucket: int) -> Iterator[tuple[int, int]]:
        """(sender, client_id) of every record in ``first_bucket`` or later, and of every
        stored message that has a client id (those are dedup records too, until delivered)."""
        yield from self._con.execute(SQL_DEDUP_KEYS_SINCE, (first_bucket,))

    # -- resume tokens -----------------------------------------------------------------

    def add_token(self, uid: int, token_hash: bytes, expires: int) -> None:
        """Store the hash (never the token) of a resume token valid while now < ``expires``."""
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
