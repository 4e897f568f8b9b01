"""``Composer``: the message editor. Enter sends; Ctrl+J (or Shift/Alt+Enter) adds a line.

Invariants:
- Enter is a priority binding, so the TextArea underneath never sees it as "new line".
- The composer never talks to the network: it posts :class:`Composer.Send` with the text
  (and clears itself only when :meth:`Composer.sent` is called, so a refused text stays) and
  :class:`Composer.Edited` on every user edit (the screen throttles typing hints).
- Ctrl+J is the portable new-line key: plain xterm sends the same byte for Enter and
  Shift+Enter, and Textual sees Ctrl+J as its own key everywhere.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea


class Composer(TextArea):
    """The editor under the conversation; see the module docstring."""

    DEFAULT_CSS = """
    Composer {
        height: auto;
        min-height: 3;
        max-height: 8;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "send", "Send", priority=True),
        Binding("ctrl+j,shift+enter,alt+enter", "newline", "New line", key_display="^j"),
        Binding("escape", "screen.focus_pane('buddies')", "Buddies", show=False),
    ]

    class Send(Message):
        def __init__(self, composer: Composer, text: str) -> None:
            super().__init__()
            self.composer = composer
            self.text = text

        @property
        def control(self) -> Composer:
            return self.composer

    class Edited(Message):
        """The user changed the text (not sent for programmatic clears)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")

    def action_send(self) -> None:
        if self.text.strip():
            self.post_message(self.Send(self, self.text))

    def action_newline(self) -> None:
        self.insert("\n")

    def sent(self) -> None:
        """The text was handed to the session: clear the editor."""
        self.clear()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if self.text:  # a clear (after sending) is not typing
            self.post_message(self.Edited())
