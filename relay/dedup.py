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

The filter, :class:`PairBloom`: a two-generation, growing, blocked Bloom filter over integer
pairs (pure, no I/O).
- No false negatives: a pair added within the last ``period`` (one rotation) is always
  reported as maybe-present; pairs survive between one and two periods. Growing never
  moves or drops a bit: it adds a slice, and a test looks in every slice of both generations.
- Memory grows with use, not up front: a generation starts as one slice of
  ``INITIAL_WORDS`` 64-bit words (128 KiB of address space, resident only where written);
  once its newest slice holds ``words / 2`` pairs
  (measured: about 1 false positive in 166,000 tests per full slice) the next slice,
  ``GROWTH`` (8) times larger, is added. The slices of one generation total at most
  ``2**bits_log2`` bits (the last one is cut to fit: with the default 2**26 bits the slices
  are 128 KiB, 1 MiB and 6.9 MiB); once there, the last slice keeps filling and the
  false-positive rate rises as a fixed filter's does (about 1 in 14,000 at a million pairs
  with the default, the former fixed 2**26-bit filter's rate). Rotation drops the older
  generation, so memory falls back after a quiet period. A test reads one word per slice:
  at most three per generation with the default.
- A positive answer may be false (the caller then asks the authoritative store).
- Which bits a pair sets is unpredictable to peers: the hash is keyed with a secret drawn
  per filter (SipHash, Python's randomised bytes hash, over the secret and the pair's full 64
  bits), so nobody can craft ids that are always "maybe present" to force store lookups (an
  int-tuple ``hash`` is public, and equal for ids that differ by 2**61 - 1).
- Blocked: each pair sets 6 bits inside one 64-bit word per slice chosen by its hash, so a
  test reads one word per slice (cheap in Python), at a small cost in accuracy over a
  classic filter of the same size.
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from collections.abc import Callable

from relay.store import DedupRecord, Store

# Two bit positions (6 bits each) per 12-bit index: a pattern is three lookups.
_TWO_BITS = [(1 << (index & 63)) | (1 << (index >> 6)) for index in range(4096)]
_INDEX_BITS = (1 << 28) - 1  # hash bits 0-27 pick the word, bits 28-63 the pattern

_KEYED_PAIR = struct.Struct("<16sQQ")  # secret, then the two values (each below 2**64)
SECRET_BYTES = 16
INITIAL_WORDS = 1 << 14  # a new generation's first slice: 128 KiB
GROWTH = 8  # each further slice of a generation is this many times the previous one


def _hash_and_pattern(secret: bytes, a: int, b: int) -> tuple[int, int]:
    """The pair's word-selecting hash bits and the six bits it sets in a word."""
    h = hash(_KEYED_PAIR.pack(secret, a, b))
    return h & _INDEX_BITS, (
        _TWO_BITS[(h >> 28) & 4095] | _TWO_BITS[(h >> 40) & 4095] | _TWO_BITS[(h >> 52) & 4095]
    )


def _zeroed(words: int) -> memoryview:
    """``words`` zero 64-bit words in an anonymous mapping of their own: the kernel backs a
    page only once it is written, so an idle relay holds none of the filter (its first 128
    KiB counted in the idle RSS, bench_start) and a dropped slice goes back whole. Indexing
    costs what an ``array('Q')`` costs (measured: 18 ms either way for 470,000 updates)."""
    return memoryview(mmap.mmap(-1, 8 * words)).cast("Q")


class PairBloom:
    """The two-generation keyed Bloom filter in front of the store's dedup records."""

    __slots__ = (
        "_added",
        "_capacity",
        "_current",
        "_initial_words",
        "_max_words",
        "_newest",
        "_older",
        "_previous",
        "_secret",
        "period",
        "rotated_at",
    )

    def __init__(
        self,
        bits_log2: int = 26,
        period: float = 86400.0,
        now: float = 0.0,
        secret: bytes | None = None,
        initial_words: int = INITIAL_WORDS,
    ) -> None:
        """``secret`` keys the hash (tests pin it); by default a fresh random one.
        ``bits_log2`` bounds one generation's slices to ``2**bits_log2`` bits in all;
        ``initial_words`` is the size of a generation's first slice (tests make it small)."""
        if not 10 <= bits_log2 <= 34:
            raise ValueError("bits_log2 must be between 10 and 34")
        if secret is not None and len(secret) != SECRET_BYTES:
            raise ValueError(f"secret must be {SECRET_BYTES} bytes")
        if initial_words < 2:
            raise ValueError("initial_words must be at least 2")
        self._initial_words = initial_words
        self._secret = os.urandom(SECRET_BYTES) if secret is None else secret
        self._max_words = 1 << (bits_log2 - 6)
        self._previous: list[memoryview] = []
        self._current: list[memoryview] = []
        self._newest = self._start_generation()
        self._older: tuple[memoryview, ...] = ()  # every slice but the newest, both generations
        self.period = period
        self.rotated_at = now

    def _start_generation(self) -> memoryview:
        self._current = [_zeroed(min(self._initial_words, self._max_words))]
        self._added = 0
        self._capacity = len(self._current[0]) // 2
        return self._current[0]

    def _grow(self) -> None:
        """The newest slice is full: add a larger one, unless the generation is at its bound."""
        used = sum(len(words) for words in self._current)
        words = min(len(self._newest) * GROWTH, self._max_words - used)
        if words <= 0:
            self._capacity = -1  # at the bound: the newest slice keeps filling
            return
        self._newest = _zeroed(words)
        self._current.append(self._newest)
        self._older = (*self._previous, *self._current[:-1])
        self._added = 0
        self._capacity = words // 2

    @property
    def memory_bytes(self) -> int:
        """The bytes held by the slices of both generations."""
        return 8 * sum(len(words) for words in (*self._previous, *self._current))

    def add(self, a: int, b: int) -> None:
        self.test_and_add(a, b)

    def test_and_add(self, a: int, b: int) -> bool:
        """Add the pair; return whether it may have been present before."""
        low, pattern = _hash_and_pattern(self._secret, a, b)
        newest = self._newest
        index = low % len(newest)
        word = newest[index]
        newest[index] = word | pattern
        self._added += 1
        if self._added == self._capacity:
            self._grow()
        if word & pattern == pattern:
            return True
        for words in self._older:  # noqa: SIM110 (a loop: no generator on the hot path)
            if words[low % len(words)] & pattern == pattern:
                return True
        return False

    def __contains__(self, pair: tuple[int, int]) -> bool:
        """Whether the pair may have been added, without adding it."""
        low, pattern = _hash_and_pattern(self._secret, *pair)
        newest = self._newest
        if newest[low % len(newest)] & pattern == pattern:
            return True
        return any(words[low % len(words)] & pattern == pattern for words in self._older)

    def maybe_rotate(self, now: float) -> bool:
        """Start a new generation once ``period`` has passed since the last one."""
        if now - self.rotated_at < self.period:
            return False
        self._previous = self._current
        self._newest = self._start_generation()
        self._older = tuple(self._previous)
        self.rotated_at = now
        return True


class DedupWindow:
    """The filter, the bucket clock and the lookup of one relay's dedup records."""

    def __init__(
        self,
        store: Store,
        window_seconds: int,
        filter_bits_log2: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.window_seconds = window_seconds
        self.bucket_seconds = store.dedup_bucket_seconds
        self._clock = clock
        newest = store.newest_dedup_bucket()
        self._latest = (
            clock() if newest is None else max(clock(), float(newest * self.bucket_seconds))
        )
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
