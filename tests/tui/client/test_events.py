"""Event fan-out: listeners, bounded streams with an explicit EventsLost marker."""

from __future__ import annotations

import pytest

from tui.client.events import (
    ConnectionState,
    ConnectionStateChanged,
    Event,
    EventHub,
    EventsLost,
    SyncCompleted,
)


async def test_stream_overflow_yields_events_lost_at_the_gap() -> None:
    hub = EventHub()
    stream = hub.stream(maxsize=3)
    for seq in range(1, 8):
        hub.emit(SyncCompleted(seq))
    received = [await stream.next(1) for _ in range(4)]
    assert received == [SyncCompleted(1), SyncCompleted(2), SyncCompleted(3), EventsLost(4)]
    hub.emit(SyncCompleted(8))  # accepted again once drained
    assert await stream.next(1) == SyncCompleted(8)


async def test_close_ends_iteration_after_queued_events() -> None:
    hub = EventHub()
    stream = hub.stream(maxsize=10)
    hub.emit(SyncCompleted(1))
    hub.close()
    hub.emit(SyncCompleted(2))  # after close: not delivered
    assert [event async for event in stream] == [SyncCompleted(1)]
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


def test_listener_errors_are_contained_and_removal_works() -> None:
    hub = EventHub()
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    hub.add_listener(broken)
    remove = hub.add_listener(seen.append)
    event = ConnectionStateChanged(ConnectionState.CONNECTING)
    hub.emit(event)
    remove()
    hub.emit(event)
    assert seen == [event]
