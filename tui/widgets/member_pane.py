"""``MemberPane``: the open room's members with their presence, under the room list.

Toggled by the main screen (F4, :class:`tui.screens.rooms.RoomScreen`); it shows what it
is given and never talks to the network (the screen asks the relay for MEMBERS when the
pane opens and every :data:`MEMBERS_REFRESH` seconds while it is open, because the relay
pushes membership changes to a room but not its members' presence changes).

Invariants:
- Names are hostile: every line is a ``Content`` assembled from plain strings
  (:func:`tui.display.safe_name`), never markup.
- Order: the owner, then members, then invitees, each by name; ``●`` marks online; an
  offline member shows when this client last saw them online (:attr:`MemberPane.seen`,
  set by the screen); while the own connection is down presence shows as unknown (``◌``).
"""

from __future__ import annotations

from collections.abc import Callable

from textual.content import Content
from textual.widgets import Static

from protocol import chat_pb2 as pb
from tui.client.rooms import RoomInfo, RoomMember
from tui.display import safe_name

MEMBERS_REFRESH = 10.0  # seconds between MEMBERS requests while the pane is open
_ORDER: dict[int, int] = {pb.Member.OWNER: 0, pb.Member.MEMBER: 1, pb.Member.INVITED: 2}
_ROLE: dict[int, str] = {pb.Member.OWNER: " (owner)", pb.Member.INVITED: " (invited)"}


def member_lines(
    room: RoomInfo, seen: Callable[[int], str] | None = None, *, presence_known: bool = True
) -> Content:
    """One line per member: ``● alice (owner)``, ``○ bob · last seen 14:02``, ``○ carol
    (invited)``; ``seen(uid)`` says when an offline member was last seen (None: not shown)."""
    members = sorted(
        room.members, key=lambda m: (_ORDER.get(m.role, 1), m.username.casefold(), m.uid)
    )

    def line(m: RoomMember) -> Content:
        if not presence_known:
            dot = ("◌ ", "$text-muted")
        else:
            dot = ("● ", "$success") if m.online else ("○ ", "$text-muted")
        when = ""
        if seen is not None and presence_known and not m.online and m.role != pb.Member.INVITED:
            when = f" · {seen(m.uid)}"
        return Content.assemble(
            dot,
            safe_name(m.username, m.uid),
            (_ROLE.get(m.role, ""), "$text-muted"),
            (when, "$text-muted"),
        )

    lines = [line(m) for m in members]
    return Content("\n").join(lines)


class MemberPane(Static):
    """The member list; see the module docstring."""

    DEFAULT_CSS = """
    MemberPane {
        height: auto;
        max-height: 35%;
        border: round $primary-muted;
        padding: 0 1;
        overflow-y: auto;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.room: int | None = None  # the room shown (its id), None: no room open
        self.seen: Callable[[int], str] | None = None  # "last seen 14:02" of a user
        self.presence_known = True

    def show_room(self, room: RoomInfo | None) -> None:
        self.room = room.id if room is not None else None
        if room is None:
            self.border_title = "Members"
            self.update("Open a room to see its members.")
            return
        self.border_title = Content.assemble("Members of ", safe_name(room.name, room.id))
        self.update(member_lines(room, self.seen, presence_known=self.presence_known))
