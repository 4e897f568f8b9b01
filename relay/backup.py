"""``parley-relay backup FILE`` and ``parley-relay restore FILE``.

Backup uses SQLite's online backup API from a connection of its own that holds one read
transaction for the whole copy: in WAL mode that is a snapshot (the running relay keeps
writing to its log meanwhile and is never blocked), so the copy is consistent as of the
moment it began and never restarts, however busy the relay is. The copy is one
self-contained file (rollback journal mode, no -wal beside it), checked with
``PRAGMA quick_check`` before it gets its name.

Restore refuses while the data dir's lock (:mod:`relay.instance_lock`) is held — a relay
runs on it — and holds that lock itself until it is done, so no relay starts halfway.

Invariants:
- A backup file is created 0600 under a temporary name in the target's directory and
  linked to its name only when complete and checked: a failed backup leaves no file behind,
  and an existing file is never replaced without ``--force`` (the link fails if one appeared
  meanwhile).
- Restore accepts only a Parley store (schema version this relay knows, its tables, a clean
  ``quick_check``); it copies the file into the data dir first, then puts it in place with
  one ``rename``: the data dir holds either the old store or the new one, never half of one.
  The old store (its log checkpointed into it first) is kept beside it as
  ``parley.db.before-restore-<UTC time>``. The restored store is then opened once, which
  brings its schema up to date.

Owns no state.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from relay.instance_lock import DataDirBusy, DataDirLock
from relay.store import Store
from relay.store.schema import MIGRATIONS

PAGES_PER_STEP = 1024  # pages copied per backup step (4 MiB with SQLite's 4 KiB pages)
PROGRESS_FROM_BYTES = 64 * 1024 * 1024  # stores at least this big print their progress
_REQUIRED_TABLES = frozenset({"users", "relations", "tokens"})
_INBOX_TABLES = frozenset({"inbox", "inbox_runs"})  # schema 1 had inbox, later inbox_runs


class BackupError(Exception):
    """The command cannot do what was asked; the message says what to do."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=30.0)


class _Progress:
    """Prints "backup: 40% (26 of 64 MiB)" at each tenth, when asked or the store is big."""

    def __init__(self, page_size: int, forced: bool, out: TextIO) -> None:
        self._page_size = page_size
        self._forced = forced
        self._out = out
        self._printed = -1

    def __call__(self, _status: int, remaining: int, total: int) -> None:
        total_bytes = total * self._page_size
        if not (self._forced or total_bytes >= PROGRESS_FROM_BYTES) or total <= 0:
            return
        done = total - remaining
        tenth = done * 10 // total
        if tenth > self._printed:
            self._printed = tenth
            mib = 1024 * 1024
            print(
                f"backup: {done * 100 // total}% ({done * self._page_size / mib:.1f} of "
                f"{total_bytes / mib:.1f} MiB)",
                file=self._out,
                flush=True,
            )


def _copy(
    source: sqlite3.Connection,
    target_path: Path,
    progress: Callable[[int, int, int], None] | None,
) -> None:
    """Copy ``source`` (inside its read transaction) into the new file ``target_path``."""
    target = sqlite3.connect(target_path, isolation_level=None)
    try:
        source.backup(target, pages=PAGES_PER_STEP, progress=progress, sleep=0)
        target.execute("PRAGMA journal_mode = DELETE")
        check = target.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the copy does not pass SQLite's quick_check: {check}")
    finally:
        target.close()


def _new_private_file(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))


def backup_store(
    db_path: Path, target: Path, *, force: bool, progress: bool, out: TextIO = sys.stderr
) -> int:
    """Copy the store at ``db_path`` to ``target`` (module docstring); returns its size."""
    if not db_path.exists():
        raise BackupError(f"there is no store at {db_path}: check --data-dir (or --config)")
    if target.exists() and target.resolve() == db_path.resolve():
        raise BackupError(f"{target} is the store itself: name another file")
    if target.exists() and not force:
        raise BackupError(f"{target} exists: name another file, or add --force to replace it")
    if target.is_dir():
        raise BackupError(f"{target} is a directory: name a file")
    if not target.parent.is_dir():
        raise BackupError(
            f"{target.parent} does not exist: create it first, or name a file elsewhere"
        )
    temporary = target.with_name(f".{target.name}.{os.getpid()}.partial")
    _new_private_file(temporary)
    try:
        source = sqlite3.connect(db_path, isolation_level=None, timeout=30.0)
        try:
            # One read transaction for the whole copy: a WAL snapshot the relay's commits
            # do not disturb (the backup would restart after each of them otherwise).
            source.execute("BEGIN")
            source.execute("SELECT count(*) FROM sqlite_master").fetchone()
            page_size = source.execute("PRAGMA page_size").fetchone()[0]
            _copy(source, temporary, _Progress(page_size, progress, out))
            source.execute("COMMIT")
        finally:
            source.close()
        _fsync(temporary)
        if force:
            os.replace(temporary, target)
        else:
            try:
                os.link(temporary, target)  # fails if the name was taken meanwhile
            except FileExistsError:
                raise BackupError(f"{target} appeared meanwhile: nothing was replaced") from None
            temporary.unlink()
        _fsync(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return target.stat().st_size


def check_parley_store(path: Path) -> int:
    """The schema version of the Parley store at ``path``; raise :class:`BackupError` if it
    is not one this relay can run on."""
    if not path.is_file():
        raise BackupError(f"{path} is not a file")
    with open(path, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise BackupError(f"{path} is not an SQLite database, so not a Parley store")
    try:
        con = _read_only(path)
        try:
            version: int = con.execute("PRAGMA user_version").fetchone()[0]
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
            check = con.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{path} cannot be read as a Parley store: {exc}") from exc
    if version > len(MIGRATIONS):
        raise BackupError(
            f"{path} has schema version {version}, newer than this relay knows "
            f"({len(MIGRATIONS)}): restore it with the newer relay that made it"
        )
    if version < 1 or not tables >= _REQUIRED_TABLES or not _INBOX_TABLES & tables:
        raise BackupError(f"{path} is an SQLite database but not a Parley store")
    if check != "ok":
        raise BackupError(f"{path} is damaged (SQLite's quick_check: {check})")
    return version


def restore_store(
    data_dir: Path,
    db_path: Path,
    source: Path,
    *,
    dedup_bucket_seconds: int,
    out: TextIO = sys.stdout,
) -> None:
    """Replace the store at ``db_path`` by the Parley store ``source`` (module docstring);
    ``dedup_bucket_seconds`` as the relay opens the store (schema steps may file by it)."""
    try:
        lock = DataDirLock.acquire(data_dir, "restore", wait=0.5)
    except DataDirBusy as exc:
        raise BackupError(
            f"{exc.holder.describe()} is using {data_dir}: stop the relay first "
            f"('systemctl stop parley-relay', or SIGTERM), then restore"
        ) from None
    try:
        version = check_parley_store(source)
        incoming = db_path.with_name(db_path.name + ".restoring")
        with contextlib.suppress(FileNotFoundError):
            incoming.unlink()
        _new_private_file(incoming)
        try:
            reader = _read_only(source)
            try:
                reader.execute("BEGIN")
                reader.execute("SELECT count(*) FROM sqlite_master").fetchone()
                _copy(reader, incoming, None)
            finally:
                reader.close()
            _fsync(incoming)
            kept = _keep_old_store(db_path)
            os.replace(incoming, db_path)
            _fsync(data_dir)
        finally:
            with contextlib.suppress(FileNotFoundError):
                incoming.unlink()
        # Brings an older backup's schema up to date, as the relay would.
        with Store(db_path, dedup_bucket_seconds=dedup_bucket_seconds) as store:
            users = store.user_count()
    finally:
        lock.release()
    print(f"restored {source} (schema version {version}, {users} users) into {db_path}", file=out)
    if kept is not None:
        print(f"the previous store is kept as {kept}: delete it once all is well", file=out)


def _keep_old_store(db_path: Path) -> Path | None:
    """Fold the current store's log into it and give it a second name; None if no store."""
    if not db_path.exists():
        return None
    with contextlib.suppress(sqlite3.Error):
        con = sqlite3.connect(db_path, isolation_level=None, timeout=30.0)
        try:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            con.close()  # the last connection of a WAL database removes its -wal and -shm
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    kept = db_path.with_name(f"{db_path.name}.before-restore-{stamp}")
    os.link(db_path, kept)
    for suffix in ("-wal", "-shm"):  # left only if the checkpoint failed: they go with it
        sidecar = db_path.with_name(db_path.name + suffix)
        if sidecar.exists():
            os.replace(sidecar, kept.with_name(kept.name + suffix))
    return kept
