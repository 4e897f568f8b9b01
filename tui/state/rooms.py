"""The room list as data: one row per room this user is in or invited to.

No Textual and no I/O: rows are built from the session's room table
(:class:`tui.client.rooms.RoomInfo`) and the unread counts the chat state keeps (a room's
conversation is its negative id, :func:`tui.client.history.room_peer`).

Invariants:
- Row names are :func:`tui.display.safe_name` of the room's name (plain text, bounded).
- Invitations come first (they wait for an answer), then joined rooms by name.
- A row's key is stable: the same room keeps it across updates, whatever its name.
- ``mentions`` (:mod:`tui.state.mentions`) are counted apart from ``unread``; ``typing`` is
  the safe name of who types in the room now, or empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tui.client.rooms import RoomInfo
from tui.display import safe_name
from tui.state.roster import UnreadCounts


@dataclass(frozen=True)
class RoomRow:
    room: int
    name: str
    invited: bool = False
    unread: int = 0
    members: int = 0  # in the room (invitees not counted)
    online: int = 0  # of those, online (0 for an invitation: presence is not shown)
    mentions: int = 0  # messages naming this user (@name) not seen yet
    typing: str = ""  # who types in the room now (a safe name), or ""

    @property
    def key(self) -> str:
        return f"room-{self.room}"

    @property
    def peer(self) -> int:
        """The room's conversation key."""
        return -self.room


def room_rows(
    rooms: Iterable[RoomInfo],
    unread: UnreadCounts,
    mentions: Callable[[int], int] = lambda peer: 0,
    typing: Callable[[int], str | None] = lambda peer: None,
) -> list[RoomRow]:
    """The rows of the room list: invitations, then rooms by name. ``mentions`` and
    ``typing`` take a room's conversation key (its negative id)."""
    rows = [
        RoomRow(
            room.id,
            safe_name(room.name, room.id),
            invited=room.invited,
            unread=0 if room.invited else unread.get(room.peer),
            members=len(room.joined),
            online=sum(m.online for m in room.joined),
            mentions=0 if room.invited else mentions(room.peer),
            typing=_typist(None if room.invited else typing(room.peer)),
        )
        for room in rooms
    ]
    rows.sort(key=lambda r: (not r.invited, r.name.casefold(), r.room))
    return rows


def _typist(name: str | None) -> str:
    return safe_name(name) if name else ""
