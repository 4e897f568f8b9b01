"""``KickedDialog``: another login on this session's device took it over; take it back?

PROTOCOL.md section 9: a new login on the same (user, device) makes the relay end the old
session with Reset KICKED. The TUI then says so plainly — which device, that another
session now has it, that the user's other devices are unaffected — and offers to take the
session back: logging in again, which in turn disconnects the other one.

Invariants:
- Returns True to take the session back, False (Escape, "Stay offline") to leave it
  offline; nothing is done here, the caller acts on the answer.
- The relay's reason and the names are untrusted: shown only as ``Content``.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from protocol import chat_pb2 as pb
from tui.client.login import RelayReset


def is_kick(error: BaseException | None) -> bool:
    """True when ``error`` is the relay's Reset KICKED (another login took the device)."""
    return isinstance(error, RelayReset) and error.code == pb.Reset.KICKED


def kick_text(user: str, device: str, reason: str) -> Content:
    """What the dialog says; ``user``, ``device`` and ``reason`` stay literal."""
    which = (
        Content.assemble("device ", (device, "bold"))
        if device
        else Content("this account (no device name)")
    )
    parts: list[Content | str | tuple[str, str]] = [
        "You (",
        (user, "bold"),
        ") logged in again on ",
        which,
        " from another window or login, so the relay disconnected this session. "
        "Your other devices are still connected.\n\n"
        "Take it back here (t or Enter): that disconnects the other session. "
        "Stay offline (Esc): F5 reconnects later.",
    ]
    if reason:
        parts += ["\n\nThe relay said: ", reason]
    return Content.assemble(*parts)


class KickedDialog(ModalScreen[bool]):
    """See the module docstring."""

    DEFAULT_CSS = """
    KickedDialog {
        align: center middle;
        & > #dialog {
            width: 72;
            max-width: 100%;
            height: auto;
            border: thick $warning;
            background: $surface;
            padding: 0 1;
        }
        & #title { text-style: bold; color: $text-warning; }
        & #explanation { margin: 1 0; }
        & #buttons { height: auto; align-horizontal: right; }
        & Button { margin-left: 1; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t,enter", "take_back", "Take it back"),
        Binding("escape", "stay_offline", "Stay offline"),
    ]

    def __init__(self, user: str, device: str, reason: str) -> None:
        super().__init__()
        self.user = user
        self.device = device
        self.reason = reason

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content("This session was taken over"), id="title")
            yield Static(kick_text(self.user, self.device, self.reason), id="explanation")
            with Horizontal(id="buttons"):
                yield Button("Stay offline", id="stay")
                yield Button("Take it back", id="take", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#take", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "take")

    def action_take_back(self) -> None:
        self.dismiss(True)

    def action_stay_offline(self) -> None:
        self.dismiss(False)
