"""The dedup window: which (sender, client id) pairs the relay acknowledged lately.

PROTOCOL.md section 7: re-sending the same (sender, id) within the window stores nothing new
and gets the same Ack. This module owns the filter in front of the store's records, the time
buckets those records live in, and the lookup.

Invariants:
- A pair accepted less than ``window`` seconds ago is found: the Bloom filter never answers
  "certainly new" for it (no false negatives within one rotation, and it rotates once per
  window), and its store record stays in a live bucket.
- Time here never runs backwards: :meth:`DedupWindow.now` is the highest wall-clock reading
  so far, and starts no earlier than the newest bucket in the store. A backward step of the
  system clock therefore neither hides a record from lookups (the live buckets would move
  back past it) nor files a new one under an older bucket; the message timestamps clients
  see still follow the wall clock.
- Records live in buckets of ``store.dedup_bucket_seconds`` (half a window); a bucket is
  live, searched and kept, while it may hold a record younger than the window.
- A new id costs one keyed Bloom test (the filter's secret keeps peers from crafting ids
  that always look seen); a possible retry costs one exact store search per live bucket,
  which returns at most the matching row.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from protocol.bloom import PairBloom
from relay.store import DedupRecord, Store


class DedupWindow:
    """The filter, the bucket clock and the lookup of one relay's dedup records."""

    def __init__(self, store: Store, window_seconds: int, filter_bits_log2: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.window_seconds = window_seconds
        self.bucket_seconds = store.dedup_bucket_seconds
        self._clock = clock
        newest = store.newest_dedup_bucket()
        self._latest = clock() if newest is None else max(clock(),
                                                           float(newest * self.bucket_seconds))
        # In front of the store: ``bloom.test_and_add(sender, id)`` False means "certainly
        # not accepted before" (the hot path calls it directly, once per durable message).
        self.bloom = PairBloom(filter_bits_log2, window_seconds, self._latest)
        for sender, client_id in store.dedup_keys_since(self.live_buckets()[0]):
            self.bloom.add(sender, client_id)

    def now(self) -> float:
        """The wall clock, held at its highest reading so far."""
        now = self._clock()
        if now > self._latest:
            self._latest = now
        return self._latest

    def current_bucket(self) -> int:
        """The bucket new records go to."""
        return int(self.now()) // self.bucket_seconds

    def live_buckets(self) -> list[int]:
        """Buckets that may hold a record younger than the window, oldest first."""
        now = int(self.now())
        size = self.bucket_seconds
        return list(range((now - self.window_seconds) // size, now // size + 1))

    def find(self, sender: int, client_id: int, recipient: int) -> DedupRecord | None:
        """The record of the Ack given for (sender, client_id) to ``recipient``, if live."""
        return self.store.find_dedup(sender, client_id, self.live_buckets(), recipient)

    def rotate(self) -> None:
        """Start a new filter generation once a window has passed since the last one."""
        self.bloom.maybe_rotate(self.now())

    def prune(self, limit: int) -> int:
        """Delete at most ``limit`` rows of expired records; returns how many."""
        return self.store.prune_dedup(self.live_buckets()[0], limit)
