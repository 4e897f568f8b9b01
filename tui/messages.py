"""The Textual message that carries client-library events (session, file transfers) into
the app.

Invariant: events are immutable values (see :mod:`tui.client.events` and
:mod:`tui.client.transfer.events`); wrapping them does not copy or change them, and they
arrive in the order the net worker's :class:`~tui.feed.ClientFeed` yields them.
"""

from __future__ import annotations

from textual.message import Message

from tui.feed import FeedItem


class SessionEvent(Message):
    """One event of the logged-in session — a chat event, a transfer event, or the initial
    snapshot of the transfers (posted to the main screen by the net worker)."""

    def __init__(self, event: FeedItem) -> None:
        super().__init__()
        self.event = event
