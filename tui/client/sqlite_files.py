"""Opening the client's private SQLite files.

Invariants: a database file is created with mode 0600 in a directory created 0700 (history
and transfers are private), uses WAL with synchronous=NORMAL, and a file written by a newer
Parley (a higher ``user_version`` than the caller knows) is refused rather than misread; the
page cache of a connection is :data:`CACHE_KIB` (memory, issue 15).
``":memory:"`` opens an in-memory database (tests).
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from pathlib import Path

CACHE_KIB = 512  # SQLite's page cache per connection (its default: 2 MiB)


class _Connection(sqlite3.Connection):
    """A plain connection that can be weakly referenced (for :data:`_OPEN`)."""


_OPEN: weakref.WeakSet[_Connection] = weakref.WeakSet()  # closed ones are skipped


def open_private_database(path: Path | str, schema_version: int) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` for a schema of ``schema_version``."""
    if str(path) != ":memory:":
        path = Path(path)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    db = sqlite3.connect(str(path), factory=_Connection)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    # The page cache is per connection and filled by any long scan (a board replay reads a
    # whole conversation): 512 KiB instead of SQLite's 2 MiB keeps a client's RSS down; the
    # kernel's file cache still holds the file (bench/bench_tui_memory.py).
    db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > schema_version:
        db.close()
        raise RuntimeError(f"{path} was written by a newer Parley (schema {version})")
    _OPEN.add(db)
    return db


def shrink_open_databases() -> None:
    """Free the page cache of every database this process opened and has not closed
    (``PRAGMA shrink_memory``; pages are read again from the file, i.e. the kernel's cache,
    when next needed). Connections of another thread, or closed, are left alone."""
    for db in list(_OPEN):
        try:
            db.execute("PRAGMA shrink_memory")
        except sqlite3.Error:  # closed, or created in another thread (ProgrammingError)
            _OPEN.discard(db)
