"""``ClientFeed``: the session's events and the transfer engine's as one ordered stream.

The net worker (:func:`tui.net.run_session`) reads this feed and posts each item to the main
screen, so every event the client library reports reaches the app by one path, under one
flow control. No Textual here.

State owned: the transfer events not yet read (appended by the engine's synchronous
listener) and the pending read of the session's stream.

Invariants:
- The feed starts with one :class:`TransfersLoaded` snapshot, taken in the same loop turn
  as the subscription to the engine: nothing falls between the two, and no event older than
  the snapshot follows it.
- Session events keep their order, transfer events keep theirs; the session's stream stays
  bounded (it is read one event at a time, only when the consumer asks for the next item),
  so a consumer that falls behind gets :class:`~tui.client.events.EventsLost` as before.
- The feed ends when the session's stream ends (after the transfer events queued by then);
  :meth:`ClientFeed.close` unsubscribes from the engine and cancels the pending waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from tui.client.events import Event, EventStream
from tui.client.transfer import TransferManager
from tui.client.transfer.events import TransferEvent
from tui.client.transfer.store import Transfer

LOADED = 200  # transfers in the snapshot (the newest); later ones arrive as events


@dataclass(frozen=True)
class TransfersLoaded:
    """The engine's transfers when the feed subscribed to it, newest first."""

    transfers: tuple[Transfer, ...]


FeedItem = Event | TransferEvent | TransfersLoaded


class ClientFeed:
    """See the module docstring."""

    def __init__(self, session_events: EventStream, transfers: TransferManager) -> None:
        self._session_events = session_events
        self._pending: deque[FeedItem] = deque()
        self._wake = asyncio.Event()
        self._unsubscribe = transfers.add_listener(self._on_transfer_event)
        self._pending.append(TransfersLoaded(tuple(transfers.transfers(limit=LOADED))))
        self._next_session_event: asyncio.Task[Event] | None = None
        self._woken: asyncio.Task[Literal[True]] | None = None  # waits for a transfer event

    def _on_transfer_event(self, event: TransferEvent) -> None:
        self._pending.append(event)  # a synchronous engine callback: just queue
        self._wake.set()

    def __aiter__(self) -> AsyncIterator[FeedItem]:
        return self._items()

    async def _items(self) -> AsyncIterator[FeedItem]:
        while True:
            while self._pending:
                yield self._pending.popleft()
            self._wake.clear()
            read = self._next_session_event
            if read is None:
                read = self._next_session_event = asyncio.ensure_future(
                    self._session_events.__anext__()
                )
            woken = self._woken
            if woken is None or woken.done():
                woken = self._woken = asyncio.ensure_future(self._wake.wait())
            await asyncio.wait((read, woken), return_when=asyncio.FIRST_COMPLETED)
            if read.done():
                self._next_session_event = None
                try:
                    event = read.result()
                except StopAsyncIteration:
                    while self._pending:
                        yield self._pending.popleft()
                    return
                yield event

    def close(self) -> None:
        """Stop listening to the engine and drop the pending waits; idempotent."""
        self._unsubscribe()
        if self._next_session_event is not None:
            self._next_session_event.cancel()
            self._next_session_event = None
        if self._woken is not None:
            self._woken.cancel()
            self._woken = None
