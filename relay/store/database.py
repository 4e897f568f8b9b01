"""The store's SQLite connection: its transactions, its availability, its file.

Invariants:
- One :class:`Database` owns one ``sqlite3`` connection and is used from one thread only
  (the relay's event loop, or an admin CLI command). ``check_same_thread`` stays on to
  enforce it. ``_con`` is package-private: the aggregate modules of :mod:`relay.store` read
  through it (and write through :meth:`Database.write`); nothing outside the package does.
- Writes open a transaction lazily (``BEGIN IMMEDIATE``) and nothing is durable until
  :meth:`Database.commit`; the relay calls it once per event-loop iteration (group commit)
  and acknowledges only after it returned. Reads on the same store see its uncommitted
  writes.
- A write or commit that fails for any reason but a constraint (disk full, I/O error,
  read-only file, lock timeout) rolls back *every* write since the last commit and raises
  :class:`StoreUnavailable`; from then on writes raise it at once (best-effort ones, marked
  so, are skipped) until :meth:`Database.probe` has written and committed again. Reads work
  throughout.
- Journal mode is WAL. With ``synchronous=NORMAL`` a committed transaction survives a crash
  or SIGKILL of the process (the WAL frames are in the OS page cache); only an OS crash or
  power loss may lose the last commits, and it never corrupts the file. ``FULL`` also
  survives power loss at the price of an fsync per commit.
- The database file and its -wal/-shm are private to the relay's user (mode 0600): created
  so, and an existing file open to others is fixed (and logged) on open.
- The schema is brought up to date on open (:mod:`relay.store.schema`).

State owned: the connection, whether the store can write (``available``, ``failures``,
``unavailable_reason``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

from relay.store import schema
from relay.store.errors import StoreError, StoreUnavailable

log = logging.getLogger("parley.relay")

BUSY_TIMEOUT_S = 5.0
PRIVATE_FILE_MODE = 0o600  # the database and its -wal/-shm: hashes and queued messages
SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})
PROBE_BYTES = 64 * 1024  # what Database.probe writes (and deletes) to see whether writes fit

SQL_PROBE_WRITE = "INSERT OR REPLACE INTO write_probe (id, filler) VALUES (1, zeroblob(?))"
SQL_PROBE_CLEAR = "DELETE FROM write_probe"


def _means_unavailable(exc: sqlite3.DatabaseError) -> bool:
    """A write failed because of the storage, not because of the SQL or its arguments."""
    return isinstance(exc, sqlite3.OperationalError) or type(exc) is sqlite3.DatabaseError


class Writer:
    """The connection as writers use it: a failed statement that means the storage cannot
    write rolls the transaction back and raises :class:`StoreUnavailable` (constraint
    violations and programming errors still raise as themselves)."""

    __slots__ = ("_database",)

    def __init__(self, database: Database) -> None:
        self._database = database

    @contextlib.contextmanager
    def _failures(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if not _means_unavailable(exc):
                raise
            raise self._database._failed(exc) from exc

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor:
        with self._failures():
            return self._database._con.execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        with self._failures():
            return self._database._con.executemany(sql, seq_of_parameters)

    def fetchall(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """Run a writing statement that returns rows (``RETURNING``) to its end."""
        with self._failures():
            return self._database._con.execute(sql, parameters).fetchall()


def fold(text: str) -> str:
    """Case-insensitive matching form of a username or a query."""
    return unicodedata.normalize("NFC", text.casefold())


def _make_private(path: Path) -> None:
    """Create the database file with PRIVATE_FILE_MODE if missing (SQLite gives its -wal and
    -shm the database's mode), and take group and other access away from an existing one and
    its -wal/-shm, logging each file fixed."""
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, PRIVATE_FILE_MODE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = stat.S_IMODE(file.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            file.chmod(PRIVATE_FILE_MODE)
            log.warning(
                "%s was open to other users (mode %04o); made it %04o",
                file,
                mode,
                PRIVATE_FILE_MODE,
            )


class Database:
    """One SQLite connection with the store's transaction and availability rules."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = BUSY_TIMEOUT_S,
        dedup_bucket_seconds: int = 86400,
    ) -> None:
        self.dedup_bucket_seconds = max(1, dedup_bucket_seconds)
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
        _make_private(path)
        self._con = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        self._closed = False
        self._writer = Writer(self)
        self.available = True  # False from a failed write until a probe writes again
        self.failures = 0  # write failures (each rolled back a transaction) since opening
        self.unavailable_reason = ""  # SQLite's message for the last failure
        try:
            con = self._con
            journal = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(journal).lower() != "wal":
                raise StoreError(f"{path}: cannot use WAL journal mode (got {journal!r})")
            con.execute(f"PRAGMA synchronous = {mode}")
            con.execute("PRAGMA foreign_keys = ON")
            # A 16 MiB page cache (SQLite's default: 2 MiB, evicted by every pass of a room
            # of 500, which writes ~2 MiB of runs), and a checkpoint every 10,000 WAL pages
            # (~40 MiB; default 1,000): runs are inserted and deleted a pass later, so most
            # pages are rewritten many times between checkpoints and copied once.
            # bench_vs_mosquitto room500: 1.37 -> 1.11 us per copy, 1:1 unchanged. The cache
            # fills only with use (idle RSS unchanged).
            con.execute("PRAGMA cache_size = -16384")
            con.execute("PRAGMA wal_autocheckpoint = 10000")
            con.create_function("parley_fold", 1, fold, deterministic=True)
            schema.migrate(con, path, self.dedup_bucket_seconds)
        except BaseException:
            self._con.close()
            self._closed = True
            raise

    def write(self) -> Writer:
        """The connection for writes, inside a write transaction (begun here if none is open).

        Raises :class:`StoreUnavailable` while the store is unavailable.
        """
        if not self.available:
            raise StoreUnavailable(self.unavailable_reason)
        if not self._con.in_transaction:
            self._writer.execute("BEGIN IMMEDIATE")
        return self._writer

    def _failed(self, exc: sqlite3.DatabaseError) -> StoreUnavailable:
        """Roll back (SQLite may or may not have), become unavailable, say why."""
        with contextlib.suppress(sqlite3.Error):
            self.rollback()
        self.available = False
        self.failures += 1
        self.unavailable_reason = str(exc)
        return StoreUnavailable(self.unavailable_reason)

    def abandon_pass(self, reason: str) -> None:
        """Roll back the open transaction and count it as lost, as a write the storage
        refused is (:mod:`relay.outage` then answers for the pass and probes the store):
        for an unexpected error met while the pass's writes were being made, which must
        not leave some of them acknowledged and the rest missing."""
        if self.available:
            self._failed(sqlite3.OperationalError(reason))

    # -- transactions ------------------------------------------------------------------

    @property
    def pending(self) -> bool:
        """True while writes are waiting for :meth:`commit`."""
        return self._con.in_transaction

    def commit(self) -> None:
        """Make every write since the last commit durable; no-op when nothing is pending.

        Raises :class:`StoreUnavailable` (everything since the last commit rolled back) when
        the storage cannot take it.
        """
        if self._con.in_transaction:
            self._writer.execute("COMMIT")

    def probe(self) -> bool:
        """Whether the store can write again: while unavailable, write ``PROBE_BYTES`` and
        commit, then delete them and commit; success makes the store available again."""
        if self.available:
            return True
        con = self._con
        try:
            for statement, parameters in ((SQL_PROBE_WRITE, (PROBE_BYTES,)), (SQL_PROBE_CLEAR, ())):
                con.execute("BEGIN IMMEDIATE")
                con.execute(statement, parameters)
                con.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if not _means_unavailable(exc):
                raise
            with contextlib.suppress(sqlite3.Error):
                self.rollback()
            self.unavailable_reason = str(exc)
            return False
        self.available = True
        return True

    def rollback(self) -> None:
        """Drop every write since the last commit (e.g. after an IntegrityError)."""
        if self._con.in_transaction:
            self._con.execute("ROLLBACK")

    def close(self) -> None:
        """Commit pending writes and close. Idempotent."""
        if self._closed:
            return
        try:
            self.commit()
        finally:
            self._closed = True
            self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        """Close; pending writes are committed, unless the block raised: then rolled back."""
        if exc_type is not None and not self._closed:
            self.rollback()
        self.close()
