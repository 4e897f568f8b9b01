"""``FingerprintChangedDialog``: the relay's certificate is not the pinned one. Blocking.

Invariants:
- There is no way to trust the new certificate from here: the only choices are "close"
  (back, still refused) and quitting the app. Re-pinning is an explicit edit of the
  known_relays file, which the text explains.
- Shown in the theme's error colours; everything in it is plain text (``Content``).
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tui.client.trust import FingerprintMismatch


class FingerprintChangedDialog(ModalScreen[None]):
    """A red warning: the relay presented a different certificate than the pinned one."""

    DEFAULT_CSS = """
    FingerprintChangedDialog {
        align: center middle;
        background: $error 30%;
        & > #dialog {
            width: 90;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: thick $error;
            background: $error-muted;
            color: $text;
            padding: 0 1;
        }
        & #title { text-style: bold; color: $text-error; }
        & #details { height: auto; max-height: 14; margin: 1 0; }
        & #buttons { height: auto; align-horizontal: right; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,enter", "close", "Close")]

    def __init__(self, error: FingerprintMismatch) -> None:
        super().__init__()
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(
                Content("WARNING: THE RELAY'S CERTIFICATE HAS CHANGED — CONNECTION REFUSED"),
                id="title",
            )
            with VerticalScroll(id="details"):
                yield Static(Content(str(self.error)))
            with Horizontal(id="buttons"):
                yield Button("Close", id="close", variant="error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)
