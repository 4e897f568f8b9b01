"""Inbox bookkeeping, pure: which incoming seqs are new, and when to acknowledge.

Invariants:
- ``cursor`` only grows, and only over seqs the caller has stored: Ack{seq: cursor} never
  claims a message the client does not have ("everything up to N").
- The cursor advances over contiguous seqs only. A message above a hole is stored and shown
  but the cursor waits: during a backlog (after a login or a Sync request) the hole may be
  legitimate (those seqs were acknowledged and dropped earlier) and the relay's
  Sync{head_seq} closes it; live, a hole means something was skipped, and the caller asks
  for a Sync{since_seq: cursor}. Duplicates (at or below the cursor, or already stored above
  it) are recognised either way.
- :class:`AckBatcher` sends at most one Ack per ``max_delay`` unless ``max_batch`` messages
  are waiting; it never delays an Ack longer than ``max_delay`` after the first unacked one.
  The clock is injected.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class Verdict(enum.Enum):
    DUPLICATE = "duplicate"  # already stored: drop, show nothing
    NEW = "new"  # store and show
    NEW_AFTER_GAP = "new_after_gap"  # store and show, then request Sync{since_seq: cursor}


class InboxTracker:
    """The inbox cursor, and the seqs stored above it while a hole is open."""

    def __init__(self, cursor: int = 0) -> None:
        self.cursor = cursor
        self.backlog = False
        self._above: set[int] = set()

    def begin_backlog(self) -> None:
        """A login or Sync{since_seq: cursor} was sent: the relay replays from the cursor."""
        self.backlog = True

    def classify(self, seq: int) -> Verdict:
        if seq <= self.cursor or seq in self._above:
            return Verdict.DUPLICATE
        if self.backlog or seq == self.cursor + 1:
            return Verdict.NEW
        return Verdict.NEW_AFTER_GAP

    def stored(self, seq: int) -> None:
        """``seq`` is now stored (or was found already stored): advance what can advance."""
        if seq == self.cursor + 1:
            self.cursor = seq
            self._absorb()
        elif seq > self.cursor:
            self._above.add(seq)

    def end_backlog(self, head_seq: int) -> None:
        """Sync{head_seq}: everything up to head_seq the relay still had has been sent."""
        self.backlog = False
        if head_seq > self.cursor:
            self.cursor = head_seq
            self._above = {s for s in self._above if s > head_seq}
        self._absorb()

    def _absorb(self) -> None:
        while self.cursor + 1 in self._above:
            self.cursor += 1
            self._above.discard(self.cursor)

    @property
    def waiting_above(self) -> int:
        """How many stored seqs sit above a hole (0 when the cursor is contiguous)."""
        return len(self._above)


class AckBatcher:
    """Decides when to send Ack{seq: cursor}: after ``max_delay`` s or ``max_batch`` msgs."""

    def __init__(
        self,
        max_delay: float = 0.1,
        max_batch: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_delay = max_delay
        self.max_batch = max_batch
        self._clock = clock
        self.acked = 0  # last seq acknowledged to the relay
        self._cursor = 0
        self._waiting = 0
        self._first_at: float | None = None

    def advanced(self, cursor: int, messages: int = 1) -> bool:
        """The cursor moved to ``cursor`` after storing ``messages`` more messages.
        True if an Ack should be sent right now (the batch is full)."""
        if cursor <= self._cursor:
            return False
        self._cursor = cursor
        self._waiting += messages
        if self._first_at is None:
            self._first_at = self._clock()
        return self._waiting >= self.max_batch

    @property
    def due_at(self) -> float | None:
        """Clock time by which the pending Ack must go out, or None if nothing is owed."""
        if self._first_at is None:
            return None
        return self._first_at + self.max_delay

    def due(self) -> bool:
        due_at = self.due_at
        return due_at is not None and (self._waiting >= self.max_batch or self._clock() >= due_at)

    def take(self) -> int | None:
        """The seq to acknowledge now (and forget it is owed), or None if nothing new."""
        if self._cursor <= self.acked:
            self._first_at = None
            self._waiting = 0
            return None
        self.acked = self._cursor
        self._first_at = None
        self._waiting = 0
        return self.acked

    def reset(self, cursor: int) -> None:
        """New connection: acknowledge ``cursor`` again soon (an Ack may have been lost with
        the old connection; re-acknowledging is harmless), then continue from there."""
        self.acked = 0
        self._cursor = cursor
        self._waiting = 0
        self._first_at = self._clock() if cursor > 0 else None
