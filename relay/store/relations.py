"""The relations table: buddies and pending buddy requests.

Invariants:
- Relations are stored as mirrored pairs of rows, one from each side's point of view
  (BUDDY/BUDDY or REQUEST_SENT/REQUEST_RECEIVED), always written and deleted together.
- A user's relations go with it (``ON DELETE CASCADE`` on both columns).

Owns no state beyond the rows.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from relay.store.database import Database

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
class RelationRecord:
    """A relation of some user to ``peer``, from that user's point of view."""

    peer: int
    peer_username: str
    relation: Relation
    peer_protocol_version: int


class Relations:
    """Reads and writes of the relations table."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_buddy(self, uid: int, peer: int) -> AddBuddyOutcome:
        """``uid`` asks ``peer`` to be buddies (consent flow of PROTOCOL.md section 6).

        No relation yet: a request is recorded (PENDING). Request already sent: PENDING.
        Request received from ``peer``: both become buddies (SUCCESS). Already buddies:
        SUCCESS. ``peer`` unknown or equal to ``uid``: FAILED, nothing written.
        """
        if uid == peer:
            return AddBuddyOutcome.FAILED
        exists, current = self._db._con.execute(SQL_RELATION_STATE, (uid, peer)).fetchone()
        if exists is None:
            return AddBuddyOutcome.FAILED
        if current == Relation.BUDDY:
            return AddBuddyOutcome.SUCCESS
        if current == Relation.REQUEST_SENT:
            return AddBuddyOutcome.PENDING
        con = self._db.write()
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
        return self._db.write().execute(SQL_REMOVE_RELATION, (uid, peer)).rowcount > 0

    def relations_of(self, uid: int) -> list[RelationRecord]:
        """Every relation of ``uid`` from its point of view, ordered by peer uid."""
        cur = self._db._con.execute(SQL_RELATIONS_OF, (uid,))
        return [RelationRecord(p, name, Relation(rel), ver) for p, name, rel, ver in cur]

    def buddy_ids(self, uid: int) -> set[int]:
        """Uids of ``uid``'s mutual buddies (not pending requests)."""
        return {peer for (peer,) in self._db._con.execute(SQL_BUDDY_IDS, (uid,))}

    def are_buddies(self, a: int, b: int) -> bool:
        return self._db._con.execute(SQL_ARE_BUDDIES, (a, b)).fetchone() is not None
