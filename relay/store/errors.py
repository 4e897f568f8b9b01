"""The store's exceptions. Owns no state."""

from __future__ import annotations


class StoreError(Exception):
    """The database file cannot be used by this version of the relay."""


class StoreUnavailable(Exception):
    """The store cannot write now (disk full, I/O error, read-only file, lock timeout).

    Every write since the last commit has been rolled back; writes are refused until
    :meth:`relay.store.Store.probe` succeeds. Reads still work.
    """
