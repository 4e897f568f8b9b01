"""``RoomList``: the rooms of this user under the buddies, with unread counts and the
invitations waiting for an answer.

Invariants:
- Rows come only from :func:`tui.state.rooms.room_rows`; every prompt is a ``Content``
  built with ``Content.assemble`` from plain strings (room names are hostile: never markup).
- The widget never talks to the network: choosing a row or pressing a key posts a
  :class:`RoomList.RowAction` and the screen acts on it.
- Updating keeps the highlighted room highlighted (by key) when it is still listed.
- Join/decline show in the footer only on an invitation (``check_action``).
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui.state.rooms import RoomRow


def room_prompt(row: RoomRow, active: bool = False) -> Content:
    """One row: ``# name (unread, @mentions) who typing…`` or ``✉ name invites you``."""
    if row.invited:
        return Content.assemble(
            ("✉ ", "bold $warning"), (row.name, "bold"), (" invites you", "$text-muted")
        )
    style = "bold underline" if active else ("bold" if row.unread else "")
    parts: list[tuple[str, str]] = [("# ", "$text-muted"), (row.name, style)]
    counts = [str(row.unread)] if row.unread else []
    if row.mentions:
        counts.append(f"@{row.mentions}")
    if counts:
        parts.append((f" ({', '.join(counts)})", "bold $text-accent"))
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
    ]

    class RowAction(Message):
        """``action`` ("open", "join", "decline") on ``row``."""

        def __init__(self, row: RoomRow, action: str) -> None:
            super().__init__()
            self.row = row
            self.action = action

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[RoomRow] = []

    def set_rows(self, rows: list[RoomRow], active_peer: int | None) -> None:
        highlighted = self.highlighted_row
        self.rows = rows
        self.clear_options()
        self.add_options(
            Option(room_prompt(row, row.peer == active_peer), id=row.key) for row in rows
        )
        self.display = bool(rows)
        if highlighted is not None:
            for index, row in enumerate(rows):
                if row.key == highlighted.key:
                    self.highlighted = index
                    break

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
        if action == "row":
            row = self.highlighted_row
            return row is not None and row.invited
        return True

    def action_row(self, action: str) -> None:
        row = self.highlighted_row
        if row is not None and row.invited:
            self.post_message(self.RowAction(row, action))
