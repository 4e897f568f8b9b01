"""The blocks table: who blocked whom (PROTOCOL.md section 12).

Invariants:
- One row per (uid, peer): ``uid`` blocked ``peer``. Blocking ends any buddy relation or
  request between the two in the same transaction (:meth:`relay.store.Store.block`).
- Rows go with either user (``ON DELETE CASCADE`` on both columns).

Owns no state beyond the rows.
"""

from __future__ import annotations

from relay.store.database import Database

SQL_BLOCK = "INSERT OR IGNORE INTO blocks (uid, peer) VALUES (?, ?)"
SQL_UNBLOCK = "DELETE FROM blocks WHERE uid = ? AND peer = ?"
SQL_BLOCKED_BY = "SELECT 1 FROM blocks WHERE uid = ? AND peer = ?"
SQL_BLOCKED_OF = (
    "SELECT b.peer, u.username FROM blocks AS b JOIN users AS u ON u.uid = b.peer"
    " WHERE b.uid = ? ORDER BY b.peer"
)


class Blocks:
    """Reads and writes of the blocks table (module docstring)."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    def block(self, uid: int, peer: int) -> None:
        """Record that ``uid`` blocks ``peer`` (ending their relation is
        :meth:`relay.store.Store.block`'s, through the relations aggregate)."""
        self._db.write().execute(SQL_BLOCK, (uid, peer))

    def unblock(self, uid: int, peer: int) -> bool:
        """Lift ``uid``'s block of ``peer``; False if there was none."""
        return self._db.write().execute(SQL_UNBLOCK, (uid, peer)).rowcount == 1

    def has_blocked(self, uid: int, peer: int) -> bool:
        """Whether ``uid`` blocked ``peer``."""
        return self._db._con.execute(SQL_BLOCKED_BY, (uid, peer)).fetchone() is not None

    def blocked_of(self, uid: int) -> list[tuple[int, str]]:
        """(peer, username) of everyone ``uid`` blocked, by uid."""
        rows = self._db._con.execute(SQL_BLOCKED_OF, (uid,)).fetchall()
        return [(int(peer), str(name)) for peer, name in rows]
