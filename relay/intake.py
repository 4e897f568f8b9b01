"""Input held by the connections' frame decoders, counted against one budget.

Invariants:
- :attr:`InputBudget.buffered` is the sum over all connections of ``conn.input_held``, which
  is what that connection's decoder held when last counted (incomplete frames and complete
  frames a read budget left for later). :meth:`count` keeps both exact in O(1) after a read,
  :meth:`release` when a connection stops reading frames: nothing scans all connections.
- :attr:`holders` are the connections holding input, the only ones a frame-timeout sweep or
  an eviction looks at; :attr:`paused` those waiting for room (``conn.input_paused`` set).
- Once ``buffered`` has stayed at or above ``budget`` for ``grace`` seconds,
  :meth:`to_evict` names the largest holders, just enough of them to get back under.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.memory import LARGE_FREE, MemoryTrimmer

if TYPE_CHECKING:
    from relay.connection import Connection


class InputBudget:
    """The relay's buffered input: its total, its holders, who waits for room."""

    def __init__(self, budget: int, grace: float, trimmer: MemoryTrimmer) -> None:
        self.budget = budget
        self.grace = grace
        self.trimmer = trimmer
        self.buffered = 0
        self.holders: set[Connection] = set()
        self.paused: set[Connection] = set()
        self._spent_since = 0.0

    @property
    def spent(self) -> bool:
        return self.buffered >= self.budget

    def count(self, conn: Connection, now: float) -> None:
        """Bring the total up to date with ``conn``'s decoder; a decoder that starts holding
        input starts its frame-timeout clock (``conn.input_since``)."""
        held = conn.decoder.buffered
        before = conn.input_held
        conn.input_held = held
        self.buffered += held - before
        if not before:
            self.holders.add(conn)
            conn.input_since = now
        elif not held:
            self.holders.discard(conn)
        if before - held >= LARGE_FREE:
            self.trimmer.freed(before - held)

    def release(self, conn: Connection, now: float) -> None:
        """``conn`` reads no more frames: drop what its decoder holds."""
        if conn.input_paused:
            conn.input_paused = False
            self.paused.discard(conn)
        if conn.input_held:
            conn.decoder.discard()
            self.count(conn, now)

    def pause(self, conn: Connection) -> None:
        """``conn`` holds input and the budget is spent: it waits for room."""
        conn.input_paused = True
        self.paused.add(conn)

    def room_again(self) -> set[Connection]:
        """If the total is under budget: the connections that waited for room (no longer
        marked paused), to be read again."""
        if self.spent:
            return set()
        self._spent_since = 0.0
        waiting, self.paused = self.paused, set()
        for conn in waiting:
            conn.input_paused = False
        return waiting

    def to_evict(self, now: float) -> list[Connection]:
        """The largest holders, once the budget has stayed spent for ``grace`` seconds: just
        enough of them that releasing their input brings the total under budget."""
        if not self.spent:
            return []
        if not self._spent_since:
            self._spent_since = now
            return []
        if now - self._spent_since < self.grace:
            return []
        self._spent_since = 0.0
        evict: list[Connection] = []
        left = self.buffered
        for conn in sorted(self.holders, key=lambda c: c.input_held, reverse=True):
            if left < self.budget:
                break
            evict.append(conn)
            left -= conn.input_held
        return evict
