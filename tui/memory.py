"""Giving back the memory a burst of work freed: opening a chat.

Opening a conversation reads its newest history page and replays its drawing board (long
SQLite scans that fill the connections' page caches) and lays out lines; before it, the
login replaced a whole screen. That leaves garbage in reference cycles and freed holes in
the C heap that glibc keeps. :func:`release_free_memory`, run once the opened chat is
drawn, collects the cycles, empties the SQLite page caches
(:func:`tui.client.sqlite_files.shrink_open_databases`) and asks glibc to return its free
pages (``malloc_trim(0)``): 0.6–1 MiB of RSS after opening a 10,000-message conversation,
for one full garbage collection (30–40 ms on the 2-core bench machine under load) per chat
opened (bench/bench_tui_memory.py, docs/BENCHMARKS.md "Client memory").

Invariants:
- Frees only what is unused: nothing the app holds changes, data read later comes from the
  database file again (the kernel's file cache).
- Where the C library has no ``malloc_trim`` (not glibc) only the SQLite part runs.
- Runs on the app's thread, after a chat was opened and drawn
  (``MainScreen.open_conversation``), never per message or per frame.
"""

from __future__ import annotations

import ctypes
import gc
from collections.abc import Callable

from tui.client.sqlite_files import shrink_open_databases


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _find_malloc_trim()


def release_free_memory() -> None:
    """Empty SQLite's page caches and return the C heap's free pages to the system."""
    gc.collect()  # what the burst left in reference cycles (the login screen's widgets…)
    shrink_open_databases()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
