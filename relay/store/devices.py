"""The devices table: which devices of a user have logged in, and which box each reads.

PROTOCOL.md section 9. A device is a (user, name) pair; v1 and plain v2 sessions are the
device ``""``. Each device reads one *box* (:mod:`relay.store.inboxes`).

Invariants:
- One row per (uid, name) (UNIQUE). A row's ``box`` never changes and is never reused by
  another user: it is the user's uid (the *uid box*, below ``BOX_BASE``) or a number from
  ``BOX_BASE`` up, one above the highest device box ever stored.
- At most one device holds a user's uid box. The first device to log in takes it, with
  whatever it holds (every inbox from before devices existed, and what arrived while the user
  had no device): its seq space simply continues. Every later device gets a fresh box.
- A user with no device row has no device: messages to it wait in its uid box for its
  first device (:meth:`Devices.boxes_of` answers the uid box then).
- ``last_seen`` is the wall-clock second of the device's latest login or logout; a device
  not seen for the expiry time is forgotten with its box's messages
  (:meth:`Devices.forget_device`). A uid box whose device is forgotten keeps its head_seq
  and becomes the user's unclaimed box again, emptied.
- Rows go with their user (``ON DELETE CASCADE``); the user's boxes' runs are deleted by
  :meth:`relay.store.Store.remove_user`.

Owns no state beyond the rows.
"""

from __future__ import annotations

from typing import NamedTuple

from relay.store.database import Database
from relay.store.inboxes import BOX_BASE, Inboxes

SQL_DEVICES_OF = "SELECT box, name, last_seen FROM devices WHERE uid = ? ORDER BY box"
SQL_DEVICE_BY_NAME = "SELECT box FROM devices WHERE uid = ? AND name = ?"
SQL_UID_BOX_TAKEN = "SELECT 1 FROM devices WHERE box = ?"
SQL_NEXT_DEVICE_BOX = f"SELECT max(coalesce(max(box) + 1, 0), {BOX_BASE}) FROM devices"
SQL_ADD_DEVICE = "INSERT INTO devices (box, uid, name, last_seen) VALUES (?, ?, ?, ?)"
SQL_TOUCH_DEVICE = "UPDATE devices SET last_seen = max(last_seen, ?2) WHERE box = ?1"
SQL_EXPIRED_DEVICES = (
    "SELECT uid, box, name FROM devices WHERE last_seen < ? ORDER BY last_seen LIMIT ?"
)
SQL_FORGET_DEVICE = "DELETE FROM devices WHERE box = ?"
SQL_BOXES_OF_USER = "SELECT box FROM devices WHERE uid = ?"
SQL_DEVICE_COUNT = "SELECT count(*) FROM devices"


class DeviceRecord(NamedTuple):
    """One device of a user: the box it reads, its name, when it was last seen."""

    box: int
    name: str
    last_seen: int


class Devices:
    """Reads and writes of the devices table (module docstring)."""

    __slots__ = ("_db", "_inboxes")

    def __init__(self, db: Database, inboxes: Inboxes) -> None:
        self._db = db
        self._inboxes = inboxes

    def devices_of(self, uid: int) -> list[DeviceRecord]:
        """``uid``'s devices, by box (the uid box, if a device holds it, first)."""
        return [DeviceRecord(*row) for row in self._db._con.execute(SQL_DEVICES_OF, (uid,))]

    def claim_device(self, uid: int, name: str, now: int) -> tuple[int, bool]:
        """The box of ``uid``'s device ``name``, registering the device if it is new (it
        takes the uid box if no device holds it, else a fresh box); marks it seen ``now``.
        Returns the box and whether the device row was created (in the open transaction)."""
        con = self._db._con
        row = con.execute(SQL_DEVICE_BY_NAME, (uid, name)).fetchone()
        if row is not None:
            box = int(row[0])
            self.touch_device(box, now)
            return box, False
        if con.execute(SQL_UID_BOX_TAKEN, (uid,)).fetchone() is None:
            box = uid
        else:
            box = int(con.execute(SQL_NEXT_DEVICE_BOX).fetchone()[0])
        self._db.write().execute(SQL_ADD_DEVICE, (box, uid, name, now))
        return box, True

    def touch_device(self, box: int, now: int) -> None:
        """The device of ``box`` was seen ``now`` (a login or a logout). Best effort: skipped
        while the store cannot write."""
        if self._db.available:
            self._db.write().execute(SQL_TOUCH_DEVICE, (box, now))

    def expired_devices(self, seen_before: int, limit: int) -> list[tuple[int, int, str]]:
        """(uid, box, name) of at most ``limit`` devices last seen before ``seen_before``,
        least recently seen first."""
        rows = self._db._con.execute(SQL_EXPIRED_DEVICES, (seen_before, limit)).fetchall()
        return [(int(uid), int(box), str(name)) for uid, box, name in rows]

    def forget_device(self, box: int) -> None:
        """Forget the device of ``box`` with every message its box still holds."""
        self._inboxes.remove_box(box)
        self._db.write().execute(SQL_FORGET_DEVICE, (box,))

    def boxes_of_user(self, uid: int) -> list[int]:
        """Every box of ``uid``: its devices' and its uid box."""
        boxes = [int(box) for (box,) in self._db._con.execute(SQL_BOXES_OF_USER, (uid,))]
        return boxes if uid in boxes else [uid, *boxes]

    def device_count(self) -> int:
        """How many devices are registered, in all."""
        count: int = self._db._con.execute(SQL_DEVICE_COUNT).fetchone()[0]
        return count
