"""The rooms tables: rooms, their members and the tail of their timelines.

PROTOCOL.md section 10.

Invariants:
- A room exists while it has a member (role MEMBER or OWNER): the caller deletes it when
  the last one leaves (:meth:`Rooms.delete_room`, which takes its invitations and history
  with it through ``ON DELETE CASCADE``). Room ids are never reused (AUTOINCREMENT).
- One row per (room, uid) in ``room_members``; role 0 = MEMBER, 1 = OWNER, 2 = INVITED (the
  protocol's Member.Role values). Rows go with their user (``ON DELETE CASCADE``).
- ``room_history`` holds the room's last durable messages, bodies without a seq field
  (``position`` = the room's ``head`` when appended, increasing); appending trims it to
  the ``keep`` newest.

Owns no state beyond the rows.
"""

from __future__ import annotations

from typing import NamedTuple

from relay.store.database import Database

MEMBER, OWNER, INVITED = 0, 1, 2

SQL_CREATE_ROOM = "INSERT INTO rooms (name, created) VALUES (?, ?)"
SQL_ROOM = "SELECT id, name FROM rooms WHERE id = ?"
SQL_RENAME_ROOM = "UPDATE rooms SET name = ? WHERE id = ?"
SQL_DELETE_ROOM = "DELETE FROM rooms WHERE id = ?"
SQL_MEMBERS = (
    "SELECT m.uid, u.username, m.role FROM room_members m JOIN users u ON u.uid = m.uid"
    " WHERE m.room = ? ORDER BY m.since, m.uid"
)
SQL_MEMBER_ROLES = "SELECT uid, role FROM room_members WHERE room = ?"
SQL_ROOMS_OF = "SELECT room, role FROM room_members WHERE uid = ? ORDER BY room"
SQL_SET_MEMBER = (
    "INSERT INTO room_members (room, uid, role, since) VALUES (?1, ?2, ?3, ?4)"
    " ON CONFLICT (room, uid) DO UPDATE SET role = ?3, since = ?4"
)
SQL_SET_ROLE = "UPDATE room_members SET role = ? WHERE room = ? AND uid = ?"
SQL_REMOVE_MEMBER = "DELETE FROM room_members WHERE room = ? AND uid = ?"
SQL_BUMP_HEAD = "UPDATE rooms SET head = head + ? WHERE id = ? RETURNING head"
SQL_APPEND_HISTORY = "INSERT INTO room_history (room, position, body) VALUES (?, ?, ?)"
SQL_TRIM_HISTORY = "DELETE FROM room_history WHERE room = ? AND position <= ?"
SQL_HISTORY = (
    "SELECT body FROM (SELECT position, body FROM room_history WHERE room = ?1"
    " ORDER BY position DESC LIMIT ?2) ORDER BY position"
)
SQL_ORPHAN_ROOMS = (
    "SELECT id FROM rooms WHERE NOT EXISTS (SELECT 1 FROM room_members"
    " WHERE room = rooms.id AND role IN (0, 1))"
)
SQL_ROOM_COUNT = "SELECT count(*) FROM rooms"


class RoomRecord(NamedTuple):
    id: int
    name: str


class MemberRecord(NamedTuple):
    uid: int
    username: str
    role: int


class Rooms:
    """Reads and writes of the rooms tables (module docstring)."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    def create_room(self, name: str, owner: int, now: int) -> int:
        """A new room named ``name`` with ``owner`` as its OWNER; returns its id."""
        con = self._db.write()
        room = con.execute(SQL_CREATE_ROOM, (name, now)).lastrowid
        assert room is not None
        con.execute(SQL_SET_MEMBER, (room, owner, OWNER, now))
        return room

    def room(self, room: int) -> RoomRecord | None:
        row = self._db._con.execute(SQL_ROOM, (room,)).fetchone()
        return None if row is None else RoomRecord(*row)

    def members(self, room: int) -> list[MemberRecord]:
        """Everyone in ``room`` (invited included), longest there first."""
        return [MemberRecord(*row) for row in self._db._con.execute(SQL_MEMBERS, (room,))]

    def member_roles(self, room: int) -> dict[int, int]:
        """uid -> role of everyone in ``room`` (empty if no such room)."""
        return dict(self._db._con.execute(SQL_MEMBER_ROLES, (room,)).fetchall())

    def rooms_of(self, uid: int) -> dict[int, int]:
        """room -> ``uid``'s role, for every room it is in or invited to."""
        return dict(self._db._con.execute(SQL_ROOMS_OF, (uid,)).fetchall())

    def set_member(self, room: int, uid: int, role: int, now: int) -> None:
        """Make ``uid`` a member of ``room`` with ``role`` (joining counts from ``now``)."""
        self._db.write().execute(SQL_SET_MEMBER, (room, uid, role, now))

    def set_role(self, room: int, uid: int, role: int) -> None:
        self._db.write().execute(SQL_SET_ROLE, (role, room, uid))

    def remove_member(self, room: int, uid: int) -> None:
        self._db.write().execute(SQL_REMOVE_MEMBER, (room, uid))

    def rename_room(self, room: int, name: str) -> None:
        self._db.write().execute(SQL_RENAME_ROOM, (name, room))

    def delete_room(self, room: int) -> None:
        """Delete ``room`` with its invitations and history."""
        self._db.write().execute(SQL_DELETE_ROOM, (room,))

    def append_history(self, room: int, bodies: list[bytes], keep: int) -> None:
        """Add durable messages' bodies (in order) to ``room``'s timeline tail, keeping the
        ``keep`` newest. A room deleted meanwhile keeps nothing."""
        con = self._db.write()
        row = con.execute(SQL_BUMP_HEAD, (len(bodies), room)).fetchone()
        if row is None:
            return
        head = int(row[0])
        first = head - len(bodies) + 1
        if keep > 0:
            con.executemany(
                SQL_APPEND_HISTORY,
                [
                    (room, first + index, body)
                    for index, body in enumerate(bodies)
                    if first + index > head - keep
                ],
            )
        con.execute(SQL_TRIM_HISTORY, (room, head - keep))

    def history(self, room: int, limit: int) -> list[bytes]:
        """The ``limit`` newest bodies of ``room``'s timeline, oldest first."""
        rows = self._db._con.execute(SQL_HISTORY, (room, limit)).fetchall()
        return [bytes(body) for (body,) in rows]

    def delete_orphan_rooms(self) -> list[int]:
        """Delete rooms without a member left (their last member's account was removed);
        returns their ids."""
        orphans = [room for (room,) in self._db._con.execute(SQL_ORPHAN_ROOMS).fetchall()]
        for room in orphans:
            self.delete_room(room)
        return orphans

    def room_count(self) -> int:
        count: int = self._db._con.execute(SQL_ROOM_COUNT).fetchone()[0]
        return count
