"""``BuddyList``: buddies with presence, unread counts and typing markers, plus requests.

Invariants:
- Rows come only from :func:`tui.state.roster.build_roster`; every prompt is a ``Content`` built
  with ``Content.assemble`` from plain strings (names are hostile: never markup).
- The widget never talks to the network: choosing a row or pressing a key posts a
  :class:`BuddyList.RowAction` and the screen acts on it.
- Updating keeps the highlighted person highlighted (by row key, else by uid: a request that
  became a buddy keeps the cursor), whatever moved; if that person is gone the cursor goes
  to the row now at the same place. A list with a person in it always has one highlighted,
  so Enter always has a row to open.
- A row is one line: a name too long for the pane is cut with ``…`` so that the presence
  dot, the unread count and the typing marker stay visible; the full name is the row's
  tooltip and the open chat's title.
- Accept/decline show in the footer only on an incoming request; remove only on a buddy or
  one of our pending requests (``check_action``); mute (``m``) only on a buddy.
- The first nine buddy rows carry their chat number (Alt+1…9,
  :func:`tui.state.attention.numbered_chats`); the room list continues the count.
- While :attr:`BuddyList.presence_known` is False (the own connection is down) every
  buddy's presence shows as unknown (``◌``), never as online.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.cells import cell_len, chop_cells
from textual import events
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
    "mute": frozenset({RowKind.BUDDY}),
}
NUMBERED = 9  # rows with a chat number (Alt+1 … Alt+9)


def fit_name(name: str, cells: int) -> str:
    """``name`` in at most ``cells`` terminal cells, cut with ``…`` (at least one cell)."""
    if cell_len(name) <= cells:
        return name
    return chop_cells(name, max(cells - 1, 0))[0] + "…" if cells > 1 else "…"


def row_prompt(
    row: RosterRow,
    active: bool = False,
    width: int | None = None,
    *,
    number: int | None = None,
    presence_known: bool = True,
    muted: bool = False,
) -> Content:
    """The text of one row (plain strings in styled spans, nothing parsed), fitted into
    ``width`` cells by cutting the name (None: not fitted). A buddy row starts with its
    chat ``number`` (0: none, blank; None: no number column), a muted chat's count is dim."""
    if row.kind is RowKind.HEADER:
        return Content.assemble((row.name, "bold $text-muted"))
    before: list[tuple[str, str]]
    after: list[tuple[str, str]] = []
    name_style = ""
    if row.kind is RowKind.INCOMING:
        before, name_style = [("? ", "bold $warning")], "bold"
        after = [(" wants to be buddies", "$text-muted")]
    elif row.kind is RowKind.OUTGOING:
        before, name_style = [("… ", "$text-muted")], "$text-muted italic"
    else:
        before = [(f"{number} " if number else "  ", "$text-muted")] if number is not None else []
        if not presence_known:
            before.append(("◌ ", "$text-muted"))
        else:
            before.append(("● ", "$text-success") if row.online else ("○ ", "$text-muted"))
        loud = row.unread and not muted
        name_style = "bold underline" if active else ("bold" if loud else "")
        if row.unread:
            after.append((f" ({row.unread})", "bold $text-accent" if loud else "$text-muted"))
        if row.typing:
            after.append((" typing…", "italic $text-muted"))
    name = row.name
    if width is not None and width > 0:
        fixed = sum(cell_len(text) for text, _ in before + after)
        if row.kind is RowKind.INCOMING and fixed + cell_len(name) > width:
            after = [("?", "$text-muted")]  # "wants to be buddies" goes first
            fixed = sum(cell_len(text) for text, _ in before + after)
        name = fit_name(name, width - fixed)
    return Content.assemble(*before, (name, name_style), *after)


class BuddyList(OptionList):
    """The buddies pane; see the module docstring."""

    DEFAULT_CSS = """
    BuddyList {
        height: 1fr;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "accept", "Accept"),
        Binding("d", "decline", "Decline"),
        Binding("delete,x", "remove", "Remove"),
        Binding("m", "mute", "Mute / unmute the chat", show=False),
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
        self._numbers: dict[str, int] = {}  # row key → chat number
        # Set by the screen: presence can be vouched for; is a chat muted; a buddy's
        # presence in words (the tooltip: "online", "last seen 14:02").
        self.presence_known = True
        self.is_muted: Callable[[int], bool] = lambda uid: False
        self.describe: Callable[[RosterRow], str] = lambda row: ""

    def set_rows(self, rows: list[RosterRow], active_uid: int | None = None) -> None:
        """Show ``rows``, keeping the highlighted person highlighted."""
        current = self.highlighted_row
        at = self.highlighted
        keys_before = [row.key for row in self.rows]
        self.rows = rows
        self.active_uid = active_uid
        buddies = [row.key for row in rows if row.kind is RowKind.BUDDY]
        self._numbers = {key: n for n, key in enumerate(buddies[:NUMBERED], 1)}
        if keys_before == [row.key for row in rows]:
            self._replace_prompts()
            self._show_tooltip()
            return
        self.set_options(
            Option(self._prompt(row), id=row.key, disabled=row.kind is RowKind.HEADER)
            for row in rows
        )
        index = self._cursor_after_change(current, at)
        if index is not None:
            self.highlighted = index
        self._show_tooltip()
        self.refresh_bindings()

    def _cursor_after_change(self, current: RosterRow | None, at: int | None) -> int | None:
        """Where the cursor goes once the rows changed: the same row (key), else the same
        person (uid), else the row now at the old place (or the nearest one above), else the
        first person; None if nobody is listed."""
        people = [i for i, row in enumerate(self.rows) if row.kind is not RowKind.HEADER]
        if not people:
            return None
        if current is not None:
            for index in people:
                if self.rows[index].key == current.key:
                    return index
            for index in people:
                if current.uid and self.rows[index].uid == current.uid:
                    return index
        if at is not None:
            above = [i for i in people if i <= at]
            return above[-1] if above else people[0]
        return people[0]

    def _prompt(self, row: RosterRow) -> Content:
        width = self.scrollable_content_region.width
        buddy = row.kind is RowKind.BUDDY
        return row_prompt(
            row,
            active=buddy and row.uid == self.active_uid,
            width=width if width > 0 else None,
            number=self._numbers.get(row.key, 0) if buddy else None,
            presence_known=self.presence_known,
            muted=buddy and self.is_muted(row.uid),
        )

    def _replace_prompts(self) -> None:
        for index, row in enumerate(self.rows):
            self.replace_option_prompt_at_index(index, self._prompt(row))

    def on_resize(self, event: events.Resize) -> None:
        self._replace_prompts()  # names are fitted to the width

    def numbered_uids(self) -> list[int]:
        """The buddies in list order (the first nine carry Alt+1…9)."""
        return [row.uid for row in self.rows if row.kind is RowKind.BUDDY]

    def _show_tooltip(self) -> None:
        """The highlighted row's full name, and for a buddy its presence in words."""
        row = self.highlighted_row
        if row is None:
            self.tooltip = None
            return
        lines = [row.name]
        if row.kind is RowKind.BUDDY:
            lines += [self.describe(row)] + (["muted"] if self.is_muted(row.uid) else [])
        self.tooltip = Content("\n".join(line for line in lines if line))  # not markup

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
        self._show_tooltip()
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

    def action_mute(self) -> None:
        self._act("mute")

    def _act(self, action: str) -> None:
        row = self.highlighted_row
        if row is not None and row.kind in ACTIONS_BY_KIND[action]:
            self.post_message(self.RowAction(self, action, row))
