"""A fixed-size, two-generation blocked Bloom filter over integer pairs (sans-IO, pure).

Used by the relay to skip the store lookup for message ids it has certainly never
acknowledged. Invariants:
- No false negatives: a pair added within the last ``period`` (one rotation) is always
  reported as maybe-present; pairs survive between one and two periods.
- Memory is fixed at ``2 * 2**bits_log2 / 8`` bytes, whatever is added.
- A positive answer may be false (the caller then asks the authoritative store): about 1 in
  12,000 with 2**26 bits and a million pairs in a generation (measured).
- Which bits a pair sets is unpredictable to peers: the hash is keyed with a secret drawn
  per filter (SipHash, Python's randomised bytes hash, over the secret and the pair's full 64
  bits), so nobody can craft ids that are always "maybe present" to force store lookups (an
  int-tuple ``hash`` is public, and equal for ids that differ by 2**61 - 1).

Blocked: each pair sets 6 bits inside one 64-bit word chosen by its hash, so a test reads
one word per generation (cheap in Python), at a small cost in accuracy over a classic
filter of the same size.
"""

from __future__ import annotations

import os
import struct
from array import array

# Two bit positions (6 bits each) per 12-bit index: a pattern is three lookups.
_TWO_BITS = [(1 << (index & 63)) | (1 << (index >> 6)) for index in range(4096)]


def _word_and_pattern(h: int, mask: int) -> tuple[int, int]:
    """The word a pair's hash selects and the six bits it sets there."""
    return h & mask, (_TWO_BITS[(h >> 28) & 4095] | _TWO_BITS[(h >> 40) & 4095]
                      | _TWO_BITS[(h >> 52) & 4095])


_KEYED_PAIR = struct.Struct("<16sQQ")  # secret, then the two values (each below 2**64)
SECRET_BYTES = 16


def _zeroed(words: int) -> array[int]:
    return array("Q", bytes(8 * words))


class PairBloom:
    __slots__ = ("_current", "_mask", "_previous", "_secret", "period", "rotated_at")

    def __init__(self, bits_log2: int = 26, period: float = 86400.0, now: float = 0.0,
                 secret: bytes | None = None) -> None:
        """``secret`` keys the hash (tests pin it); by default a fresh random one."""
        if not 10 <= bits_log2 <= 34:
            raise ValueError("bits_log2 must be between 10 and 34")
        if secret is not None and len(secret) != SECRET_BYTES:
            raise ValueError(f"secret must be {SECRET_BYTES} bytes")
        self._secret = os.urandom(SECRET_BYTES) if secret is None else secret
        words = 1 << (bits_log2 - 6)  # the word index uses hash bits 0-27, patterns 28-63
        self._current = _zeroed(words)
        self._previous = _zeroed(words)
        self._mask = words - 1
        self.period = period
        self.rotated_at = now

    def add(self, a: int, b: int) -> None:
        self.test_and_add(a, b)

    def test_and_add(self, a: int, b: int) -> bool:
        """Add the pair; return whether it may have been present before."""
        index, pattern = _word_and_pattern(hash(_KEYED_PAIR.pack(self._secret, a, b)),
                                           self._mask)
        current = self._current
        word = current[index]
        current[index] = word | pattern
        return word & pattern == pattern or self._previous[index] & pattern == pattern

    def __contains__(self, pair: tuple[int, int]) -> bool:
        """Whether the pair may have been added, without adding it."""
        index, pattern = _word_and_pattern(hash(_KEYED_PAIR.pack(self._secret, *pair)),
                                           self._mask)
        return (self._current[index] & pattern == pattern
                or self._previous[index] & pattern == pattern)

    def maybe_rotate(self, now: float) -> bool:
        """Start a new generation once ``period`` has passed since the last one."""
        if now - self.rotated_at < self.period:
            return False
        self._previous = self._current
        self._current = _zeroed(len(self._previous))
        self.rotated_at = now
        return True
