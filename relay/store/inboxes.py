"""The inboxes: durable messages stored per box until delivered (the inbox_runs table and
the boxes' ``head_seq`` / ``delivered_seq`` columns).

A *box* is one device's inbox (PROTOCOL.md section 9): the user's uid box (``box == uid``,
below :data:`BOX_BASE`; its seq columns are the users row's, as before devices existed) or a
device box from :data:`BOX_BASE` up (its seq columns are the devices row's,
:mod:`relay.store.devices`).

Invariants:
- A box's ``head_seq`` is the highest inbox seq ever assigned in it: it only grows and is
  kept when inbox rows are deleted. Seqs are assigned by the caller (which caches them)
  above it. ``delivered_seq`` is the highest seq its device has received: its stored
  messages are exactly (delivered_seq, head_seq].
- The inbox stores *runs*: one row per run of consecutive seqs of one box accepted
  together, holding their whole MESSAGE frames back to back (one b-tree insert per run, not
  per message: the relay's hot path). Its senders and ids arrays are aligned with its seqs,
  or both empty when no message of the run owes a receipt (room copies). A delivery
  through seq N deletes the runs that end at or below N; a run delivered only in part
  stays, and readers skip its frames <= the box's ``delivered_seq`` (and count in the
  box's stored bytes until deleted).
- A run whose rows name a dedup uid gets its dedup record in the same transaction, filed
  under that uid (:mod:`relay.store.dedup_records`): one copy of a message fanned out to
  several boxes carries the record, the others none. The run row carries the senders and
  ids as little-endian arrays (:mod:`relay.store.packing`): receipts are read from it at
  delivery.
- The table is appended at the right edge of its b-tree (rowid keys; the index leads with
  the box of live runs only): a commit writes a few pages whatever the number of
  recipients (hot spots per recipient in a growing table tripled the WAL pages per commit).
- No foreign key on the hot table: a removed user's or forgotten device's runs are deleted
  by :meth:`Inboxes.remove_box`.
- A *shared run* (``shared_runs``) holds the bodies (MESSAGE payloads without seq) of room
  messages that several boxes took as one run each: their rows name it (``shared``), keep
  empty frames and arrays, and record their frames' length in ``size``; readers rebuild the
  frames (:func:`relay.run_frames.run_frames`). ``refs`` counts the rows naming it; the
  schema's trigger deletes it with the last of them, in the deleting transaction. A row's
  stored bytes are ``coalesce(size, length(frames))`` either way.

Owns no state beyond the rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NamedTuple

from protocol.framing import frame_ends
from relay.run_frames import FramePieces, run_frames
from relay.store.database import Database
from relay.store.dedup_records import DedupRecords
from relay.store.packing import U32, U64, encode_records, pack, unpack

MAX_RUN_MESSAGES = 64  # messages per inbox run (bounds the scan back to a run's first seq)
MAX_RUN_BYTES = 64 * 1024  # a run is closed once its frames reach this size

BOX_BASE = 1 << 32  # device boxes from here up; below it a box is its user's uid

SQL_HEAD_SEQ = "SELECT head_seq FROM users WHERE uid = ?"
SQL_DEVICE_HEAD_SEQ = "SELECT head_seq FROM devices WHERE box = ?"
SQL_DELIVERED_SEQ = "SELECT delivered_seq FROM users WHERE uid = ?"
SQL_DEVICE_DELIVERED_SEQ = "SELECT delivered_seq FROM devices WHERE box = ?"
SQL_INSERT_RUN = (
    "INSERT INTO inbox_runs (recipient, first_seq, last_seq, senders, client_ids, frames)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
SQL_INSERT_SHARED = "INSERT INTO shared_runs (refs, lengths, bodies) VALUES (?, ?, ?)"
SQL_INSERT_SHARED_ROW = (
    "INSERT INTO inbox_runs (recipient, first_seq, last_seq, senders, client_ids, frames,"
    " shared, size) VALUES (?, ?, ?, x'', x'', x'', ?, ?)"
)
SQL_RAISE_HEAD_SEQ = "UPDATE users SET head_seq = max(head_seq, ?2) WHERE uid = ?1"
SQL_RAISE_DEVICE_HEAD_SEQ = "UPDATE devices SET head_seq = max(head_seq, ?2) WHERE box = ?1"
# Runs ending after since_seq; the first one may start at or before it. A run holds at most
# MAX_RUN_MESSAGES seqs, which bounds the index range to scan.
# A shared run's bodies come with its rows (one statement, not one per row).
SQL_RUNS_AFTER = (
    "SELECT r.first_seq, r.last_seq, r.frames, s.lengths, s.bodies FROM inbox_runs AS r"
    " LEFT JOIN shared_runs AS s ON s.id = r.shared WHERE r.recipient = ?1"
    f" AND r.first_seq > ?2 - {MAX_RUN_MESSAGES} AND r.last_seq > ?2 ORDER BY r.first_seq"
    " LIMIT ?3"
)
# first_seq <= ?2 bounds the index range: delivered runs are gone, so it is short.
SQL_DELETE_RUNS_THROUGH = (
    "DELETE FROM inbox_runs WHERE recipient = ?1 AND first_seq <= ?2 AND last_seq <= ?2"
    " RETURNING coalesce(size, length(frames))"
)
# The same for many boxes at once: ?1 is a JSON array of [box, seq] pairs.
SQL_DELETE_MANY_THROUGH = (
    "DELETE FROM inbox_runs WHERE rowid IN (SELECT r.rowid FROM json_each(?1) AS d"
    " JOIN inbox_runs AS r ON r.recipient = d.value ->> 0 AND r.first_seq <= d.value ->> 1"
    " AND r.last_seq <= d.value ->> 1) RETURNING recipient, coalesce(size, length(frames))"
)
SQL_INBOX_BYTES = (
    "SELECT coalesce(sum(coalesce(size, length(frames))), 0) FROM inbox_runs WHERE recipient = ?"
)
SQL_SET_DELIVERED_SEQ = (
    "UPDATE users SET delivered_seq = min(?2, head_seq) WHERE uid = ?1 AND delivered_seq < ?2"
)
SQL_SET_DEVICE_DELIVERED_SEQ = (
    "UPDATE devices SET delivered_seq = min(?2, head_seq) WHERE box = ?1 AND delivered_seq < ?2"
)
SQL_REMOVE_BOX_RUNS = "DELETE FROM inbox_runs WHERE recipient = ?"
SQL_EMPTY_USER_BOX = "UPDATE users SET delivered_seq = head_seq WHERE uid = ?"
# Runs holding seqs in (?2, ?3]: their senders and ids are owed receipts when delivered.
SQL_RUNS_BETWEEN = (
    "SELECT first_seq, senders, client_ids FROM inbox_runs WHERE recipient = ?1"
    f" AND first_seq > ?2 - {MAX_RUN_MESSAGES} AND first_seq <= ?3 AND last_seq > ?2"
    " ORDER BY first_seq"
)


def _per_box_table(con: Any, user_sql: str, device_sql: str, seqs: dict[int, int]) -> None:
    """Run ``user_sql`` for the uid boxes of ``seqs`` (box -> seq; their seq columns are in
    the users table) and ``device_sql`` for the device boxes (devices table)."""
    users = [item for item in seqs.items() if item[0] < BOX_BASE]
    if users:
        con.executemany(user_sql, users)
    if len(users) < len(seqs):
        con.executemany(device_sql, [item for item in seqs.items() if item[0] >= BOX_BASE])


def _raise_heads(con: Any, heads: dict[int, int]) -> None:
    """Raise each box's head_seq to at least the given seq."""
    _per_box_table(con, SQL_RAISE_HEAD_SEQ, SQL_RAISE_DEVICE_HEAD_SEQ, heads)


def room_dedup_key(room: int) -> int:
    """The key a room message's dedup record is filed under (below -1: never a uid)."""
    return -2 - room


class Delivered(NamedTuple):
    """What :meth:`Inboxes.delete_inbox_through` did: the (sender, client_id) owed a receipt,
    in seq order, and the bytes of the runs it deleted."""

    receipts: list[tuple[int, int]]
    freed_bytes: int


class InboxRow(NamedTuple):
    """A durable message to store in box ``recipient``. ``client_id`` is the sender's
    message id (0 for v1, and for copies that owe no receipt); ``frame`` is the whole
    MESSAGE frame the box's device gets (header included). ``dedup_uid`` is the uid the
    message's dedup record is filed under: -1 (the default) for ``recipient`` itself (a uid
    box), 0 for none (the other copies of a message fanned out to several boxes),
    :func:`room_dedup_key` (below -1) for the one copy of a room message that files its
    record (its run keeps no ids: no receipt is owed for room messages).

    A NamedTuple, not a dataclass: one is built per relayed message.
    """

    recipient: int
    seq: int
    sender: int
    client_id: int
    timestamp: int
    frame: bytes
    dedup_uid: int = -1


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

    def head_seq(self, box: int) -> int:
        """The highest seq ever assigned in ``box``; 0 if none or no such box."""
        sql = SQL_HEAD_SEQ if box < BOX_BASE else SQL_DEVICE_HEAD_SEQ
        row = self._db._con.execute(sql, (box,)).fetchone()
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
        # [recipient, first, last, timestamp, frames, senders, ids, size, dedup uid] per run
        runs: list[list[Any]] = []
        open_runs: dict[int, list[Any]] = {}
        for recipient, seq, sender, client_id, timestamp, frame, dedup_uid in rows:
            run = open_runs.get(recipient)
            if (
                run is None
                or seq != run[2] + 1
                or timestamp != run[3]
                or len(run[5]) >= MAX_RUN_MESSAGES
                or run[7] >= MAX_RUN_BYTES
                or dedup_uid != run[8]
            ):
                run = [
                    recipient,
                    seq,
                    seq,
                    timestamp,
                    [frame],
                    [sender],
                    [client_id],
                    len(frame),
                    dedup_uid,
                ]
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
        for recipient, first, last, timestamp, frames, senders, ids, _, dedup_uid in runs:
            # A room's copy files its dedup record but owes no receipt (PROTOCOL.md section
            # 10): its run keeps no senders and ids (empty arrays).
            room_copy = dedup_uid < -1
            packed_senders = b"" if room_copy else pack(U32, senders)
            packed_ids = b"" if room_copy else pack(U64, ids)
            inserts.append((recipient, first, last, packed_senders, packed_ids, b"".join(frames)))
            if dedup_uid and any(ids):
                accepted.append(
                    (
                        timestamp // bucket_seconds if bucket is None else bucket,
                        recipient if dedup_uid < 0 else dedup_uid,
                        first,
                        timestamp,
                        encode_records(senders, ids),
                    )
                )
            heads[recipient] = max(last, heads.get(recipient, 0))
        con.executemany(SQL_INSERT_RUN, inserts)
        if accepted:
            self._dedup_records.add_runs(accepted)
        _raise_heads(con, heads)

    def append_runs(
        self,
        runs: Iterable[tuple[int, int, int, int, bytes, list[int] | None, list[int] | None]],
    ) -> None:
        """Store runs built by the caller: (box, first_seq, last_seq, timestamp, frames back
        to back, senders, ids), each above its box's head_seq. They file no dedup record
        (the caller files those once per message); their senders and ids (owed a receipt
        when delivered) are kept, or zeros when None (room copies owe none)."""
        inserts = []
        heads: dict[int, int] = {}
        for box, first, last, _timestamp, frames, senders, ids in runs:
            # Runs owing no receipt (room copies) store empty arrays, not zeros: 12 bytes
            # per message less pushed a 64-message run of a room of 500 into an overflow
            # page per row (bench_vs_mosquitto room500).
            packed_senders = b"" if senders is None else pack(U32, senders)
            packed_ids = b"" if ids is None else pack(U64, ids)
            inserts.append((box, first, last, packed_senders, packed_ids, frames))
            heads[box] = max(last, heads.get(box, 0))
        if not inserts:
            return
        con = self._db.write()
        con.executemany(SQL_INSERT_RUN, inserts)
        _raise_heads(con, heads)

    def append_shared_runs(
        self, shared: Iterable[tuple[list[bytes], list[tuple[int, int, int, int]]]]
    ) -> None:
        """Store shared runs: per entry, the messages' bodies (stored once) and the rows of
        the boxes taking them, as (box, first_seq, last_seq, frames' size), each above its
        box's head_seq. No dedup record, no receipt owed (room messages)."""
        con = self._db.write()
        heads: dict[int, int] = {}
        for bodies, rows in shared:
            lengths = pack(U32, [len(body) for body in bodies])
            shared_id = con.execute(SQL_INSERT_SHARED, (len(rows), lengths, b"".join(bodies)))
            ident = shared_id.lastrowid
            con.executemany(
                SQL_INSERT_SHARED_ROW,
                [(box, first, last, ident, size) for box, first, last, size in rows],
            )
            for box, _first, last, _size in rows:
                heads[box] = max(last, heads.get(box, 0))
        if heads:
            _raise_heads(con, heads)

    @staticmethod
    def _shared_frames(lengths: bytes, bodies: bytes, first_seq: int) -> bytes:
        """The frames of a shared run's row (its bodies, their ``lengths``) from ``first_seq``."""
        pieces = []
        offset = 0
        for length in unpack(U32, lengths):
            pieces.append(bodies[offset : offset + length])
            offset += length
        return run_frames(FramePieces(pieces), 0, len(pieces), first_seq)

    def inbox_after(self, box: int, since_seq: int, limit: int) -> list[StoredRun]:
        """At most ``limit`` runs of ``box``'s stored messages with seq > ``since_seq``, in
        seq order; the first run is cut to start after ``since_seq`` and after every message
        already delivered (:meth:`inbox_floor`)."""
        floor = max(since_seq, self.inbox_floor(box))
        cur = self._db._con.execute(SQL_RUNS_AFTER, (box, floor, limit))
        runs = [
            StoredRun(
                first,
                last,
                frames if bodies is None else self._shared_frames(lengths, bodies, first),
            )
            for first, last, frames, lengths, bodies in cur.fetchall()
        ]
        if runs and runs[0].first_seq <= floor:
            first = runs[0]
            skip = floor - first.first_seq + 1
            offset = frame_ends(first.frames)[skip - 1]
            runs[0] = StoredRun(floor + 1, first.last_seq, first.frames[offset:])
        return runs

    def inbox_floor(self, box: int) -> int:
        """``box``'s delivered_seq: its stored messages are exactly the seqs in
        (floor, head_seq], so they number ``head_seq - floor``. 0 for an unknown box."""
        sql = SQL_DELIVERED_SEQ if box < BOX_BASE else SQL_DEVICE_DELIVERED_SEQ
        row = self._db._con.execute(sql, (box,)).fetchone()
        return 0 if row is None else int(row[0])

    def inbox_count(self, box: int) -> int:
        """How many messages are stored in ``box`` (not yet delivered)."""
        return self.head_seq(box) - self.inbox_floor(box)

    def inbox_bytes(self, box: int) -> int:
        """Bytes of ``box``'s stored runs (a run delivered in part counts whole until it is
        deleted): what :meth:`delete_inbox_through` frees, summed, when all is delivered."""
        size: int = self._db._con.execute(SQL_INBOX_BYTES, (box,)).fetchone()[0]
        return size

    def delete_inbox_through(
        self, box: int, seq: int, *, receipts: bool = True, floor: int | None = None
    ) -> Delivered:
        """``box``'s device has received every message through ``seq``: raise its delivered_seq and
        delete the runs that end at or below it (head_seq and dedup records are kept).

        Returns the (sender, client_id) of the messages newly delivered that have a client
        id, in seq order (their senders are owed a receipt; ``receipts=False`` skips reading
        them: the caller knows none is owed), and the bytes of the deleted runs. ``floor``:
        the box's delivered_seq if the caller knows it (saves a read).
        """
        con = self._db.write()
        if floor is None:
            floor = self.inbox_floor(box)
        if seq <= floor:
            return Delivered([], 0)
        owed: list[tuple[int, int]] = []
        if receipts:
            for first, senders, ids in con.execute(SQL_RUNS_BETWEEN, (box, floor, seq)):
                if not any(ids):
                    continue  # room copies and v1 messages: no receipt owed
                start = max(0, floor + 1 - first)
                end = seq - first + 1
                owed.extend(
                    pair
                    for pair in zip(
                        unpack(U32, senders)[start:end], unpack(U64, ids)[start:end], strict=True
                    )
                    if pair[1]
                )
        freed = sum(size for (size,) in con.fetchall(SQL_DELETE_RUNS_THROUGH, (box, seq)))
        con.execute(
            SQL_SET_DELIVERED_SEQ if box < BOX_BASE else SQL_SET_DEVICE_DELIVERED_SEQ, (box, seq)
        )
        return Delivered(owed, freed)

    def delete_many_through(self, through: dict[int, int]) -> dict[int, int]:
        """:meth:`delete_inbox_through` without receipts for many boxes in one statement
        (``through``: box -> seq, each above the box's delivered_seq); return the bytes
        freed per box (boxes that freed nothing are left out)."""
        if not through:
            return {}
        con = self._db.write()
        freed: dict[int, int] = {}
        pairs = json.dumps(list(through.items()))
        for box, size in con.fetchall(SQL_DELETE_MANY_THROUGH, (pairs,)):
            freed[box] = freed.get(box, 0) + size
        _per_box_table(con, SQL_SET_DELIVERED_SEQ, SQL_SET_DEVICE_DELIVERED_SEQ, through)
        return freed

    def remove_box(self, box: int) -> None:
        """Delete every run stored in ``box`` (its user is removed or its device forgotten);
        a uid box keeps its head_seq and counts as empty."""
        con = self._db.write()
        con.execute(SQL_REMOVE_BOX_RUNS, (box,))
        if box < BOX_BASE:
            con.execute(SQL_EMPTY_USER_BOX, (box,))
