"""Room membership as the relay sees it: who is in which room, cached.

PROTOCOL.md section 10. :class:`RoomRegistry` is the one owner of the membership caches;
the ROOM handler (:mod:`relay.handlers.rooms`) changes membership through the store and
then tells it (:meth:`RoomRegistry.changed`), the message path asks it who gets a room
message (:meth:`RoomRegistry.members`), presence asks it who shares a room.

Invariants:
- ``members(room)`` is the store's uid -> role of ``room`` (empty: no such room) and
  ``rooms_of(uid)`` the store's room -> role of ``uid``, as of the last change the relay
  made; the relay is the only writer of the rooms tables while it runs (an admin's ``user
  remove`` deletes rows too: the relay then forgets everything, :meth:`forget_all`).
- ``targets(room)`` is every named box of everyone in the room, as of the devices'
  ``generation`` it was built at (rebuilt when that grows) and the room's membership.
- If the pass's writes are lost, every cache is dropped (:meth:`forget_all`) and read
  again from the store.
- Roles are the protocol's: MEMBER 0, OWNER 1, INVITED 2; only MEMBER and OWNER are *in*
  the room (receive its messages, may send, see co-members' presence).
"""

from __future__ import annotations

from relay.devices import DeviceRegistry
from relay.store import Store
from relay.store.rooms import INVITED, MEMBER, OWNER

__all__ = ["INVITED", "MEMBER", "OWNER", "RoomRegistry"]


class RoomRegistry:
    """Cached room memberships (module docstring)."""

    __slots__ = ("_members", "_rooms_of", "_targets", "devices", "store")

    def __init__(self, store: Store, devices: DeviceRegistry) -> None:
        self.store = store
        self.devices = devices
        self._members: dict[int, dict[int, int]] = {}
        self._rooms_of: dict[int, dict[int, int]] = {}
        # room -> (devices' generation, [(box, uid)] of every named box of those in it)
        self._targets: dict[int, tuple[int, list[tuple[int, int]]]] = {}

    def members(self, room: int) -> dict[int, int]:
        """uid -> role of everyone in ``room``, invited included (empty: no such room)."""
        members = self._members.get(room)
        if members is None:
            members = self._members[room] = self.store.rooms.member_roles(room)
        return members

    def rooms_of(self, uid: int) -> dict[int, int]:
        """room -> role of ``uid`` in every room it is in or invited to."""
        rooms = self._rooms_of.get(uid)
        if rooms is None:
            rooms = self._rooms_of[uid] = self.store.rooms.rooms_of(uid)
        return rooms

    def role(self, room: int, uid: int) -> int | None:
        """``uid``'s role in ``room``, None if it is neither in it nor invited."""
        return self.members(room).get(uid)

    def is_in(self, room: int, uid: int) -> bool:
        """Whether ``uid`` is a member (or the owner) of ``room``: not merely invited."""
        return self.members(room).get(uid, INVITED) != INVITED

    def share_room(self, first: int, second: int) -> bool:
        """Whether the two users are both in (not merely invited to) some room."""
        mine = self.rooms_of(first)
        theirs = self.rooms_of(second)
        if len(theirs) < len(mine):
            mine, theirs = theirs, mine
        return any(
            role != INVITED and theirs.get(room, INVITED) != INVITED for room, role in mine.items()
        )

    def co_members(self, uid: int) -> set[int]:
        """Everyone who shares a room with ``uid`` (itself excluded)."""
        result: set[int] = set()
        for room, role in self.rooms_of(uid).items():
            if role != INVITED:
                result.update(u for u, r in self.members(room).items() if r != INVITED)
        result.discard(uid)
        return result

    def targets(self, room: int) -> list[tuple[int, int]]:
        """(box, uid) of every named box (v2.1 device) of everyone in ``room``: where its
        messages go. Cached until the room's membership or anyone's boxes change."""
        generation = self.devices.generation
        cached = self._targets.get(room)
        if cached is not None and cached[0] == generation:
            return cached[1]
        boxes_of = self.devices.boxes_of
        targets = [
            (box, uid)
            for uid, role in self.members(room).items()
            if role != INVITED
            for box, named in boxes_of(uid)
            if named
        ]
        self._targets[room] = (generation, targets)
        return targets

    def changed(self, room: int, *uids: int) -> None:
        """``room``'s membership changed for ``uids`` (written to the store already)."""
        self._members.pop(room, None)
        self._targets.pop(room, None)
        for uid in uids:
            self._rooms_of.pop(uid, None)

    def forget_all(self) -> None:
        """Drop every cache (lost writes, or rows changed by another process)."""
        self._members.clear()
        self._rooms_of.clear()
        self._targets.clear()


ROLES_IN_ROOM = frozenset({MEMBER, OWNER})
