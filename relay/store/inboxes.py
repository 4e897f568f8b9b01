"""The inboxes: durable messages stored per recipient until delivered (the inbox_runs table
and the users' ``head_seq`` / ``delivered_seq`` columns).

Invariants:
- ``users.head_seq`` is the highest inbox seq ever assigned to a user: it only grows and is
  kept when inbox rows are deleted. Seqs are assigned by the caller (which caches them)
  above it. ``users.delivered_seq`` is the highest seq the user has received: its stored
  messages are exactly (delivered_seq, head_seq].
- The inbox stores *runs*: one row per run of consecutive seqs of one recipient accepted
  together, holding their whole MESSAGE frames back to back (one b-tree insert per run, not
  per message: the relay's hot path). A delivery through seq N deletes the runs that end at
  or below N; a run delivered only in part stays, and readers skip its frames <= the
  user's ``delivered_seq`` (and count in the recipient's stored bytes until deleted).
- Each run with client ids gets its dedup record in the same transaction
  (:mod:`relay.store.dedup_records`). The run row carries the senders and ids as little-endian
  arrays (:mod:`relay.store.packing`): receipts are read from it at delivery.
- The table is appended at the right edge of its b-tree (rowid keys; the index leads with
  the recipient of live runs only): a commit writes a few pages whatever the number of
  recipients (hot spots per recipient in a growing table tripled the WAL pages per commit).
- No foreign key on the hot table: a removed user's runs are deleted by
  :meth:`Inboxes.remove_recipient`.

Owns no state beyond the rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from protocol.framing import frame_ends
from relay.store.database import Database
from relay.store.dedup_records import DedupRecords
from relay.store.packing import U32, U64, encode_records, pack, unpack

MAX_RUN_MESSAGES = 64  # messages per inbox run (bounds the scan back to a run's first seq)
MAX_RUN_BYTES = 64 * 1024  # a run is closed once its frames reach this size

SQL_HEAD_SEQ = "SELECT head_seq FROM users WHERE uid = ?"
SQL_DELIVERED_SEQ = "SELECT delivered_seq FROM users WHERE uid = ?"
SQL_INSERT_RUN = (
    "INSERT INTO inbox_runs (recipient, first_seq, last_seq, senders, client_ids, frames)"
    " VALUES (?, ?, ?, ?, ?, ?)"
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
# Runs holding seqs in (?2, ?3]: their senders and ids are owed receipts when delivered.
SQL_RUNS_BETWEEN = (
    "SELECT first_seq, senders, client_ids FROM inbox_runs WHERE recipient = ?1"
    f" AND first_seq > ?2 - {MAX_RUN_MESSAGES} AND first_seq <= ?3 AND last_seq > ?2"
    " ORDER BY first_seq"
)


class Delivered(NamedTuple):
    """What :meth:`Inboxes.delete_inbox_through` did: the (sender, client_id) owed a receipt,
    in seq order, and the bytes of the runs it deleted."""

    receipts: list[tuple[int, int]]
    freed_bytes: int


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


class Inboxes:
    """Reads and writes of the inboxes (runs, and the users' seq columns)."""

    __slots__ = ("_db", "_dedup_records")

    def __init__(self, db: Database, dedup_records: DedupRecords) -> None:
        self._db = db
        self._dedup_records = dedup_records

    def head_seq(self, uid: int) -> int:
        """The highest seq ever assigned in ``uid``'s inbox; 0 if none or no such user."""
        row = self._db._con.execute(SQL_HEAD_SEQ, (uid,)).fetchone()
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
        transaction then holds part of the batch: call :meth:`relay.store.Store.rollback`.
        """
        # [recipient, first, last, timestamp, frames, senders, ids, size] per run
        runs: list[list[Any]] = []
        open_runs: dict[int, list[Any]] = {}
        for recipient, seq, sender, client_id, timestamp, frame in rows:
            run = open_runs.get(recipient)
            if (
                run is None
                or seq != run[2] + 1
                or timestamp != run[3]
                or len(run[5]) >= MAX_RUN_MESSAGES
                or run[7] >= MAX_RUN_BYTES
            ):
                run = [recipient, seq, seq, timestamp, [frame], [sender], [client_id], len(frame)]
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
        con = self._db.write()
        bucket_seconds = self._db.dedup_bucket_seconds
        heads: dict[int, int] = {}
        inserts = []
        accepted = []
        for recipient, first, last, timestamp, frames, senders, ids, _ in runs:
            packed_senders = pack(U32, senders)
            packed_ids = pack(U64, ids)
            inserts.append((recipient, first, last, packed_senders, packed_ids, b"".join(frames)))
            if any(ids):
                accepted.append(
                    (
                        timestamp // bucket_seconds if bucket is None else bucket,
                        recipient,
                        first,
                        timestamp,
                        encode_records(senders, ids),
                    )
                )
            heads[recipient] = max(last, heads.get(recipient, 0))
        con.executemany(SQL_INSERT_RUN, inserts)
        if accepted:
            self._dedup_records.add_runs(accepted)
        con.executemany(SQL_RAISE_HEAD_SEQ, heads.items())

    def inbox_after(self, uid: int, since_seq: int, limit: int) -> list[StoredRun]:
        """At most ``limit`` runs of ``uid``'s stored messages with seq > ``since_seq``, in
        seq order; the first run is cut to start after ``since_seq`` and after every message
        already delivered (:meth:`inbox_floor`)."""
        floor = max(since_seq, self.inbox_floor(uid))
        cur = self._db._con.execute(SQL_RUNS_AFTER, (uid, floor, limit))
        runs = [StoredRun(*row) for row in cur]
        if runs and runs[0].first_seq <= floor:
            first = runs[0]
            skip = floor - first.first_seq + 1
            offset = frame_ends(first.frames)[skip - 1]
            runs[0] = StoredRun(floor + 1, first.last_seq, first.frames[offset:])
        return runs

    def inbox_floor(self, uid: int) -> int:
        """``uid``'s delivered_seq: its stored messages are exactly the seqs in
        (floor, head_seq], so they number ``head_seq - floor``. 0 for an unknown uid."""
        row = self._db._con.execute(SQL_DELIVERED_SEQ, (uid,)).fetchone()
        return 0 if row is None else int(row[0])

    def inbox_count(self, uid: int) -> int:
        """How many messages are stored for ``uid`` (not yet delivered)."""
        return self.head_seq(uid) - self.inbox_floor(uid)

    def inbox_bytes(self, uid: int) -> int:
        """Bytes of ``uid``'s stored runs (a run delivered in part counts whole until it is
        deleted): what :meth:`delete_inbox_through` frees, summed, when all is delivered."""
        size: int = self._db._con.execute(SQL_INBOX_BYTES, (uid,)).fetchone()[0]
        return size

    def delete_inbox_through(self, uid: int, seq: int, *, receipts: bool = True) -> Delivered:
        """``uid`` has received every message through ``seq``: raise its delivered_seq and
        delete the runs that end at or below it (head_seq and dedup records are kept).

        Returns the (sender, client_id) of the messages newly delivered that have a client
        id, in seq order (their senders are owed a receipt; ``receipts=False`` skips reading
        them: the caller knows none is owed), and the bytes of the deleted runs.
        """
        con = self._db.write()
        floor = self.inbox_floor(uid)
        if seq <= floor:
            return Delivered([], 0)
        owed: list[tuple[int, int]] = []
        if receipts:
            append = owed.append
            for first, senders, ids in con.execute(SQL_RUNS_BETWEEN, (uid, floor, seq)):
                sender_list = unpack(U32, senders)
                id_list = unpack(U64, ids)
                for index in range(max(0, floor + 1 - first), min(len(id_list), seq - first + 1)):
                    client_id = id_list[index]
                    if client_id:
                        append((sender_list[index], client_id))
        freed = sum(size for (size,) in con.fetchall(SQL_DELETE_RUNS_THROUGH, (uid, seq)))
        con.execute(SQL_SET_DELIVERED_SEQ, (uid, seq))
        return Delivered(owed, freed)

    def remove_recipient(self, uid: int) -> None:
        """Delete every run stored for ``uid`` (its account is removed)."""
        self._db.write().execute(SQL_REMOVE_USER_RUNS, (uid,))
