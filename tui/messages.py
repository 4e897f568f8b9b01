"""Textual messages that carry client-library events (session, file transfers) into the app.

Invariant: events are immutable values (see :mod:`tui.client.events`); wrapping them does
not copy or change them, and they arrive in the order the session emitted them.
"""

from __future__ import annotations

from textual.message import Message

from tui.client.events import Event
from tui.client.transfer_events import TransferEvent


class SessionEvent(Message):
    """One event of the logged-in session (posted to the main screen by the net worker)."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class TransferNotice(Message):
    """One event of the file-transfer engine (posted to the Files pane by its listener)."""

    def __init__(self, event: TransferEvent) -> None:
        super().__init__()
        self.event = event
