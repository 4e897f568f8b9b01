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

    def _positions(self, a: int, b: int) -> tuple[int, int]:
        h = hash((a, b)) & 0xFFFFFFFFFFFFFFFF
        h2 = (h * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        return h & self._mask, (h2 >> 20) & self._mask

    def add(self, a: int, b: int) -> None:
        p, q = self._positions(a, b)
        bits = self._current
        bits[p >> 3] |= 1 << (p & 7)
        bits[q >> 3] |= 1 << (q & 7)

    def __contains__(self, pair: tuple[int, int]) -> bool:
        p, q = self._positions(pair[0], pair[1])
        for bits in (self._current, self._previous):
            if bits[p >> 3] & (1 << (p & 7)) and bits[q >> 3] & (1 << (q & 7)):
                return True
        return False

    def maybe_rotate(self, now: float) -> bool:
        """Start a new generation once ``period`` has passed since the last one."""
        if now - self.rotated_at < self.period:
            return False
        self._previous = self._current
        self._current = bytearray(len(self._previous))
        self.rotated_at = now
        return True
