"""``RoomNameDialog``: ask for a room's name (to create a room, or to rename one).

Invariants:
- Returns the name, already valid by the rule the relay applies
  (:func:`protocol.validation.normalize_room_name`), or None on Escape; an invalid name
  is explained in the dialog and never returned.
- Every text shown is plain (``Static(..., markup=False)`` or ``Content``).
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from protocol.validation import normalize_room_name


class RoomNameDialog(ModalScreen[str | None]):
    """Ask for a room name; see the module docstring."""

    DEFAULT_CSS = """
    RoomNameDialog {
        align: center middle;
        & > #dialog {
            width: 64;
            max-width: 100%;
            height: auto;
            border: thick $primary;
            background: $surface;
            padding: 0 1;
        }
        & #title { margin: 1 0 0 0; text-style: bold; }
        & #error { color: $text-error; height: auto; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss_none", "Cancel")]

    def __init__(self, title: str = "New room", initial: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.initial = initial

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.title_text, id="title", markup=False)
            yield Static(
                "Letters, digits, _ - . and single spaces; up to 64 characters. "
                "Enter confirms, Escape cancels.",
                markup=False,
            )
            yield Input(self.initial, placeholder="room name", id="room-name")
            yield Static("", id="error", markup=False)

    def on_mount(self) -> None:
        self.query_one("#room-name", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            name = normalize_room_name(event.value)
        except ValueError as exc:
            self.query_one("#error", Static).update(f"Not a valid room name: {exc}")
            return
        self.dismiss(name)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
