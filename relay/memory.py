"""Giving heap memory back to the operating system after a flood.

Invariants:
- glibc keeps freed heap memory for reuse, so after a flood the relay's RSS would stay at its
  peak. Once large buffers have been freed (``LARGE_FREE`` bytes or more since the last
  trim) :meth:`MemoryTrimmer.maybe_trim` calls ``malloc_trim(0)``, at most once per
  ``TRIM_INTERVAL`` seconds of the clock it is given.
- Without glibc's ``malloc_trim`` (musl, macOS) every call is a cheap no-op.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger("parley.relay")

LARGE_FREE = 1024 * 1024
TRIM_INTERVAL = 5.0


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols include the libc's
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class MemoryTrimmer:
    """Counts large frees and trims the heap now and then."""

    def __init__(self) -> None:
        self._malloc_trim = _load_malloc_trim()
        self._freed = 0
        self._next_trim = 0.0

    def freed(self, nbytes: int) -> None:
        """Note that buffers of ``nbytes`` were released."""
        self._freed += nbytes

    def maybe_trim(self, now: float) -> bool:
        """Trim if enough was freed and the last trim is old enough; True if it trimmed."""
        if self._freed < LARGE_FREE or now < self._next_trim or self._malloc_trim is None:
            return False
        self._malloc_trim(0)
        log.debug("returned freed heap memory to the system (%d bytes were freed)", self._freed)
        self._freed = 0
        self._next_trim = now + TRIM_INTERVAL
        return True
