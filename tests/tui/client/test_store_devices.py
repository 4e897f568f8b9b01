"""The local store with several devices of one user (PROTOCOL.md section 9): a cursor and
a seq space per device, one row per message whatever the devices that received it,
``outgoing`` copies stored as the user's own, and schema 1 files migrated in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from protocol import chat_pb2 as pb
from tui.client.history import MessageState
from tui.client.store import SCHEMA_VERSION, LocalStore

BOB = 7


def message(
    seq: int, text: str, msg_id: int, *, peer: int = BOB, outgoing: bool = False
) -> pb.Message:
    return pb.Message(
        uid=peer, seq=seq, msg=text, id=msg_id, timestamp=1_700_000_000 + seq, outgoing=outgoing
    )


def test_each_device_has_its_own_cursor_and_seq_space() -> None:
    store = LocalStore.open(":memory:")
    store.set_last_seq(3)
    store.set_last_seq(9, "tui@box")
    assert (store.last_seq, store.cursor(""), store.cursor("tui@box")) == (3, 3, 9)
    assert store.cursor("tail@box") == 0
    # seq 1 of one device and seq 1 of another are different messages: both stored.
    first = store.add_incoming(message(1, "to the tui", msg_id=11), "tui@box")
    other = store.add_incoming(message(1, "to tail", msg_id=12), "tail@box")
    assert first is not None and other is not None and first.local_id != other.local_id
    # ...and a seq a device already stored is a duplicate for that device only.
    assert store.add_incoming(message(1, "to the tui", msg_id=11), "tui@box") is None
    store.rebase_inbox("tui@box")
    assert store.cursor("tui@box") == 0 and store.last_seq == 3
    assert store.add_incoming(message(1, "to tail", msg_id=12), "tail@box") is None


def test_one_message_received_by_two_devices_is_one_row() -> None:
    store = LocalStore.open(":memory:")
    on_tui = store.add_incoming(message(5, "hi", msg_id=99), "tui@box")
    on_tail = store.add_incoming(message(2, "hi", msg_id=99), "tail@box")
    assert on_tui is not None and on_tail is not None
    assert on_tail.local_id == on_tui.local_id  # each device reports it, the file has it once
    assert store.count(BOB) == 1
    (conversation,) = store.conversations()
    assert conversation.unread == 1
    # The same device getting the same id again under a new seq is a new message (the
    # relay's dedup window is over): stored, as before devices existed.
    again = store.add_incoming(message(6, "hi", msg_id=99), "tui@box")
    assert again is not None and again.local_id != on_tui.local_id


def test_outgoing_copies_are_own_messages_and_never_twice() -> None:
    store = LocalStore.open(":memory:")
    incoming = store.add_incoming(message(1, "question", msg_id=5), "tui@box")
    copy = store.add_incoming(
        message(2, "answer from my phone", msg_id=42, outgoing=True), "tui@box"
    )
    assert incoming is not None and copy is not None
    assert copy.outgoing and copy.peer == BOB and copy.state is MessageState.SENT
    assert copy.seq is None  # inbox seqs are per device; the row keeps none
    # The other device sharing this file gets its own copy of the same message: same row.
    same = store.add_incoming(
        message(7, "answer from my phone", msg_id=42, outgoing=True), "tail@box"
    )
    assert same is not None and same.local_id == copy.local_id
    # A message this installation sent itself (e.g. by `parley send` into the shared file)
    # comes back to the TUI as a copy: it maps to the row already there.
    sent = store.add_outgoing(BOB, pb.Message.MESSAGE, text="from a script")
    store.mark_sent(sent.msg_id, seq=30)
    back = store.add_incoming(
        message(3, "from a script", msg_id=sent.msg_id, outgoing=True), "tui@box"
    )
    assert back is not None and back.local_id == sent.local_id and back.outgoing
    page = store.page(BOB)
    assert [(e.text, e.outgoing) for e in page] == [
        ("question", False),
        ("answer from my phone", True),
        ("from a script", True),
    ]
    (conversation,) = store.conversations()
    assert conversation.unread == 1  # own messages are never unread
    assert store.find_outgoing(42) is not None  # a copy is an outgoing row: never sent again
    assert [e.msg_id for e in store.pending()] == []


SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE peers (uid INTEGER PRIMARY KEY, username TEXT NOT NULL);
CREATE TABLE conversations (
    peer INTEGER PRIMARY KEY, last_local_id INTEGER NOT NULL, unread INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE messages (
    local_id INTEGER PRIMARY KEY, peer INTEGER NOT NULL, outgoing INTEGER NOT NULL,
    msg_id INTEGER NOT NULL, seq INTEGER, type INTEGER NOT NULL, text TEXT NOT NULL,
    data BLOB NOT NULL, file BLOB, timestamp INTEGER NOT NULL, state INTEGER NOT NULL,
    code INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_by_peer ON messages (peer, local_id);
CREATE UNIQUE INDEX inbound_seq ON messages (seq) WHERE outgoing = 0 AND seq IS NOT NULL;
CREATE UNIQUE INDEX outbound_id ON messages (msg_id) WHERE outgoing = 1;
CREATE INDEX outbox ON messages (local_id) WHERE outgoing = 1 AND state = 0;
CREATE TABLE snapshots (key TEXT PRIMARY KEY, upto INTEGER NOT NULL, data TEXT NOT NULL);
INSERT INTO meta VALUES ('last_seq', 2);
INSERT INTO messages (peer, outgoing, msg_id, seq, type, text, data, timestamp, state)
    VALUES (7, 0, 100, 1, 0, 'old one', x'', 1, 4), (7, 0, 101, 2, 0, 'old two', x'', 2, 4),
           (7, 1, 555, 9, 0, 'old reply', x'', 3, 1), (7, 1, 556, NULL, 0, 'queued', x'', 4, 0);
INSERT INTO conversations VALUES (7, 4, 2);
PRAGMA user_version = 1;
"""


def test_a_schema_1_file_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA_1)
    old.close()
    store = LocalStore.open(path)
    assert [e.text for e in store.page(BOB)] == ["old one", "old two", "old reply", "queued"]
    assert store.last_seq == 2 and store.cursor("tui@box") == 0
    assert [e.msg_id for e in store.pending()] == [556]
    # The old inbox is the device "": its seqs are still known there...
    assert store.add_incoming(message(2, "old two", msg_id=101)) is None
    # ...and only there: a device's own seq 1 is another message.
    fresh = store.add_incoming(message(1, "new device", msg_id=200), "tui@box")
    assert fresh is not None
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    reopened = LocalStore.open(path)  # migrating twice changes nothing
    assert reopened.count(BOB) == 5 and reopened.add_incoming(message(1, "x", 100)) is None
