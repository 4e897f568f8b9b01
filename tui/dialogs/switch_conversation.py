"""``SwitchConversationDialog``: jump to a buddy's conversation by typing part of the name.
Past chats (history with someone who is no buddy any more) follow the buddies, marked so.

Invariants: local filtering only (no network); names shown as ``Content``; returns the
chosen uid or None (Escape).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from tui.state.roster import RosterRow


class SwitchConversationDialog(ModalScreen[int | None]):
    """Filterable list of buddies; Enter opens the highlighted one."""

    DEFAULT_CSS = """
    SwitchConversationDialog {
        align: center middle;
        & > #dialog {
            width: 50;
            max-width: 100%;
            height: 70%;
            min-height: 10;
            border: thick $primary;
            background: $surface;
            padding: 0 1;
        }
        & #matches { height: 1fr; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("down", "focus_matches", "Matches", show=False),
    ]

    def __init__(
        self,
        buddies: list[RosterRow],
        past: Sequence[tuple[int, str]] = (),
        *,
        presence_known: bool = True,
    ) -> None:
        super().__init__()
        self.buddies = buddies
        self.past = past  # (uid, name) of former buddies with history
        self.presence_known = presence_known  # False while the own connection is down

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content.assemble(("Switch conversation", "bold")))
            yield Input(placeholder="type part of a name", id="filter")
            yield OptionList(id="matches")

    def on_mount(self) -> None:
        self._fill("")

    def _fill(self, text: str) -> None:
        needle = text.strip().casefold()
        options = []
        for row in self.buddies:
            if needle and needle not in row.name.casefold():
                continue
            if not self.presence_known:  # own connection down (tui/state/presence.py)
                dot = ("◌ ", "$text-muted")
            else:
                dot = ("● ", "$text-success") if row.online else ("○ ", "$text-muted")
            prompt = Content.assemble(
                dot,
                (row.name, "bold" if row.unread else ""),
                (f" ({row.unread})" if row.unread else "", "bold $text-accent"),
            )
            options.append(Option(prompt, id=f"uid-{row.uid}"))
        for uid, name in self.past:
            if not needle or needle in name.casefold():
                prompt = Content.assemble(("  ", ""), name, (" (not a buddy)", "$text-muted"))
                options.append(Option(prompt, id=f"uid-{uid}"))
        matches = self.query_one("#matches", OptionList)
        matches.set_options(options)
        if options:
            matches.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        matches = self.query_one("#matches", OptionList)
        option = matches.highlighted_option
        if option is not None:
            self.dismiss(int((option.id or "uid-0").removeprefix("uid-")))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(int((event.option.id or "uid-0").removeprefix("uid-")))

    def action_focus_matches(self) -> None:
        self.query_one("#matches", OptionList).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
