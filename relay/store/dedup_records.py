"""The accepted table: dedup records of accepted messages (PROTOCOL.md section 7).

Invariants:
- Every accepted message with a client id has a dedup record from the moment it is stored
  until its time bucket expires, delivered or not: one ``accepted`` row per inbox run, whose
  ``records`` hold the run's (sender, client id) pairs as self-synchronising text
  (:mod:`relay.store.packing`; seq = first_seq + index). A search for one record's text can
  match only that whole record, so a lookup returns at most the row that holds it, whatever
  the other ids look like.
- The table is appended at the right edge of its b-tree (rowid keys; the index leads with
  the time bucket), and expiry deletes whole bucket ranges in bounded chunks.
- Rows migrated from schema 1 have recipient 0 (unknown) and match any recipient.

Owns no state beyond the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from relay.store.database import Database
from relay.store.packing import RECORD_TEXT, decode_records, record_key

SQL_INSERT_ACCEPTED = (
    "INSERT INTO accepted (bucket, recipient, first_seq, timestamp, records) VALUES (?, ?, ?, ?, ?)"
)
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
SQL_PRUNE_ACCEPTED = (
    "DELETE FROM accepted WHERE id IN (SELECT id FROM accepted WHERE bucket < ? LIMIT ?)"
)
SQL_ACCEPTED_SINCE = "SELECT records FROM accepted WHERE bucket >= ?"


class DedupRecord(NamedTuple):
    """The OK Ack given for (sender, client_id): its seq and timestamp.

    ``bucket`` is the record's time bucket (see :meth:`DedupRecords.find_dedup`); records are kept
    until their bucket is pruned.
    """

    bucket: int
    sender: int
    client_id: int
    seq: int
    timestamp: int


class DedupRecords:
    """Reads and writes of the accepted table."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_runs(self, records: Sequence[tuple[Any, ...]]) -> None:
        """Insert one row per run: (bucket, recipient, first_seq, timestamp, records text),
        in the open write transaction."""
        self._db.write().executemany(SQL_INSERT_ACCEPTED, records)

    def remove_recipient(self, uid: int) -> None:
        """Delete the records of messages stored for ``uid`` (its account is removed)."""
        self._db.write().execute(SQL_REMOVE_USER_ACCEPTED, (uid,))

    def find_dedup(
        self, sender: int, client_id: int, buckets: Iterable[int], recipient: int
    ) -> DedupRecord | None:
        """The Ack already given for (sender, client_id) of a message to ``recipient``: the
        record in the newest of ``buckets`` that has one (delivered or not).

        Per bucket, one byte search for the record's exact text inside SQLite, which returns
        at most one row: the cost does not depend on what other ids look like.
        """
        key = record_key(sender, client_id)
        execute = self._db._con.execute
        for bucket in sorted(buckets, reverse=True):
            row = execute(SQL_ACCEPTED_FOR, (bucket, recipient, key)).fetchone()
            if row is not None:
                first, timestamp, position = row
                return DedupRecord(
                    bucket, sender, client_id, first + (position - 1) // RECORD_TEXT, timestamp
                )
        return None

    def newest_dedup_bucket(self) -> int | None:
        """The newest time bucket holding a dedup record, or None."""
        bucket: int | None = self._db._con.execute(SQL_NEWEST_ACCEPTED_BUCKET).fetchone()[0]
        return bucket

    def prune_dedup(self, before_bucket: int, limit: int = -1) -> int:
        """Forget at most ``limit`` (-1: all) dedup rows (one per run) of buckets below
        ``before_bucket``; returns how many rows."""
        return self._db.write().execute(SQL_PRUNE_ACCEPTED, (before_bucket, limit)).rowcount

    def dedup_keys_since(self, first_bucket: int) -> Iterator[tuple[int, int]]:
        """(sender, client_id) of every dedup record in ``first_bucket`` or later."""
        for (records,) in self._db._con.execute(SQL_ACCEPTED_SINCE, (first_bucket,)):
            for sender, client_id in decode_records(records):
                if client_id:
                    yield sender, client_id
