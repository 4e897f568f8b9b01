"""``RoomList``: the rooms of this user under the buddies, with unread counts and the
invitations waiting for an answer.

Invariants:
- Rows come only from :func:`tui.state.rooms.room_rows`; every prompt is a ``Content``
  built with ``Content.assemble`` from plain strings (room names are hostile: never markup).
- The widget never talks to the network: choosing a row or pressing a key posts a
  :class:`RoomList.RowAction` and the screen acts on it.
- Updating keeps the highlighted room highlighted (by key) when it is still listed.
- Join/decline show in the footer only on an invitation (``check_action``); mute (``m``)
  only on a joined room.
- Joined rooms carry their chat number, continuing the buddy list's count
  (:attr:`RoomList.first_number`, set by the screen; only numbers up to 9 are shown).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui.state.rooms import RoomRow

NUMBERED = 9  # the last chat number (Alt+9)


def room_prompt(
    row: RoomRow, active: bool = False, *, number: int | None = None, muted: bool = False
) -> Content:
    """One row: ``3 # name (unread, @mentions) who typing…`` or ``✉ name invites you``
    (``number`` 0: blank, None: no number column; a muted room's counts are dim)."""
    if row.invited:
        return Content.assemble(
            ("✉ ", "bold $warning"), (row.name, "bold"), (" invites you", "$text-muted")
        )
    loud = (row.unread or row.mentions) and not muted
    style = "bold underline" if active else ("bold" if loud else "")
    parts: list[tuple[str, str]] = [] if number is None else [(f"{number or ' '} ", "$text-muted")]
    parts += [("# ", "$text-muted"), (row.name, style)]
    counts = [str(row.unread)] if row.unread else []
    if row.mentions:
        counts.append(f"@{row.mentions}")
    if counts:
        parts.append((f" ({', '.join(counts)})", "bold $text-accent" if loud else "$text-muted"))
    if row.typing:
        parts.append((f" {row.typing} typing…", "italic $text-muted"))
    return Content.assemble(*parts)


class RoomList(OptionList):
    """The rooms pane; see the module docstring."""

    DEFAULT_CSS = """
    RoomList {
        height: auto;
        max-height: 40%;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "row('join')", "Join"),
        Binding("d", "row('decline')", "Decline"),
        Binding("m", "mute", "Mute / unmute the room", show=False),
    ]

    class RowAction(Message):
        """``action`` ("open", "join", "decline", "mute") on ``row``."""

        def __init__(self, row: RoomRow, action: str) -> None:
            super().__init__()
            self.row = row
            self.action = action

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[RoomRow] = []
        self.first_number = 1  # the first joined room's chat number (after the buddies)
        self.is_muted: Callable[[int], bool] = lambda peer: False  # set by the screen

    def set_rows(self, rows: list[RoomRow], active_peer: int | None) -> None:
        highlighted = self.highlighted_row
        self.rows = rows
        self.clear_options()
        numbers = self.numbers()
        self.add_options(
            Option(
                room_prompt(
                    row,
                    row.peer == active_peer,
                    number=None if row.invited else numbers.get(row.peer, 0),
                    muted=not row.invited and self.is_muted(row.peer),
                ),
                id=row.key,
            )
            for row in rows
        )
        self.display = bool(rows)
        if highlighted is not None:
            for index, row in enumerate(rows):
                if row.key == highlighted.key:
                    self.highlighted = index
                    break

    def joined_peers(self) -> list[int]:
        """The joined rooms (their conversation keys) in list order."""
        return [row.peer for row in self.rows if not row.invited]

    def numbers(self) -> dict[int, int]:
        """Chat numbers of the joined rooms that have one (up to 9)."""
        peers = self.joined_peers()
        return {peer: n for n, peer in enumerate(peers, self.first_number) if n <= NUMBERED}

    @property
    def highlighted_row(self) -> RoomRow | None:
        index = self.highlighted
        if index is None or not 0 <= index < len(self.rows):
            return None
        return self.rows[index]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if 0 <= event.option_index < len(self.rows):
            self.post_message(self.RowAction(self.rows[event.option_index], "open"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("row", "mute"):
            row = self.highlighted_row
            return row is not None and row.invited == (action == "row")
        return True

    def action_mute(self) -> None:
        row = self.highlighted_row
        if row is not None and not row.invited:
            self.post_message(self.RowAction(row, "mute"))

    def action_row(self, action: str) -> None:
        row = self.highlighted_row
        if row is not None and row.invited:
            self.post_message(self.RowAction(row, action))
