"""``MemberPane``: the open room's members with their presence, under the room list.

Toggled by the main screen (F4, :class:`tui.screens.rooms.RoomScreen`); it shows what it
is given and never talks to the network (the screen asks the relay for MEMBERS when the
pane opens and every :data:`MEMBERS_REFRESH` seconds while it is open, because the relay
pushes membership changes to a room but not its members' presence changes).

Invariants:
- Names are hostile: every line is a ``Content`` assembled from plain strings
  (:func:`tui.display.safe_name`), never markup.
- Order: the owner, then members, then invitees, each by name; ``●`` marks online.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from protocol import chat_pb2 as pb
from tui.client.rooms import RoomInfo
from tui.display import safe_name

MEMBERS_REFRESH = 10.0  # seconds between MEMBERS requests while the pane is open
_ORDER: dict[int, int] = {pb.Member.OWNER: 0, pb.Member.MEMBER: 1, pb.Member.INVITED: 2}
_ROLE: dict[int, str] = {pb.Member.OWNER: " (owner)", pb.Member.INVITED: " (invited)"}


def member_lines(room: RoomInfo) -> Content:
    """One line per member: ``● alice (owner)``, ``○ bob``, ``○ carol (invited)``."""
    members = sorted(
        room.members, key=lambda m: (_ORDER.get(m.role, 1), m.username.casefold(), m.uid)
    )
    lines = [
        Content.assemble(
            ("● ", "$success") if m.online else ("○ ", "$text-muted"),
            safe_name(m.username, m.uid),
            (_ROLE.get(m.role, ""), "$text-muted"),
        )
        for m in members
    ]
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

    def show_room(self, room: RoomInfo | None) -> None:
        self.room = room.id if room is not None else None
        if room is None:
            self.border_title = "Members"
            self.update("Open a room to see its members.")
            return
        self.border_title = Content.assemble("Members of ", safe_name(room.name, room.id))
        self.update(member_lines(room))
