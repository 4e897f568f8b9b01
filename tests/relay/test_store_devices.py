"""relay.store.devices: boxes per device, the uid box adopted by the first device (every
inbox from before devices existed keeps its messages), expiry, removal."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import FrameDecoder, FrameType, encode_frame
from relay.store import BOX_BASE, MIGRATIONS, InboxRow, Store
from relay.store import schema as schema_mod

TS = 1_700_000_000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "relay.db")
    yield s
    s.close()


def _row(box: int, seq: int, text: bytes, dedup_uid: int = -1) -> InboxRow:
    return InboxRow(box, seq, 99, seq, TS, encode_frame(FrameType.MESSAGE, text), dedup_uid)


def _texts(s: Store, box: int) -> list[bytes]:
    return [
        frame.payload
        for run in s.inbox_after(box, 0, 100)
        for frame in FrameDecoder().feed(run.frames)
    ]


def test_the_first_device_adopts_the_uid_box_and_later_ones_get_fresh_boxes(
    store: Store,
) -> None:
    uid = store.add_user("alice", "alice", "h", TS)
    assert uid is not None
    store.append_inbox([_row(uid, 1, b"waiting"), _row(uid, 2, b"for a device")])
    assert store.claim_device(uid, "tui@box", TS) == (uid, True)
    assert _texts(store, uid) == [b"waiting", b"for a device"]  # nothing lost
    assert store.claim_device(uid, "tui@box", TS + 5) == (uid, False)
    tail, created = store.claim_device(uid, "tail@box", TS)
    assert created and tail == BOX_BASE
    legacy, _ = store.claim_device(uid, "", TS)
    assert legacy == BOX_BASE + 1
    assert [(d.box, d.name) for d in store.devices_of(uid)] == [
        (uid, "tui@box"),
        (BOX_BASE, "tail@box"),
        (BOX_BASE + 1, ""),
    ]
    store.append_inbox([_row(tail, 1, b"tail's own", dedup_uid=0)])
    assert (store.head_seq(tail), store.inbox_count(tail)) == (1, 1)
    assert store.head_seq(uid) == 2  # each box its own seq space
    store.delete_inbox_through(tail, 1)
    assert (store.head_seq(tail), store.inbox_floor(tail), store.inbox_count(tail)) == (1, 1, 0)


def test_only_the_copy_naming_a_dedup_uid_files_a_record(store: Store) -> None:
    uid = store.add_user("bob", "bob", "h", TS)
    assert uid is not None
    store.claim_device(uid, "a", TS)
    second, _ = store.claim_device(uid, "b", TS)
    store.append_inbox([_row(uid, 1, b"x", dedup_uid=uid), _row(second, 1, b"x", dedup_uid=0)])
    record = store.find_dedup(99, 1, [TS // store.dedup_bucket_seconds], uid)
    assert record is not None and record.seq == 1
    assert store._con.execute("SELECT count(*) FROM accepted").fetchone()[0] == 1


def test_forgetting_devices_deletes_their_messages(store: Store) -> None:
    uid = store.add_user("carol", "carol", "h", TS)
    assert uid is not None
    store.claim_device(uid, "old", TS - 40 * 86400)
    fresh, _ = store.claim_device(uid, "fresh", TS)
    store.append_inbox([_row(uid, 1, b"old one"), _row(fresh, 1, b"fresh one")])
    expired = store.expired_devices(TS - 30 * 86400, 10)
    assert expired == [(uid, uid, "old")]
    store.forget_device(uid)
    assert _texts(store, uid) == [] and store.inbox_count(uid) == 0
    assert store.head_seq(uid) == 1  # the uid box's seqs never go back
    assert [d.name for d in store.devices_of(uid)] == ["fresh"]
    assert _texts(store, fresh) == [b"fresh one"]
    # The uid box is free again: the next new device takes it (empty).
    assert store.claim_device(uid, "new", TS) == (uid, True)


def test_removing_a_user_deletes_every_box(store: Store) -> None:
    uid = store.add_user("dave", "dave", "h", TS)
    assert uid is not None
    store.claim_device(uid, "a", TS)
    second, _ = store.claim_device(uid, "b", TS)
    store.append_inbox([_row(uid, 1, b"1"), _row(second, 1, b"2", dedup_uid=0)])
    assert store.remove_user(uid)
    assert store._con.execute("SELECT count(*) FROM inbox_runs").fetchone()[0] == 0
    assert store._con.execute("SELECT count(*) FROM devices").fetchone()[0] == 0


def test_a_schema_6_store_keeps_every_queued_message_for_the_first_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "relay.db"
    monkeypatch.setattr(schema_mod, "MIGRATIONS", MIGRATIONS[:6])
    with Store(path) as old:
        uid = old.add_user("erin", "erin", "h", TS)
        assert uid is not None
        old.append_inbox([_row(uid, 1, b"queued before devices"), _row(uid, 2, b"and this")])
        # Delivered through 1 as a schema-6 relay recorded it (today's delete reads columns
        # a later step adds); the run holding 1 and 2 stays.
        old._con.execute("UPDATE users SET delivered_seq = 1 WHERE uid = ?", (uid,))
        old.commit()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 6
    monkeypatch.setattr(schema_mod, "MIGRATIONS", MIGRATIONS)
    with Store(path) as new:
        assert new._con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert new.devices_of(uid) == []
        assert new.claim_device(uid, "tui@box", TS)[0] == uid
        assert _texts(new, uid) == [b"and this"]
        assert (new.head_seq(uid), new.inbox_floor(uid)) == (2, 1)
