"""Giving heap memory back to the operating system after a flood.

Invariants:
- glibc keeps freed heap memory for reuse, so after a flood the relay's RSS would stay at its
  peak. Once large buffers have been freed (``LARGE_FREE`` bytes or more since the last
  trim) :meth:`MemoryTrimmer.maybe_trim` calls ``malloc_trim(0)``, at most once per
  ``TRIM_INTERVAL`` seconds of the clock it is given.
- :func:`tune_allocator` (once, before the relay serves) fixes glibc's mmap threshold at
  ``MMAP_THRESHOLD``: otherwise glibc raises it after each large free, and then every
  scrypt buffer (16 MiB at the production cost, in a hash thread) is carved from that
  thread's heap and stays in the relay's RSS after the login storm that needed it.
- :func:`trim_after_start` trims once when the relay listens: starting (imports, the
  argparse parser, the store's migrations check) leaves about half a MiB of freed heap.
- Without glibc's ``malloc_trim`` (musl, macOS) every call is a cheap no-op.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable

log = logging.getLogger("parley.relay")

LARGE_FREE = 1024 * 1024
TRIM_INTERVAL = 5.0
MMAP_THRESHOLD = 256 * 1024  # allocations this large get their own mapping, unmapped on free
_M_MMAP_THRESHOLD = -3  # mallopt parameter numbers (glibc malloc.h)


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols include the libc's
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def tune_allocator() -> bool:
    """Fix glibc's mmap threshold (module docstring); False where there is no ``mallopt``."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def trim_after_start() -> bool:
    """Give the heap freed while starting back to the system; True if it could."""
    trim = _load_malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


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
