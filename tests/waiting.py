"""Waiting by condition: the one polling helper of the test suite (and of the benches).

Invariants:
- A wait ends as soon as the condition holds, or fails with ``AssertionError`` once
  ``timeout`` seconds (monotonic clock) have passed without it — never a fixed sleep.
- Between two checks the helper yields to the event loop through ``pause``: plain
  ``asyncio.sleep`` by default, ``Pilot.pause`` in Textual tests (so that the app processes
  its messages between checks).
- The failure message names what was awaited, plus ``describe()`` when given (state that
  helps to diagnose a hang).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

DEFAULT_TIMEOUT = 20.0
DEFAULT_POLL = 0.02


async def wait_until(
    condition: Callable[[], object],
    what: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    poll: float = DEFAULT_POLL,
    pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
    describe: Callable[[], str] | None = None,
) -> None:
    """Return once ``condition()`` is true; raise ``AssertionError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            detail = f":\n{describe()}" if describe is not None else ""
            raise AssertionError(f"timed out waiting for {what}{detail}")
        await pause(poll)
