"""The relay's persistent store (SQLite): one module per aggregate, composed by
:class:`Store`.

- ``database``: the connection, group commit, availability after a failed write.
- ``schema``: :data:`MIGRATIONS` and how a file is brought up to date.
- ``users``, ``relations``, ``inboxes``, ``devices``, ``rooms``, ``dedup_records``, ``tokens``,
  ``kicks``: one table (or table group) each, with its SQL and invariants.
- ``packing``: byte layouts of packed columns. ``facade``: :class:`Store`.

Callers import from here; the names below are the store's public interface.
"""

from relay.store.database import (
    BUSY_TIMEOUT_S,
    PRIVATE_FILE_MODE,
    PROBE_BYTES,
    SYNCHRONOUS_MODES,
)
from relay.store.dedup_records import DedupRecord
from relay.store.devices import DeviceRecord
from relay.store.errors import StoreError, StoreUnavailable
from relay.store.facade import Store
from relay.store.inboxes import (
    BOX_BASE,
    MAX_RUN_BYTES,
    MAX_RUN_MESSAGES,
    Delivered,
    InboxRow,
    StoredRun,
    room_dedup_key,
)
from relay.store.kicks import KICKS_PER_CALL
from relay.store.packing import decode_records, encode_records, record_key
from relay.store.relations import AddBuddyOutcome, Relation, RelationRecord
from relay.store.rooms import MemberRecord, RoomRecord
from relay.store.schema import MIGRATIONS, MigrationStep
from relay.store.users import UserRecord

__all__ = [
    "BOX_BASE",
    "BUSY_TIMEOUT_S",
    "KICKS_PER_CALL",
    "MAX_RUN_BYTES",
    "MAX_RUN_MESSAGES",
    "MIGRATIONS",
    "PRIVATE_FILE_MODE",
    "PROBE_BYTES",
    "SYNCHRONOUS_MODES",
    "AddBuddyOutcome",
    "DedupRecord",
    "Delivered",
    "DeviceRecord",
    "InboxRow",
    "MemberRecord",
    "MigrationStep",
    "Relation",
    "RelationRecord",
    "RoomRecord",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredRun",
    "UserRecord",
    "decode_records",
    "encode_records",
    "record_key",
    "room_dedup_key",
]
