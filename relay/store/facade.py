"""The relay's persistent store as one object: :class:`Store` composes the aggregates.

Invariants:
- One :class:`Store` is one SQLite connection (:class:`relay.store.database.Database`: its
  transactions, group commit and availability rules) shared by one reader/writer per
  aggregate: users, relations, blocks, inboxes, devices, rooms, dedup records, tokens,
  admin kicks. Each aggregate module owns its table's SQL and invariants; nothing else
  writes its rows.
- Rows owned by a user go with it: relations (both ways), devices and tokens through
  ``ON DELETE CASCADE``, its boxes' inbox runs and their dedup records deleted by
  :meth:`Store.remove_user` (no foreign key on the hot tables).
- The methods the relay and the CLI call are the aggregates' own, bound here once
  (``store.append_inbox is store.inboxes.append_inbox``): the facade adds no call on the
  relay's hot path. A second implementation of this interface (a shared server database
  whose commits complete off the loop thread) would replace this class, not its callers.

State owned: the aggregates (the only state among them is :class:`relay.store.kicks.AdminKicks`'
data version).
"""

from __future__ import annotations

from pathlib import Path

from relay.store.blocks import Blocks
from relay.store.database import BUSY_TIMEOUT_S, Database
from relay.store.dedup_records import DedupRecords
from relay.store.devices import Devices
from relay.store.inboxes import Inboxes
from relay.store.kicks import AdminKicks
from relay.store.relations import Relations
from relay.store.rooms import Rooms
from relay.store.tokens import Tokens
from relay.store.users import Users


class Store(Database):
    """The relay's SQLite store: the database and its aggregates (module docstring)."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = BUSY_TIMEOUT_S,
        dedup_bucket_seconds: int = 86400,
    ) -> None:
        super().__init__(
            path,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            dedup_bucket_seconds=dedup_bucket_seconds,
        )
        self.users = users = Users(self)
        self.relations = relations = Relations(self)
        self.dedup_records = dedup_records = DedupRecords(self)
        self.inboxes = inboxes = Inboxes(self, dedup_records)
        self.devices = devices = Devices(self, inboxes)
        self.tokens = tokens = Tokens(self)
        self.rooms = Rooms(self)
        self.blocks = Blocks(self)
        self.kicks = kicks = AdminKicks(self)

        self.add_user = users.add_user
        self.username_taken = users.username_taken
        self.user_by_uid = users.user_by_uid
        self.user_by_key = users.user_by_key
        self.add_local_user = users.add_local_user
        self.user_by_unix_uid = users.user_by_unix_uid
        self.bind_unix_uid = users.bind_unix_uid
        self.list_users = users.list_users
        self.set_password_hash = users.set_password_hash
        self.set_protocol_version = users.set_protocol_version
        self.user_count = users.user_count

        self.add_buddy = relations.add_buddy
        self.remove_relation = relations.remove_relation
        self.relations_of = relations.relations_of
        self.buddy_ids = relations.buddy_ids
        self.are_buddies = relations.are_buddies

        self.head_seq = inboxes.head_seq
        self.append_inbox = inboxes.append_inbox
        self.append_runs = inboxes.append_runs
        self.append_shared_runs = inboxes.append_shared_runs
        self.inbox_after = inboxes.inbox_after
        self.inbox_floor = inboxes.inbox_floor
        self.inbox_count = inboxes.inbox_count
        self.inbox_bytes = inboxes.inbox_bytes
        self.delete_inbox_through = inboxes.delete_inbox_through
        self.delete_many_through = inboxes.delete_many_through

        self.devices_of = devices.devices_of
        self.claim_device = devices.claim_device
        self.touch_device = devices.touch_device
        self.expired_devices = devices.expired_devices
        self.forget_device = devices.forget_device
        self.device_count = devices.device_count

        self.find_dedup = dedup_records.find_dedup
        self.newest_dedup_bucket = dedup_records.newest_dedup_bucket
        self.prune_dedup = dedup_records.prune_dedup
        self.dedup_keys_since = dedup_records.dedup_keys_since

        self.add_token = tokens.add_token
        self.token_owner = tokens.token_owner
        self.revoke_tokens = tokens.revoke_tokens
        self.prune_tokens = tokens.prune_tokens

        self.queue_kick = kicks.queue_kick
        self.take_kicks = kicks.take_kicks

    def block(self, uid: int, peer: int) -> None:
        """``uid`` blocks ``peer`` (PROTOCOL.md section 12): any relation or request between
        them ends in the same transaction."""
        self.relations.remove_relation(uid, peer)
        self.blocks.block(uid, peer)

    def remove_user(self, uid: int) -> bool:
        """Delete a user with its relations (both ways), devices, the messages of all its
        boxes, their dedup records and its tokens.

        Messages it sent that still wait in other inboxes are kept, and so are their dedup
        records (harmless: uids are never reused). False if no such user.
        """
        self.dedup_records.remove_recipient(uid)
        for box in self.devices.boxes_of_user(uid):
            self.inboxes.remove_box(box)
        removed = self.users.remove_user(uid)
        self.rooms.delete_orphan_rooms()  # rooms whose last member this was
        return removed
