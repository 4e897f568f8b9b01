"""A fixed-size, two-generation Bloom filter over integer pairs (sans-IO, pure).

Used by the relay to skip the store lookup for message ids it has certainly never
acknowledged. Invariants:
- No false negatives: a pair added within the last ``period`` (one rotation) is always
  reported as maybe-present; pairs survive between one and two periods.
- Memory is fixed at ``2 * 2**bits_log2 / 8`` bytes, whatever is added.
- A positive answer may be false (the caller then asks the authoritative store).
"""

from __future__ import annotations


class PairBloom:
    __slots__ = ("_current", "_mask", "_previous", "period", "rotated_at")

    def __init__(self, bits_log2: int = 24, period: float = 86400.0, now: float = 0.0) -> None:
        if not 10 <= bits_log2 <= 34:
            raise ValueError("bits_log2 must be between 10 and 34")
        size = (1 << bits_log2) // 8
        self._current = bytearray(size)
        self._previous = bytearray(size)
        self._mask = (1 << bits_log2) - 1
        self.period = period
        self.rotated_at = now

    def add(self, a: int, b: int) -> None:
        self.test_and_add(a, b)

    def test_and_add(self, a: int, b: int) -> bool:
        """Add the pair; return whether it may have been present before (one hash)."""
        h = hash((a, b))
        mask = self._mask
        p = h & mask
        q = (h >> 32) & mask
        pi, pb_, qi, qb = p >> 3, 1 << (p & 7), q >> 3, 1 << (q & 7)
        current = self._current
        seen = (current[pi] & pb_ and current[qi] & qb) or (
            self._previous[pi] & pb_ and self._previous[qi] & qb)
        current[pi] |= pb_
        current[qi] |= qb
        return bool(seen)

    def __contains__(self, pair: tuple[int, int]) -> bool:
        h = hash(pair)
        mask = self._mask
        p = h & mask
        q = (h >> 32) & mask
        pi, pb_, qi, qb = p >> 3, 1 << (p & 7), q >> 3, 1 << (q & 7)
        current, previous = self._current, self._previous
        return bool((current[pi] & pb_ and current[qi] & qb)
                    or (previous[pi] & pb_ and previous[qi] & qb))

    def maybe_rotate(self, now: float) -> bool:
        """Start a new generation once ``period`` has passed since the last one."""
        if now - self.rotated_at < self.period:
            return False
        self._previous = self._current
        self._current = bytearray(len(self._previous))
        self.rotated_at = now
        return True
