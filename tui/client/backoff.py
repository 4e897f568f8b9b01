"""Retry schedules: reconnect backoff (exponential + jitter) and outbox resend delays.

Invariants:
- Pure: no sleeping, no clock. Randomness is injected (``rng`` returns floats in [0, 1)), so
  tests check exact bounds without waiting.
- :meth:`Backoff.next_delay` is always within ``[cap_n / 2, cap_n]`` where
  ``cap_n = min(cap, base * factor**n)`` for the n-th consecutive failure (n from 0):
  "equal jitter" spreads thousands of clients reconnecting after a relay restart while never
  retrying in a tight loop.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay before the next reconnect attempt; :meth:`reset` after a success."""

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    rng: Callable[[], float] = field(default=random.random, repr=False)
    failures: int = 0

    def __post_init__(self) -> None:
        if not (0 < self.base <= self.cap and self.factor >= 1):
            raise ValueError("need 0 < base <= cap and factor >= 1")

    def ceiling(self, failures: int) -> float:
        """Upper bound of the delay after ``failures`` consecutive failures (0-based)."""
        # Exponent bounded so the float never overflows, whatever the failure count.
        return float(min(self.cap, self.base * self.factor ** min(failures, 64)))

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before retrying."""
        ceiling = self.ceiling(self.failures)
        self.failures += 1
        return ceiling / 2 + ceiling / 2 * self.rng()

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True)
class RetryPolicy:
    """When an unacknowledged durable message is sent again on a live connection.

    After the k-th send (k from 1) without an Ack, the next send is due after
    ``min(cap, first_timeout * 2**(k-1))`` seconds; after ``max_attempts`` sends the entry
    is FAILED. A reconnect re-sends every pending entry at once without counting an attempt
    (the connection failed, not the relay).
    """

    first_timeout: float = 10.0
    cap: float = 120.0
    max_attempts: int = 8

    def delay_after(self, attempts: int) -> float:
        return float(min(self.cap, self.first_timeout * 2 ** min(max(attempts - 1, 0), 32)))

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts
