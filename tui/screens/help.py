"""``HelpScreen``: every key binding, grouped by where it works (from :mod:`tui.keymap`).

Invariant: the table is generated from the bindings themselves, never written by hand.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from tui.keymap import key_rows


class HelpScreen(ModalScreen[None]):
    """Key bindings; Esc, F1 or q closes."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        & > #help {
            width: auto;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: thick $primary;
            background: $surface;
            padding: 0 1;
        }
        & #help-title { text-style: bold; color: $text-accent; width: auto; }
        & DataTable { height: auto; max-height: 1fr; width: auto; max-width: 100%; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,f1,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static("Parley — keys (Esc closes)", id="help-title")
            yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("Keys", "Action")
        section = ""
        for row in key_rows(self.app.BINDINGS):
            if row.where != section:
                section = row.where
                table.add_row(Text(section, style="bold underline"), Text(""))
            table.add_row(Text(row.keys, style="bold"), Text(row.action))
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
