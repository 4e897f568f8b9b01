"""``BuddyList``: buddies with presence, unread counts and typing markers, plus requests.

Invariants:
- Rows come only from :func:`tui.state.roster.build_roster`; every prompt is a ``Content`` built
  with ``Content.assemble`` from plain strings (names are hostile: never markup).
- The widget never talks to the network: choosing a row or pressing a key posts a
  :class:`BuddyList.RowAction` and the screen acts on it.
- Updating keeps the highlighted person highlighted (by row key), whatever moved.
- Accept/decline show in the footer only on an incoming request; remove only on a buddy or
  one of our pending requests (``check_action``).
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from tui.state.roster import RosterRow, RowKind

ACTIONS_BY_KIND: dict[str, frozenset[RowKind]] = {
    "accept": frozenset({RowKind.INCOMING}),
    "decline": frozenset({RowKind.INCOMING}),
    "remove": frozenset({RowKind.BUDDY, RowKind.OUTGOING}),
}


def row_prompt(row: RosterRow, active: bool = False) -> Content:
    """The text of one row (plain strings in styled spans, nothing parsed)."""
    if row.kind is RowKind.HEADER:
        return Content.assemble((row.name, "bold $text-muted"))
    if row.kind is RowKind.INCOMING:
        return Content.assemble(
            ("? ", "bold $warning"), (row.name, "bold"), (" wants to be buddies", "$text-muted")
        )
    if row.kind is RowKind.OUTGOING:
        return Content.assemble(("… ", "$text-muted"), (row.name, "$text-muted italic"))
    parts: list[str | tuple[str, str]] = [
        ("● ", "$text-success") if row.online else ("○ ", "$text-muted"),
        (row.name, "bold underline" if active else ("bold" if row.unread else "")),
    ]
    if row.unread:
        parts.append((f" ({row.unread})", "bold $text-accent"))
    if row.typing:
        parts.append((" typing…", "italic $text-muted"))
    return Content.assemble(*parts)


class BuddyList(OptionList):
    """The buddies pane; see the module docstring."""

    DEFAULT_CSS = """
    BuddyList {
        height: 1fr;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "accept", "Accept"),
        Binding("d", "decline", "Decline"),
        Binding("delete,x", "remove", "Remove"),
        Binding("right", "screen.focus_pane('composer')", "Composer", show=False),
    ]

    class RowAction(Message):
        """``action`` ("open", "accept", "decline" or "remove") asked on ``row``."""

        def __init__(self, buddy_list: BuddyList, action: str, row: RosterRow) -> None:
            super().__init__()
            self.buddy_list = buddy_list
            self.action = action
            self.row = row

        @property
        def control(self) -> BuddyList:
            return self.buddy_list

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[RosterRow] = []
        self.active_uid: int | None = None

    def set_rows(self, rows: list[RosterRow], active_uid: int | None = None) -> None:
        """Show ``rows``, keeping the highlighted person highlighted."""
        current = self.highlighted_row
        keys_before = [row.key for row in self.rows]
        self.rows = rows
        self.active_uid = active_uid
        if keys_before == [row.key for row in rows]:
            for index, row in enumerate(rows):
                self.replace_option_prompt_at_index(index, self._prompt(row))
            return
        self.set_options(
            Option(self._prompt(row), id=row.key, disabled=row.kind is RowKind.HEADER)
            for row in rows
        )
        wanted = current.key if current is not None else None
        for index, row in enumerate(rows):
            if row.key == wanted or (wanted is None and row.kind is not RowKind.HEADER):
                self.highlighted = index
                break
        self.refresh_bindings()

    def _prompt(self, row: RosterRow) -> Content:
        return row_prompt(row, active=row.kind is RowKind.BUDDY and row.uid == self.active_uid)

    @property
    def highlighted_row(self) -> RosterRow | None:
        index = self.highlighted
        if index is None or not 0 <= index < len(self.rows):
            return None
        row = self.rows[index]
        return None if row.kind is RowKind.HEADER else row

    def highlight_uid(self, uid: int) -> None:
        for index, row in enumerate(self.rows):
            if row.uid == uid and row.kind is not RowKind.HEADER:
                self.highlighted = index
                return

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        kinds = ACTIONS_BY_KIND.get(action)
        if kinds is None:
            return True
        row = self.highlighted_row
        return row is not None and row.kind in kinds

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.refresh_bindings()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        row = self.highlighted_row
        if row is not None:
            self.post_message(self.RowAction(self, "open", row))

    def action_accept(self) -> None:
        self._act("accept")

    def action_decline(self) -> None:
        self._act("decline")

    def action_remove(self) -> None:
        self._act("remove")

    def _act(self, action: str) -> None:
        row = self.highlighted_row
        if row is not None and row.kind in ACTIONS_BY_KIND[action]:
            self.post_message(self.RowAction(self, action, row))
