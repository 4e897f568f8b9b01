"""``TrustDialog``: first contact with a relay — show its fingerprint, ask (like ssh).

Invariants:
- Returns True only on an explicit "trust" (button or ``y``); Escape, ``n`` and Cancel
  return False. Cancel has the focus first, so a stray Enter does not trust anything.
- The relay key and fingerprint are shown as plain text (``Content``), never markup.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class TrustDialog(ModalScreen[bool]):
    """Ask whether to trust and remember a relay seen for the first time."""

    DEFAULT_CSS = """
    TrustDialog {
        align: center middle;
        & > #dialog {
            width: 80;
            max-width: 100%;
            height: auto;
            max-height: 100%;
            border: thick $warning;
            background: $surface;
            padding: 0 1;
        }
        & #fingerprint { color: $text-accent; text-style: bold; margin: 1 0; }
        & #buttons { height: auto; align-horizontal: right; }
        & Button { margin-left: 1; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Trust"),
        Binding("n,escape", "answer(False)", "Don't trust"),
    ]
    AUTO_FOCUS = "#cancel"

    def __init__(self, relay_key: str, fingerprint: str) -> None:
        super().__init__()
        self.relay_key = relay_key
        self.fingerprint = fingerprint

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(
                Content.assemble(
                    ("First connection to relay ", "bold"),
                    (self.relay_key, "bold $text-accent"),
                    (". Its identity can't be confirmed yet. Certificate fingerprint:", "bold"),
                )
            )
            yield Static(Content(self.fingerprint), id="fingerprint")
            yield Static(
                Content(
                    "Compare it with what the relay's operator gives you (`parley-relay cert "
                    "show`). If you trust it, it is remembered, and a different certificate "
                    "will be refused from now on."
                )
            )
            with Horizontal(id="buttons"):
                yield Button("Trust and remember (y)", id="trust", variant="warning")
                yield Button("Cancel (n)", id="cancel", variant="default")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "trust")

    def action_answer(self, trusted: bool) -> None:
        self.dismiss(trusted)
