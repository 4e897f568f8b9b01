"""The admin_kicks table: sessions an admin command (another process) asks the running
relay to end.

Invariants:
- A kick is deleted in the same transaction that hands it to the relay, so a batch whose
  deletion is rolled back is handed out again.
- At most ``KICKS_PER_CALL`` kicks per call; a call when no other connection committed
  since the last empty one costs one ``PRAGMA data_version``.

State owned: the data version seen by the last call that found no kick queued.
"""

from __future__ import annotations

from relay.store.database import Database

KICKS_PER_CALL = 100  # admin kicks applied per take_kicks call (the rest: next call)

SQL_QUEUE_KICK = "INSERT INTO admin_kicks (uid, reason) VALUES (?, ?)"
SQL_QUEUED_KICKS = "SELECT id, uid, reason FROM admin_kicks ORDER BY id LIMIT ?"
SQL_DELETE_KICKS_THROUGH = "DELETE FROM admin_kicks WHERE id <= ?"


class AdminKicks:
    """Reads and writes of the admin_kicks table."""

    __slots__ = ("_db", "_seen_data_version")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._seen_data_version: int | None = None

    def queue_kick(self, uid: int, reason: str) -> None:
        """Ask the running relay, if any, to end ``uid``'s live session with ``reason``."""
        self._db.write().execute(SQL_QUEUE_KICK, (uid, reason))

    def take_kicks(self, limit: int = KICKS_PER_CALL) -> list[tuple[int, str]]:
        """Up to ``limit`` queued kicks (uid, reason), oldest first, deleted in the open
        transaction. One ``PRAGMA data_version`` and nothing else when no other connection
        committed since the last call that found none queued (a batch whose deletion was
        rolled back is thus read again)."""
        version: int = self._db._con.execute("PRAGMA data_version").fetchone()[0]
        if version == self._seen_data_version:
            return []
        rows = self._db._con.execute(SQL_QUEUED_KICKS, (limit,)).fetchall()
        if rows:
            self._db.write().execute(SQL_DELETE_KICKS_THROUGH, (rows[-1][0],))
        else:  # read after the version: a commit since then changes it again
            self._seen_data_version = version
        return [(uid, reason) for _, uid, reason in rows]
