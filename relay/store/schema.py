"""The store's schema: :data:`MIGRATIONS` and how a database file is brought up to date.

Invariants:
- The schema version is ``PRAGMA user_version``; :data:`MIGRATIONS` step *n* takes it from
  *n - 1* to *n*, each step in its own transaction (``BEGIN IMMEDIATE``, so concurrent
  openers serialise and each step runs once).
- A released step is never edited: its SQL here is frozen, even where the tables' current
  writers (the aggregate modules) have moved on; a change is a new step appended.
- A file whose version is newer than this relay knows is refused (:class:`StoreError`).

Owns no state.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from protocol.framing import pack_header
from protocol.types import FrameType
from protocol.validation import username_skeleton
from relay.store.errors import StoreError
from relay.store.packing import U32, U64, encode_records, pack, unpack

# Step n migrates user_version n-1 -> n. Never edit a released step; append a new one.
# A step is SQL, or a function of the connection and the store's dedup bucket size.
MigrationStep = str | Callable[[sqlite3.Connection, int], None]
MIGRATIONS: tuple[tuple[MigrationStep, ...], ...] = (
    (
        """CREATE TABLE users (
            uid INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT NOT NULL,
            username_key TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
            protocol_version INTEGER NOT NULL DEFAULT 0, head_seq INTEGER NOT NULL DEFAULT 0,
            created INTEGER NOT NULL)""",
        """CREATE TABLE relations (
            uid INTEGER NOT NULL REFERENCES users(uid) ON DELETE CASCADE,
            peer INTEGER NOT NULL REFERENCES users(uid) ON DELETE CASCADE,
            relation INTEGER NOT NULL CHECK (relation IN (0, 1, 2)),
            PRIMARY KEY (uid, peer)) WITHOUT ROWID""",
        "CREATE INDEX relations_by_peer ON relations(peer)",
        # WITHOUT ROWID: one b-tree per insert, rows clustered by (recipient, seq). Most
        # payloads are small; large ones (v1 FILE) spill to overflow pages. No foreign key:
        # checking it costs ~0.8 us per relayed message (a quarter of the row's cost);
        # remove_user deletes a user's rows itself.
        """CREATE TABLE inbox (
            recipient INTEGER NOT NULL,
            seq INTEGER NOT NULL, sender INTEGER NOT NULL, client_id INTEGER NOT NULL,
            type INTEGER NOT NULL, timestamp INTEGER NOT NULL, payload BLOB NOT NULL,
            PRIMARY KEY (recipient, seq)) WITHOUT ROWID""",
        # Keyed by time bucket first: one b-tree insert per record (no separate index on
        # time), and expiry deletes whole leading-key ranges.
        """CREATE TABLE dedup (
            bucket INTEGER NOT NULL, sender INTEGER NOT NULL, client_id INTEGER NOT NULL,
            seq INTEGER NOT NULL, timestamp INTEGER NOT NULL,
            PRIMARY KEY (bucket, sender, client_id)) WITHOUT ROWID""",
        """CREATE TABLE tokens (
            token_hash BLOB PRIMARY KEY,
            uid INTEGER NOT NULL REFERENCES users(uid) ON DELETE CASCADE,
            expires INTEGER NOT NULL) WITHOUT ROWID""",
        "CREATE INDEX tokens_by_uid ON tokens(uid)",
    ),
    (
        "ALTER TABLE users ADD COLUMN delivered_seq INTEGER NOT NULL DEFAULT 0",
        # Runs of consecutive messages (see the module docstring), at most MAX_RUN_MESSAGES.
        # A rowid table: a run (often 1-5 KiB) fits in its leaf page, where a WITHOUT ROWID
        # row keeps only ~1 KiB inline and spills the rest to overflow pages. The index holds
        # live (undelivered) runs only, so it stays small.
        """CREATE TABLE inbox_runs (
            id INTEGER PRIMARY KEY,
            recipient INTEGER NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
            senders BLOB NOT NULL, client_ids BLOB NOT NULL, frames BLOB NOT NULL)""",
        "CREATE UNIQUE INDEX inbox_runs_by_recipient ON inbox_runs(recipient, first_seq)",
        # Dedup records, one row per run: senders (u32) and client ids (u64) packed
        # little-endian, record i has seq first_seq + i. Rows migrated from the schema-1 dedup
        # table have recipient 0 (unknown) and one record each. Append-only until pruned by
        # bucket; lookups scan a bucket inside SQLite (instr on the ids).
        """CREATE TABLE accepted (
            id INTEGER PRIMARY KEY, bucket INTEGER NOT NULL, recipient INTEGER NOT NULL,
            first_seq INTEGER NOT NULL, timestamp INTEGER NOT NULL, senders BLOB NOT NULL,
            client_ids BLOB NOT NULL)""",
        "CREATE INDEX accepted_by_bucket ON accepted(bucket)",
        lambda con, bucket_seconds: _runs_from_schema_1(con, bucket_seconds),
        "DROP TABLE inbox",
        "DROP TABLE dedup",
    ),
    (
        # Sessions an admin command (another process) asks the running relay to end; the
        # relay deletes each row once applied. Independent of the other steps' tables.
        """CREATE TABLE IF NOT EXISTS admin_kicks (
            id INTEGER PRIMARY KEY, uid INTEGER NOT NULL, reason TEXT NOT NULL)""",
    ),
    (
        # Usernames are also unique by their confusable skeleton (username_skeleton). Not a
        # UNIQUE index: look-alike accounts registered before this step are both kept; add_user
        # refuses new names whose skeleton is taken. Touches the users table only.
        "ALTER TABLE users ADD COLUMN username_skeleton TEXT NOT NULL DEFAULT ''",
        lambda con, _bucket_seconds: _fill_username_skeletons(con),
        "CREATE INDEX users_by_skeleton ON users(username_skeleton)",
    ),
    (
        # Dedup records become exact to look up: the packed sender and id arrays (where a
        # crafted id could hold another id's bytes at any offset) become self-synchronising
        # records (module docstring). And the table Store.probe writes to. Touches only the
        # accepted table and its own.
        """CREATE TABLE accepted_records (
            id INTEGER PRIMARY KEY, bucket INTEGER NOT NULL, recipient INTEGER NOT NULL,
            first_seq INTEGER NOT NULL, timestamp INTEGER NOT NULL, records BLOB NOT NULL)""",
        lambda con, _bucket_seconds: _records_from_packed_arrays(con),
        "DROP TABLE accepted",
        "ALTER TABLE accepted_records RENAME TO accepted",
        "CREATE INDEX accepted_by_bucket ON accepted(bucket)",
        "CREATE TABLE write_probe (id INTEGER PRIMARY KEY, filler BLOB NOT NULL)",
    ),
    (
        # Local accounts (PROTOCOL.md section 11): the Unix uid an account is bound to, if
        # any; one account per uid. Touches the users table only.
        "ALTER TABLE users ADD COLUMN unix_uid INTEGER",
        "CREATE UNIQUE INDEX users_by_unix_uid ON users(unix_uid)",
    ),
    (
        # Devices (PROTOCOL.md section 9): one row per (user, device) that logged in. A
        # device's inbox is its box: the user's uid box (seqs in users.head_seq and
        # delivered_seq, every inbox before this step) for the first device to log in, a box
        # from 2**32 up (seqs here) for the others. Nothing else changes: every queued message
        # stays in its uid box, which the user's first device adopts.
        """CREATE TABLE devices (
            box INTEGER PRIMARY KEY,
            uid INTEGER NOT NULL REFERENCES users(uid) ON DELETE CASCADE,
            name TEXT NOT NULL, head_seq INTEGER NOT NULL DEFAULT 0,
            delivered_seq INTEGER NOT NULL DEFAULT 0, last_seen INTEGER NOT NULL)""",
        "CREATE UNIQUE INDEX devices_by_user ON devices(uid, name)",
        "CREATE INDEX devices_by_last_seen ON devices(last_seen)",
    ),
    (
        # Rooms (PROTOCOL.md section 10): the room, its members (role 0 member, 1 owner,
        # 2 invited) and the last room_history durable messages of its timeline (their
        # bodies without a seq: each new member's box gives them its own). New tables only.
        """CREATE TABLE rooms (
            id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL,
            created INTEGER NOT NULL, head INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE room_members (
            room INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
            uid INTEGER NOT NULL REFERENCES users(uid) ON DELETE CASCADE,
            role INTEGER NOT NULL CHECK (role IN (0, 1, 2)), since INTEGER NOT NULL,
            PRIMARY KEY (room, uid)) WITHOUT ROWID""",
        "CREATE INDEX room_members_by_uid ON room_members(uid)",
        """CREATE TABLE room_history (
            room INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
            position INTEGER NOT NULL, body BLOB NOT NULL,
            PRIMARY KEY (room, position)) WITHOUT ROWID""",
    ),
    (
        # Blocking (PROTOCOL.md section 12): uid blocked peer. A new table only.
        """CREATE TABLE blocks (
            uid INTEGER NOT NULL REFERENCES users(uid) ON DELETE CASCADE,
            peer INTEGER NOT NULL REFERENCES users(uid) ON DELETE CASCADE,
            PRIMARY KEY (uid, peer)) WITHOUT ROWID""",
        "CREATE INDEX blocks_by_peer ON blocks(peer)",
    ),
    (
        # Shared runs: a room's messages of one loop pass are stored once for every member box
        # that takes them as one run (relay.store.inboxes: inbox_runs rows naming the shared
        # run, with empty frames and their frames' size in "size"). The trigger releases a
        # shared run with its last referring row, in the same transaction whoever deletes it.
        # Existing rows keep shared and size NULL and read as before.
        "ALTER TABLE inbox_runs ADD COLUMN shared INTEGER",
        "ALTER TABLE inbox_runs ADD COLUMN size INTEGER",
        """CREATE TABLE shared_runs (
            id INTEGER PRIMARY KEY, refs INTEGER NOT NULL,
            lengths BLOB NOT NULL, bodies BLOB NOT NULL)""",
        """CREATE TRIGGER shared_runs_release AFTER DELETE ON inbox_runs
            WHEN old.shared IS NOT NULL BEGIN
                UPDATE shared_runs SET refs = refs - 1 WHERE id = old.shared;
                DELETE FROM shared_runs WHERE id = old.shared AND refs <= 0;
            END""",
    ),
)

# The tables as earlier steps made them (what the functions of later steps read and write).
_SQL_INSERT_RUN_SCHEMA_2 = (
    "INSERT INTO inbox_runs (recipient, first_seq, last_seq, senders, client_ids, frames)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_SQL_SET_USERNAME_SKELETON = "UPDATE users SET username_skeleton = ? WHERE uid = ?"
# The accepted table as schema 2 made it (before its records became self-synchronising).
_SQL_INSERT_ACCEPTED_SCHEMA_2 = (
    "INSERT INTO accepted (bucket, recipient, first_seq, timestamp, senders, client_ids)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def _runs_from_schema_1(con: sqlite3.Connection, bucket_seconds: int) -> None:
    """Migration step 2: schema-1 inbox rows become one-message runs with dedup records,
    schema-1 dedup records become recipient-0 records, and ``delivered_seq`` is set below
    each user's oldest stored message (or at head_seq when none is stored)."""
    for recipient, seq, sender, client_id, timestamp, payload in con.execute(
        "SELECT recipient, seq, sender, client_id, timestamp, payload FROM inbox"
    ).fetchall():
        con.execute(
            _SQL_INSERT_RUN_SCHEMA_2,
            (
                recipient,
                seq,
                seq,
                pack(U32, [sender]),
                pack(U64, [client_id]),
                pack_header(len(payload), FrameType.MESSAGE) + bytes(payload),
            ),
        )
        if client_id:
            con.execute(
                _SQL_INSERT_ACCEPTED_SCHEMA_2,
                (
                    timestamp // bucket_seconds,
                    recipient,
                    seq,
                    timestamp,
                    pack(U32, [sender]),
                    pack(U64, [client_id]),
                ),
            )
    for bucket, sender, client_id, seq, timestamp in con.execute(
        "SELECT bucket, sender, client_id, seq, timestamp FROM dedup"
    ).fetchall():
        con.execute(
            _SQL_INSERT_ACCEPTED_SCHEMA_2,
            (bucket, 0, seq, timestamp, pack(U32, [sender]), pack(U64, [client_id])),
        )
    con.execute(
        "UPDATE users SET delivered_seq = coalesce("
        "(SELECT min(seq) - 1 FROM inbox WHERE recipient = uid), head_seq)"
    )


def _records_from_packed_arrays(con: sqlite3.Connection) -> None:
    """Migration step: every schema-2 dedup row, its packed arrays as records."""
    rows = con.execute(
        "SELECT id, bucket, recipient, first_seq, timestamp, senders, client_ids FROM accepted"
    )
    con.executemany(
        "INSERT INTO accepted_records (id, bucket, recipient, first_seq, timestamp, records)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (
            (
                row_id,
                bucket,
                recipient,
                first_seq,
                timestamp,
                encode_records(unpack(U32, senders), unpack(U64, ids)),
            )
            for row_id, bucket, recipient, first_seq, timestamp, senders, ids in rows
        ),
    )


def _fill_username_skeletons(con: sqlite3.Connection) -> None:
    """Migration step: every existing user gets the skeleton of its name (no user is dropped,
    even where two existing names share one)."""
    con.executemany(
        _SQL_SET_USERNAME_SKELETON,
        [
            (username_skeleton(username), uid)
            for uid, username in con.execute("SELECT uid, username FROM users").fetchall()
        ],
    )


def migrate(con: sqlite3.Connection, path: Path, bucket_seconds: int) -> None:
    """Apply the steps of :data:`MIGRATIONS` the file at ``path`` lacks, one transaction each.

    ``bucket_seconds`` is the store's dedup bucket size (some steps file records by it).
    """
    steps = MIGRATIONS
    while True:
        version: int = con.execute("PRAGMA user_version").fetchone()[0]
        if version > len(steps):
            raise StoreError(
                f"{path}: schema version {version} is newer than this relay knows"
                f" ({len(steps)}); upgrade the relay or use another database file"
            )
        if version == len(steps):
            return
        con.execute("BEGIN IMMEDIATE")  # serialises concurrent openers
        try:
            if con.execute("PRAGMA user_version").fetchone()[0] != version:
                con.execute("ROLLBACK")  # another opener migrated meanwhile
                continue
            for statement in steps[version]:
                if callable(statement):
                    statement(con, bucket_seconds)
                else:
                    con.execute(statement)
            con.execute(f"PRAGMA user_version = {version + 1}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
