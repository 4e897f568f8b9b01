"""``Composer``: the message editor. Enter sends; Ctrl+J (or Shift/Alt+Enter) adds a line;
Tab completes a command name or a name (:mod:`tui.commands`).

Invariants:
- Enter is a priority binding, so the TextArea underneath never sees it as "new line".
- The composer never talks to the network: it posts :class:`Composer.Send` with the text
  (and clears itself only when :meth:`Composer.sent` is called, so a refused text stays) and
  :class:`Composer.Edited` on every user edit (the screen throttles typing hints).
- Ctrl+J is the portable new-line key: plain xterm sends the same byte for Enter and
  Shift+Enter, and Textual sees Ctrl+J as its own key everywhere. Alt+Enter works too, also
  inside tmux/screen, where it arrives as ESC CR: :mod:`tui.terminal_keys` reads that as
  ``alt+enter`` (Textual alone reads it as Enter, which would send).
- Tab completes the last word (again: the next candidate); in an empty composer it moves the
  focus as elsewhere. Shift+Tab and Esc always move the focus. The names come from the
  ``names`` callable the screen gives (the composer knows no session).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea

from tui.commands import PLACEHOLDER, complete


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
        Binding("ctrl+j,alt+enter,shift+enter", "newline", "New line", key_display="^j"),
        Binding("tab", "complete", "Complete /command or name", show=False),
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

    def __init__(
        self, *, names: Callable[[], Iterable[str]] = tuple, id: str | None = None
    ) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.names = names
        self.placeholder = PLACEHOLDER
        self._completing: tuple[str, int, str] | None = None  # (typed, turn, shown)

    def action_complete(self) -> None:
        text = self.text
        if not text:
            self.screen.focus_next()
            return
        typed, turn = text, 0
        if self._completing is not None and self._completing[2] == text:
            typed, turn = self._completing[0], self._completing[1] + 1
        completed = complete(typed, self.names(), turn)
        if completed is None:
            self.app.bell()
            return
        self._completing = (typed, turn, completed)
        self.text = completed
        self.move_cursor(self.document.end)

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
