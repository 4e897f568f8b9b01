"""Per-connection timers of the loop: handshake, login and close deadlines.

Invariants:
- A timer names its connection by id, never holds the connection: a closed connection is
  not kept alive by its timers, so a connection flood costs a few small tuples until they
  expire (the loop skips timers of connections that are gone).
- Timers fire in order of their due time; equal due times fire in the order they were set.

State owned: the heap of (due, tie-breaker, kind, connection id).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator

TIMER_HANDSHAKE = "handshake"  # accepted: the TLS handshake must end by then
TIMER_LOGIN = "login"  # opened: a login must succeed by then
TIMER_CLOSE = "close"  # reset: the peer must have read the Reset by then


class ConnectionTimers:
    """A heap of connection deadlines (module docstring)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str, int]] = []
        self._ids = itertools.count()

    def __bool__(self) -> bool:
        return bool(self._heap)

    def add(self, due: float, kind: str, conn_id: int) -> None:
        """Fire ``kind`` for connection ``conn_id`` at monotonic time ``due``."""
        heapq.heappush(self._heap, (due, next(self._ids), kind, conn_id))

    def next_due(self) -> float:
        """When the earliest timer is due (call only when there is one)."""
        return self._heap[0][0]

    def pop_due(self, now: float) -> Iterator[tuple[str, int]]:
        """(kind, connection id) of each timer due at ``now``, earliest first; timers added
        while iterating fire in this pass if they are due."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, kind, conn_id = heapq.heappop(heap)
            yield kind, conn_id
