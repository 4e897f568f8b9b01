"""Small asyncio helpers the client library relies on.

Invariant: waiting with a timeout never swallows a cancellation. On Python 3.11,
``asyncio.wait_for(event.wait(), t)`` can swallow a ``cancel()`` that arrives just as the
event is set (the waiter completes, the cancellation is lost): a task cancelled during
teardown then keeps running and the session hangs, "connected", forever.
``asyncio.timeout`` has no such race.
"""

from __future__ import annotations

import asyncio
import contextlib


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True if it was set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    return event.is_set()
