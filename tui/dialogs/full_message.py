"""``FullMessageDialog``: the whole text of a message the conversation view shows cut.

The view draws at most :data:`~tui.display.DISPLAY_CHARS` characters and
:data:`~tui.display.DISPLAY_LINES` lines of a message, then a notice
(:func:`~tui.display.more_notice`); a click on the message, or Enter in the view (the lowest
cut message on screen), opens this dialog on the full text (the timeline keeps each
message's whole text; a message is at most 64 KiB, PROTOCOL.md's limit).

Invariants:
- The text is shown literally in a read-only ``TextArea`` (never parsed as markup), with
  terminal controls removed (:func:`protocol.validation.printable_text`); names and times
  go into ``Content``.
- Nothing here changes the history or talks to the network; Escape (or the button) closes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static, TextArea

from protocol import chat_pb2 as pb
from protocol.validation import printable_text
from tui.client.history import HistoryEntry
from tui.display import DISPLAY_CHARS, DISPLAY_LINES, format_clock, local_time
from tui.timeline import Timeline


def is_cut(timeline: Timeline, entry: HistoryEntry) -> bool:
    """True when the view shows only part of ``entry``'s text (too many characters, or too
    many lines at the timeline's width)."""
    if entry.type != pb.Message.MESSAGE or entry.local_id is None:
        return False
    if len(entry.text) > DISPLAY_CHARS:
        return True
    start = timeline.head_line(entry.local_id)
    if start is None:
        return False
    lines = timeline.lines[start : start + DISPLAY_LINES + 1]
    return sum(1 for line in lines if line.local_id == entry.local_id) > DISPLAY_LINES


def cut_message(timeline: Timeline, lines: Iterable[int]) -> HistoryEntry | None:
    """The last message drawn on the line indices ``lines`` that is shown cut, or None."""
    seen: set[int] = set()
    for index in sorted(lines, reverse=True):
        entry = timeline.entry_at(index)
        if entry is None or entry.local_id in seen:
            continue
        seen.add(entry.local_id or 0)
        if is_cut(timeline, entry):
            return entry
    return None


def author(timeline: Timeline, entry: HistoryEntry) -> str:
    """Who wrote ``entry``, as the timeline names them."""
    if entry.outgoing:
        return timeline.own_name
    if timeline.sender_name is not None:
        return timeline.sender_name(entry.sender)
    return timeline.peer_name


class FullMessageDialog(ModalScreen[None]):
    """See the module docstring."""

    DEFAULT_CSS = """
    FullMessageDialog {
        align: center middle;
        & > #dialog {
            width: 100;
            max-width: 100%;
            height: 90%;
            border: thick $primary;
            background: $surface;
            padding: 0 1;
        }
        & #full-text { height: 1fr; }
        & #close-row { height: auto; align-horizontal: right; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("ctrl+home", "go(False)", "Start of the text", show=False),
        Binding("ctrl+end", "go(True)", "End of the text", show=False),
    ]

    def __init__(self, entry: HistoryEntry, name: str) -> None:
        super().__init__()
        self.entry = entry
        self.author_name = name

    def compose(self) -> ComposeResult:
        entry = self.entry
        when = local_time(entry.timestamp)
        header = Content.assemble(
            (self.author_name, "bold"),
            f" · {when:%Y-%m-%d} {format_clock(entry.timestamp)}",
            f" · {len(entry.text):,} characters · Esc closes",
        )
        with Vertical(id="dialog"):
            yield Static(header, id="full-header")
            yield TextArea(
                printable_text(entry.text),
                read_only=True,
                soft_wrap=True,
                show_line_numbers=False,
                id="full-text",
            )
            with Vertical(id="close-row"):
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#full-text", TextArea).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(None)

    def action_go(self, end: bool) -> None:
        area = self.query_one("#full-text", TextArea)
        area.move_cursor(area.document.end if end else (0, 0))

    def action_close(self) -> None:
        self.dismiss(None)
