"""relay.store against real SQLite files: CRUD, consent flow, inbox, durability, migrations."""

from __future__ import annotations

import os
import signal
import sqlite3
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol import FrameDecoder, FrameType, encode_frame
from protocol import chat_pb2 as pb
from relay.store import (
    MAX_RUN_MESSAGES,
    MIGRATIONS,
    AddBuddyOutcome,
    DedupRecord,
    InboxRow,
    Relation,
    RelationRecord,
    Store,
    StoreError,
    StoreUnavailable,
)
from relay.store import schema as store_mod

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "relay.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path)
    yield s
    s.close()


def _users(s: Store, *names: str) -> list[int]:
    uids = []
    for name in names:
        uid = s.add_user(name, name.casefold(), f"hash-{name}", 1000)
        assert uid is not None
        uids.append(uid)
    return uids


TS = 1_700_000_000


def _frame(seq: int) -> bytes:
    return encode_frame(FrameType.MESSAGE, b"m%d" % seq)


def _msg(
    recipient: int, seq: int, sender: int = 99, client_id: int = 0, timestamp: int = TS
) -> InboxRow:
    return InboxRow(recipient, seq, sender, client_id, timestamp, _frame(seq))


def _stored(s: Store, uid: int, since: int = 0, limit: int = 1000) -> list[bytes]:
    """Payloads of the stored messages of ``uid`` after ``since``, checking run seqs."""
    payloads: list[bytes] = []
    for run in s.inbox_after(uid, since, limit):
        frames = FrameDecoder().feed(run.frames)
        assert len(frames) == run.last_seq - run.first_seq + 1
        assert all(f.type == FrameType.MESSAGE for f in frames)
        payloads.extend(f.payload for f in frames)
    return payloads


def _buddies(s: Store, a: int, b: int) -> None:
    assert s.add_buddy(a, b) is AddBuddyOutcome.PENDING
    assert s.add_buddy(b, a) is AddBuddyOutcome.SUCCESS


# -- opening, pragmas, transactions ---------------------------------------------------------


def test_pragmas_are_set(db_path: Path) -> None:
    with Store(db_path, synchronous="full") as s:
        con = s._con
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert con.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    with Store(db_path) as s:
        assert s._con.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_bad_synchronous_mode_is_refused(db_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        Store(db_path, synchronous="NORMAL; DROP TABLE users")
    assert not db_path.exists()


def test_enums_match_the_protocol() -> None:
    for rel in Relation:
        assert pb.User.Relation.Value(rel.name) == rel.value
    for outcome in AddBuddyOutcome:
        assert pb.AddBuddyResponse.Code.Value(outcome.name) == outcome.value


def test_writes_are_invisible_to_others_until_commit(db_path: Path, store: Store) -> None:
    assert not store.pending
    store.commit()  # no-op
    [alice] = _users(store, "alice")
    assert store.pending
    assert store.user_by_uid(alice) is not None  # own writes are visible
    with Store(db_path) as other:
        assert other.user_count() == 0
        store.commit()
        assert not store.pending
        assert other.user_count() == 1


def test_rollback_and_exception_in_with_block_drop_pending_writes(db_path: Path) -> None:
    with Store(db_path) as s:
        _users(s, "alice")
        s.rollback()
        assert s.user_count() == 0
        _users(s, "bob")
    with pytest.raises(RuntimeError), Store(db_path) as s:
        _users(s, "carol")
        raise RuntimeError("boom")
    with Store(db_path) as s:
        assert [u.username for u in s.list_users("", 10)[0]] == ["bob"]  # close() committed


def test_a_write_the_storage_refuses_loses_the_transaction_until_a_probe_writes(
    db_path: Path,
) -> None:
    """SQLITE_FULL for real (a page limit stands in for the disk): the whole transaction is
    rolled back, writes are refused at once, best-effort ones skipped, reads still work,
    and a probe write ends it."""
    with Store(db_path) as s:
        alice, bob = _users(s, "alice", "bob")
        s.commit()
        pages = s._con.execute("PRAGMA page_count").fetchone()[0]
        s._con.execute(f"PRAGMA max_page_count = {pages}")
        s.append_inbox([_msg(bob, 1)])
        big = InboxRow(alice, 1, bob, 7, TS, encode_frame(FrameType.MESSAGE, bytes(100_000)))
        with pytest.raises(StoreUnavailable, match="full"):
            s.append_inbox([big])
        assert (s.available, s.failures, s.pending) == (False, 1, False)
        assert (s.head_seq(alice), s.head_seq(bob)) == (0, 0)  # bob's row went too
        with pytest.raises(StoreUnavailable):
            s.append_inbox([_msg(bob, 1)])
        with pytest.raises(StoreUnavailable):
            s.add_buddy(alice, bob)
        s.set_protocol_version(alice, 2)  # best effort: skipped
        s.add_token(alice, b"t", expires=10**12)
        assert not s.pending
        assert s.user_by_uid(alice) is not None and s.relations_of(alice) == []
        assert not s.probe()
        assert s.failures == 1  # a failed probe had nothing to lose
        s._con.execute(f"PRAGMA max_page_count = {pages + 1000}")
        assert s.probe() and s.available
        s.append_inbox([big])
        s.commit()
        assert s.head_seq(alice) == 1


_CHILD = """
import sys, time
from pathlib import Path
from relay.store import InboxRow, Store
s = Store(Path(sys.argv[1]))
uid = s.add_user("alice", "alice", "h", 0)
s.append_inbox([InboxRow(uid, 1, uid, 11, 100, b"committed")])
s.commit()
s.append_inbox([InboxRow(uid, 2, uid, 12, 100, b"pending")])
s.set_protocol_version(uid, 2)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(os.name != "posix", reason="needs SIGKILL")
def test_sigkill_keeps_committed_and_loses_uncommitted_writes(db_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db_path)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    with Store(db_path) as s:
        user = s.user_by_key("alice")
        assert user is not None
        assert user.protocol_version == 0  # uncommitted update lost
        assert s.head_seq(user.uid) == 1
        assert [r.frames for r in s.inbox_after(user.uid, 0, 10)] == [b"committed"]


# -- schema versions ------------------------------------------------------------------------


def test_empty_database_file_is_migrated(db_path: Path) -> None:
    sqlite3.connect(db_path).close()  # an empty file at user_version 0
    with Store(db_path) as s:
        assert s._con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        tables = {r[0] for r in s._con.execute("SELECT name FROM sqlite_master")}
        assert {"users", "relations", "inbox_runs", "accepted", "tokens"} <= tables
        assert _users(s, "alice") == [1]


def test_older_database_runs_only_missing_steps(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Store(db_path) as s:
        _users(s, "alice")
    step = ("CREATE TABLE extra (x INTEGER)", "INSERT INTO extra VALUES (42)")
    monkeypatch.setattr(store_mod, "MIGRATIONS", (*MIGRATIONS, step))
    with Store(db_path) as s:
        assert s._con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
        assert s._con.execute("SELECT x FROM extra").fetchall() == [(42,)]
        assert s.user_by_key("alice") is not None
    with Store(db_path) as s:  # already current: the step does not run twice
        assert s._con.execute("SELECT count(*) FROM extra").fetchone()[0] == 1


def test_failed_migration_step_leaves_the_version_unchanged(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Store(db_path).close()
    step = ("CREATE TABLE extra (x INTEGER)", "THIS IS NOT SQL")
    monkeypatch.setattr(store_mod, "MIGRATIONS", (*MIGRATIONS, step))
    with pytest.raises(sqlite3.OperationalError):
        Store(db_path)
    con = sqlite3.connect(db_path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert con.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchone() is None
    con.close()


def test_newer_database_is_refused(db_path: Path) -> None:
    Store(db_path).close()
    con = sqlite3.connect(db_path)
    con.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    con.close()
    with pytest.raises(StoreError, match="newer than this relay knows"):
        Store(db_path)


# -- users ----------------------------------------------------------------------------------


def test_users_crud_and_uniqueness_by_key(store: Store) -> None:
    alice = store.add_user("Alice", "alice", "h1", 1000)
    assert alice == 1
    assert store.add_user("ALICE", "alice", "h2", 1001) is None  # same key
    bob = store.add_user("Bob", "bob", "h3", 1002)
    assert bob == 2
    assert store.user_count() == 2
    user = store.user_by_key("alice")
    assert user is not None
    assert (user.uid, user.username, user.password_hash, user.created) == (1, "Alice", "h1", 1000)
    assert (user.protocol_version, user.head_seq) == (0, 0)
    assert store.user_by_uid(alice) == user
    assert store.user_by_uid(77) is None and store.user_by_key("nobody") is None
    assert store.set_password_hash(alice, "h9")
    assert not store.set_password_hash(77, "h9")
    store.set_protocol_version(alice, 2)
    user = store.user_by_uid(alice)
    assert user is not None and (user.password_hash, user.protocol_version) == ("h9", 2)
    assert store.remove_user(bob)
    assert not store.remove_user(bob)
    assert store.user_count() == 1
    assert store.add_user("Carol", "carol", "h", 1003) == 3  # uids are never reused


def test_list_users_query_limit_and_truncated(store: Store) -> None:
    _users(store, "Alice", "bob", "alicia", "ÅSA", "Malice", "a_b")
    names, truncated = store.list_users("ALI", 10)
    assert [u.username for u in names] == ["Alice", "alicia", "Malice"]
    assert not truncated
    names, truncated = store.list_users("ali", 2)
    assert [u.username for u in names] == ["Alice", "alicia"] and truncated
    names, truncated = store.list_users("ali", 3)
    assert len(names) == 3 and not truncated
    assert [u.username for u in store.list_users("åsa", 5)[0]] == ["ÅSA"]
    assert [u.username for u in store.list_users("_", 5)[0]] == ["a_b"]  # no LIKE wildcards
    assert store.list_users("%", 5) == ([], False)
    everyone, truncated = store.list_users("", 4)
    assert [u.uid for u in everyone] == [1, 2, 3, 4] and truncated
    assert store.list_users("", 0) == ([], True)


# -- relations ------------------------------------------------------------------------------


def test_buddy_consent_flow(store: Store) -> None:
    alice, bob = _users(store, "alice", "bob")
    store.set_protocol_version(bob, 2)
    assert store.add_buddy(alice, bob) is AddBuddyOutcome.PENDING
    assert store.add_buddy(alice, bob) is AddBuddyOutcome.PENDING  # already pending
    assert store.relations_of(alice) == [RelationRecord(bob, "bob", Relation.REQUEST_SENT, 2)]
    assert store.relations_of(bob) == [RelationRecord(alice, "alice", Relation.REQUEST_RECEIVED, 0)]
    assert not store.are_buddies(alice, bob)
    assert store.buddy_ids(alice) == set() and store.buddy_ids(bob) == set()

    assert store.add_buddy(bob, alice) is AddBuddyOutcome.SUCCESS
    assert store.relations_of(alice)[0].relation is Relation.BUDDY
    assert store.relations_of(bob)[0].relation is Relation.BUDDY
    assert store.are_buddies(alice, bob) and store.are_buddies(bob, alice)
    assert store.buddy_ids(alice) == {bob} and store.buddy_ids(bob) == {alice}
    assert store.add_buddy(alice, bob) is AddBuddyOutcome.SUCCESS  # already buddies

    assert store.remove_relation(bob, alice)
    assert store.relations_of(alice) == [] and store.relations_of(bob) == []
    assert not store.remove_relation(alice, bob)


def test_add_buddy_self_or_unknown_fails_and_writes_nothing(store: Store) -> None:
    [alice] = _users(store, "alice")
    store.commit()
    assert store.add_buddy(alice, alice) is AddBuddyOutcome.FAILED
    assert store.add_buddy(alice, 42) is AddBuddyOutcome.FAILED
    assert store.relations_of(alice) == []
    assert not store.pending


def test_request_can_be_withdrawn_from_either_side(store: Store) -> None:
    alice, bob, carol = _users(store, "alice", "bob", "carol")
    store.add_buddy(alice, bob)
    store.add_buddy(carol, alice)
    assert store.remove_relation(bob, alice)  # declined by the receiver
    assert [r.peer for r in store.relations_of(alice)] == [carol]
    assert store.relations_of(bob) == []
    assert store.remove_relation(carol, alice)  # withdrawn by the sender
    assert store.relations_of(alice) == [] and store.relations_of(carol) == []


def test_relations_are_ordered_by_peer_uid(store: Store) -> None:
    alice, bob, carol, dave = _users(store, "alice", "bob", "carol", "dave")
    store.add_buddy(alice, dave)
    _buddies(store, alice, bob)
    store.add_buddy(carol, alice)
    assert [(r.peer, r.relation) for r in store.relations_of(alice)] == [
        (bob, Relation.BUDDY),
        (carol, Relation.REQUEST_RECEIVED),
        (dave, Relation.REQUEST_SENT),
    ]
    assert store.buddy_ids(alice) == {bob}


# -- inbox ----------------------------------------------------------------------------------


def test_inbox_append_after_count_and_head_seq(store: Store) -> None:
    alice, bob = _users(store, "alice", "bob")
    assert store.head_seq(alice) == 0 and store.head_seq(404) == 0
    store.append_inbox([_msg(alice, 1), _msg(bob, 1), _msg(alice, 2), _msg(alice, 3)])
    store.append_inbox([])
    assert (store.head_seq(alice), store.head_seq(bob)) == (3, 1)
    assert store.inbox_count(alice) == 3 and store.inbox_count(bob) == 1
    assert _stored(store, alice) == [b"m1", b"m2", b"m3"]
    assert _stored(store, alice, since=1) == [b"m2", b"m3"]  # the run is cut after since
    assert [(r.first_seq, r.last_seq) for r in store.inbox_after(alice, 1, 10)] == [(2, 3)]
    assert store.inbox_after(alice, 3, 10) == []
    user = store.user_by_uid(alice)
    assert user is not None and user.head_seq == 3


def test_inbox_runs_split_on_gaps_timestamps_and_size(store: Store) -> None:
    [alice] = _users(store, "alice")
    count = MAX_RUN_MESSAGES + 6
    rows = [_msg(alice, seq) for seq in range(1, count + 1)]
    rows.append(_msg(alice, count + 2))  # a gap starts a run
    rows.append(_msg(alice, count + 3, timestamp=TS + 1))  # so does another second
    store.append_inbox(rows)
    runs = store.inbox_after(alice, 0, 100)
    assert [(r.first_seq, r.last_seq) for r in runs] == [
        (1, MAX_RUN_MESSAGES),
        (MAX_RUN_MESSAGES + 1, count),
        (count + 2, count + 2),
        (count + 3, count + 3),
    ]
    assert [r.first_seq for r in store.inbox_after(alice, 0, 2)] == [1, MAX_RUN_MESSAGES + 1]
    assert len(_stored(store, alice)) == count + 2


def test_inbox_same_run_start_raises_and_rollback_restores(store: Store) -> None:
    [alice] = _users(store, "alice")
    store.append_inbox([_msg(alice, 1)])
    store.commit()
    with pytest.raises(sqlite3.IntegrityError):
        store.append_inbox([_msg(alice, 1), _msg(alice, 2)])
    store.rollback()
    assert _stored(store, alice) == [b"m1"]
    assert store.head_seq(alice) == 1


def test_head_seq_never_decreases(store: Store) -> None:
    [alice] = _users(store, "alice")
    store.append_inbox([_msg(alice, 10)])
    store.delete_inbox_through(alice, 10)
    store.append_inbox([_msg(alice, 4)])  # a caller bug, but head_seq must not go back
    assert store.head_seq(alice) == 10


def test_inbox_floor_partial_delivery_and_remove_user(store: Store) -> None:
    alice, bob = _users(store, "alice", "bob")
    assert store.inbox_floor(alice) == 0
    store.append_inbox([_msg(alice, seq) for seq in (1, 2, 3)])  # one run
    store.delete_inbox_through(alice, 1)
    assert store.inbox_floor(alice) == 1  # stored seqs are (floor, head] = {2, 3}
    assert store.head_seq(alice) - store.inbox_floor(alice) == store.inbox_count(alice) == 2
    assert _stored(store, alice) == [b"m2", b"m3"]  # the run stays, cut at the floor
    store.delete_inbox_through(alice, 0)  # going back is a no-op
    assert store.inbox_floor(alice) == 1
    store.delete_inbox_through(alice, 3)
    assert store.inbox_floor(alice) == 3  # empty: floor == head
    assert store._con.execute("SELECT count(*) FROM inbox_runs").fetchone() == (0,)
    store.append_inbox([_msg(bob, 1)])
    assert store.remove_user(bob)
    assert store.inbox_after(bob, 0, 10) == []  # no foreign key: removed explicitly


def test_inbox_delete_returns_receipts_and_keeps_head_seq_across_reopen(db_path: Path) -> None:
    with Store(db_path) as s:
        alice, bob, carol = _users(s, "alice", "bob", "carol")
        s.append_inbox(
            [
                _msg(alice, 1, sender=bob, client_id=7),
                _msg(alice, 2, sender=carol, client_id=0),
                _msg(alice, 3, sender=carol, client_id=8),
                _msg(alice, 4, sender=bob, client_id=9),
            ]
        )
        assert s.delete_inbox_through(alice, 3).receipts == [(bob, 7), (carol, 8)]
        assert s.delete_inbox_through(alice, 3) == ([], 0)
        assert s.inbox_count(alice) == 1
        assert s.delete_inbox_through(alice, 5, receipts=False).receipts == []
        assert s.inbox_count(alice) == 0
        assert s.head_seq(alice) == 4
    with Store(db_path) as s:
        assert (s.head_seq(alice), s.inbox_floor(alice)) == (4, 4)
        assert s.inbox_after(alice, 0, 10) == []
        s.append_inbox([_msg(alice, 5)])
        assert s.head_seq(alice) == 5
        assert _stored(s, alice) == [b"m5"]


def test_inbox_bytes_count_stored_runs_until_they_are_deleted(store: Store) -> None:
    alice, bob = _users(store, "alice", "bob")
    store.append_inbox([_msg(alice, 1), _msg(alice, 2)])  # one run
    store.append_inbox([_msg(alice, 3)])  # another
    sizes = [len(_frame(seq)) for seq in (1, 2, 3)]
    assert (store.inbox_bytes(alice), store.inbox_bytes(bob)) == (sum(sizes), 0)
    assert store.delete_inbox_through(alice, 1).freed_bytes == 0  # the run stays, whole
    assert store.inbox_bytes(alice) == sum(sizes)
    assert store.delete_inbox_through(alice, 3).freed_bytes == sum(sizes)
    assert store.inbox_bytes(alice) == 0


def test_delete_many_through_matches_one_box_at_a_time(store: Store) -> None:
    """The one-statement delete of a pass's deliveries (rooms) frees per box exactly what
    per-box deletes free, keeps a run delivered in part, and raises each floor."""
    alice, bob, carol = _users(store, "alice", "bob", "carol")
    store.append_inbox([_msg(alice, 1), _msg(alice, 2)])  # a run
    store.append_inbox([_msg(alice, 3)])  # another
    store.append_inbox([_msg(bob, 1), _msg(bob, 2), _msg(bob, 3)])  # one run
    store.append_inbox([_msg(carol, 1)])
    sizes = {seq: len(_frame(seq)) for seq in (1, 2, 3)}
    freed = store.delete_many_through({alice: 2, bob: 2, carol: 1})
    assert freed == {alice: sizes[1] + sizes[2], carol: sizes[1]}  # bob's run stays, whole
    assert [store.inbox_floor(box) for box in (alice, bob, carol)] == [2, 2, 1]
    assert _stored(store, alice) == [b"m3"]
    assert _stored(store, bob) == [b"m3"]  # cut at the floor
    assert _stored(store, carol) == []
    assert store.delete_many_through({alice: 3, bob: 3}) == {
        alice: sizes[3],
        bob: sum(sizes.values()),
    }
    assert store._con.execute("SELECT count(*) FROM inbox_runs").fetchone() == (0,)
    assert [store.head_seq(box) for box in (alice, bob, carol)] == [3, 3, 1]


def test_room_copies_store_no_receipt_arrays(store: Store) -> None:
    """Runs owing no receipt (room copies) keep empty sender and id arrays: nothing owed."""
    [alice] = _users(store, "alice")
    store.append_runs([(alice, 1, 2, 0, _frame(1) + _frame(2), None, None)])
    row = store._con.execute("SELECT senders, client_ids FROM inbox_runs").fetchone()
    assert row == (b"", b"")
    assert _stored(store, alice) == [b"m1", b"m2"]
    assert store.delete_inbox_through(alice, 2).receipts == []


# -- dedup ----------------------------------------------------------------------------------


DAY = 86_400  # the store fixture's dedup bucket


def _accepted(
    store: Store, recipient: int, seq: int, sender: int, client_id: int, timestamp: int
) -> None:
    """Store a message with a client id: its dedup record exists from now on."""
    store.append_inbox([InboxRow(recipient, seq, sender, client_id, timestamp, _frame(seq))])


def test_dedup_find_and_prune(store: Store) -> None:
    alice, bob, carol = _users(store, "alice", "bob", "carol")
    _accepted(store, bob, 1, alice, 5, 10 * DAY + 100)
    _accepted(store, bob, 2, alice, 6, 10 * DAY + 150)
    first = DedupRecord(bucket=10, sender=alice, client_id=5, seq=1, timestamp=10 * DAY + 100)
    other = DedupRecord(10, alice, 6, 2, 10 * DAY + 150)
    assert store.find_dedup(alice, 5, [9, 10], bob) == first
    store.delete_inbox_through(bob, 2)  # delivered: the records stay
    assert store.find_dedup(alice, 5, [9, 10], bob) == first
    assert store.find_dedup(alice, 5, [11, 12], bob) is None  # not in the live buckets
    assert store.find_dedup(alice, 6, [10], bob) == other
    assert store.find_dedup(bob, 5, [10], bob) is None  # another sender
    assert store.find_dedup(alice, 5, [10], carol) is None  # sent to someone else

    _accepted(store, bob, 4, alice, 5, 12 * DAY)
    newer = DedupRecord(12, alice, 5, 4, 12 * DAY)  # a later record: the newest bucket wins
    assert store.find_dedup(alice, 5, [10, 11, 12], bob) == newer

    assert store.prune_dedup(before_bucket=12, limit=1) == 1  # chunked (rows, one per run)
    assert store.prune_dedup(before_bucket=12) == 1
    assert store.find_dedup(alice, 6, [10], bob) is None
    assert store.find_dedup(alice, 5, [10, 11, 12], bob) == newer
    assert store.prune_dedup(before_bucket=12) == 0
    assert list(store.dedup_keys_since(12)) == [(alice, 5)]


def test_dedup_records_inside_a_run(db_path: Path) -> None:
    with Store(db_path, dedup_bucket_seconds=100) as store:
        alice, bob, carol = _users(store, "alice", "bob", "carol")
        # One run of three with ids whose little-endian bytes overlap at odd offsets.
        ids = [0x0101010101010101, 0x0201010101010101, 0x01]
        store.append_inbox(
            [
                _msg(bob, 1, sender=alice, client_id=ids[0]),
                _msg(bob, 2, sender=carol, client_id=ids[1]),
                _msg(bob, 3, sender=alice, client_id=0),
                _msg(bob, 4, sender=alice, client_id=ids[2]),
            ]
        )
        bucket = TS // 100
        assert store.find_dedup(carol, ids[1], [bucket], bob) == DedupRecord(
            bucket, carol, ids[1], 2, TS
        )
        assert store.find_dedup(alice, ids[1], [bucket], bob) is None  # carol's id
        assert store.find_dedup(alice, ids[2], [bucket], bob) == DedupRecord(
            bucket, alice, ids[2], 4, TS
        )
        assert store.find_dedup(alice, 0x0101010101010102, [bucket], bob) is None
        assert sorted(store.dedup_keys_since(0)) == sorted(
            [(alice, ids[0]), (carol, ids[1]), (alice, ids[2])]
        )
        assert store.delete_inbox_through(bob, 2).receipts == [(alice, ids[0]), (carol, ids[1])]
        assert store.delete_inbox_through(bob, 4).receipts == [(alice, ids[2])]


class _RowCounter:
    """The store's connection, counting the rows its queries hand to Python."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self._con = con
        self.rows = 0

    def execute(self, sql: str, parameters: Any = ()) -> _CountingCursor:
        return _CountingCursor(self, self._con.execute(sql, parameters))


class _CountingCursor:
    def __init__(self, counter: _RowCounter, cursor: sqlite3.Cursor) -> None:
        self._counter = counter
        self._cursor = cursor

    def fetchone(self) -> Any:
        row = self._cursor.fetchone()
        self._counter.rows += row is not None
        return row

    def __iter__(self) -> Iterator[Any]:
        for row in self._cursor:
            self._counter.rows += 1
            yield row


def test_a_retry_lookup_reads_one_row_however_other_ids_were_crafted(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: ids crafted so that a chosen id's 8 bytes appear (unaligned) in every stored
    run made each retry of it bring every run back to Python (13 ms each)."""
    alice, bob, mallory = _users(store, "alice", "bob", "mallory")
    chosen = 0x1122334455667788
    _accepted(store, bob, 1, alice, chosen, TS)
    runs = 300
    for n in range(runs):  # each run's packed ids hold the chosen id's bytes at offset 4
        low = (chosen & 0xFFFFFFFF) << 32 | n + 1
        high = chosen >> 32 | (n + 1) << 32
        seq = 2 + 2 * n
        store.append_inbox(
            [
                _msg(bob, seq, sender=mallory, client_id=low),
                _msg(bob, seq + 1, sender=mallory, client_id=high),
            ]
        )
    counter = _RowCounter(store._con)
    monkeypatch.setattr(store, "_con", counter)
    assert store.find_dedup(alice, chosen, [TS // DAY], bob) == DedupRecord(
        TS // DAY, alice, chosen, 1, TS
    )
    assert counter.rows == 1
    counter.rows = 0
    assert store.find_dedup(mallory, chosen, [TS // DAY], bob) is None  # not mallory's id
    assert counter.rows == 0


def test_packed_dedup_rows_are_migrated_to_exact_records(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = next(
        n
        for n, statements in enumerate(MIGRATIONS)
        if any(isinstance(s, str) and "accepted_records" in s for s in statements)
    )
    monkeypatch.setattr(store_mod, "MIGRATIONS", MIGRATIONS[:step])
    with Store(db_path) as s:
        s._con.execute(
            "INSERT INTO users (uid, username, username_key, password_hash, created)"
            " VALUES (1, 'alice', 'alice', 'h', 0), (2, 'bob', 'bob', 'h', 0)"
        )
        s._con.execute(
            "INSERT INTO accepted (bucket, recipient, first_seq, timestamp, senders, client_ids)"
            " VALUES (10, 2, 3, ?, ?, ?)",
            (10 * DAY, struct.pack("<2I", 1, 1), struct.pack("<2Q", 0x0101010101010101, 2**64 - 1)),
        )
    monkeypatch.setattr(store_mod, "MIGRATIONS", MIGRATIONS)
    with Store(db_path) as s:
        assert s.find_dedup(1, 2**64 - 1, [10], 2) == DedupRecord(10, 1, 2**64 - 1, 4, 10 * DAY)
        assert s.find_dedup(1, 0x0101010101010101, [10], 2) == DedupRecord(
            10, 1, 0x0101010101010101, 3, 10 * DAY
        )
        assert sorted(s.dedup_keys_since(0)) == [(1, 0x0101010101010101), (1, 2**64 - 1)]
        assert s.newest_dedup_bucket() == 10


def test_schema_1_database_is_migrated_to_runs(db_path: Path) -> None:
    con = sqlite3.connect(db_path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        assert isinstance(statement, str)
        con.execute(statement)
    con.execute("PRAGMA user_version = 1")
    con.execute(
        "INSERT INTO users (uid, username, username_key, password_hash, head_seq,"
        " created) VALUES (1, 'alice', 'alice', 'h', 0, 0), (2, 'bob', 'bob', 'h', 7, 0),"
        " (3, 'carol', 'carol', 'h', 2, 0)"
    )
    # bob: seqs 1-4 delivered (moved to dedup), 5-7 stored; carol: everything delivered.
    con.executemany(
        "INSERT INTO inbox VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (2, 5, 1, 55, 0, 10 * DAY, b"m5"),
            (2, 6, 1, 0, 0, 10 * DAY, b"m6"),
            (2, 7, 1, 57, 0, 10 * DAY + 1, b"m7"),
        ],
    )
    con.execute("INSERT INTO dedup VALUES (10, 1, 54, 4, ?)", (10 * DAY - 5,))
    con.execute("INSERT INTO dedup VALUES (10, 1, 53, 3, ?)", (10 * DAY - 9,))
    con.close()
    with Store(db_path) as s:
        assert s._con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert (s.inbox_floor(2), s.head_seq(2), s.inbox_count(2)) == (4, 7, 3)
        assert (s.inbox_floor(3), s.inbox_count(3)) == (2, 0)
        assert _stored(s, 2) == [b"m5", b"m6", b"m7"]
        assert s.find_dedup(1, 55, [10], 2) == DedupRecord(10, 1, 55, 5, 10 * DAY)
        assert s.find_dedup(1, 54, [10], 2) == DedupRecord(10, 1, 54, 4, 10 * DAY - 5)
        assert s.find_dedup(1, 53, [10], 2) == DedupRecord(10, 1, 53, 3, 10 * DAY - 9)
        assert sorted(s.dedup_keys_since(0)) == [(1, 53), (1, 54), (1, 55), (1, 57)]
        assert s.delete_inbox_through(2, 7).receipts == [(1, 55), (1, 57)]
        s.append_inbox([_msg(2, 8)])
        assert _stored(s, 2) == [b"m8"]


def test_migration_keeps_look_alike_accounts_and_refuses_new_look_alikes(db_path: Path) -> None:
    con = sqlite3.connect(db_path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        assert isinstance(statement, str)
        con.execute(statement)
    con.execute("PRAGMA user_version = 1")
    # Registered before usernames were unique by skeleton: Latin alice and Cyrillic-a alice.
    con.execute(
        "INSERT INTO users (uid, username, username_key, password_hash, created)"
        " VALUES (1, 'alice', 'alice', 'h1', 0), (2, '\u0430lice', '\u0430lice', 'h2', 0),"
        " (3, 'Bob', 'bob', 'h3', 0)"
    )
    con.close()
    with Store(db_path) as s:
        assert s.user_count() == 3
        for uid, key, password_hash in (
            (1, "alice", "h1"),
            (2, "\u0430lice", "h2"),
            (3, "bob", "h3"),
        ):
            user = s.user_by_key(key)
            assert user is not None and (user.uid, user.password_hash) == (uid, password_hash)
        assert s.username_taken("\uff41lice", "\uff41lice")  # fullwidth a
        assert s.add_user("\u0251lice", "\u0251lice", "h", 0) is None  # Latin small alpha
        assert s.add_user("B0B", "b0b", "h", 0) is None
        assert not s.username_taken("carol", "carol")
        assert s.add_user("carol", "carol", "h", 0) == 4


# -- tokens ---------------------------------------------------------------------------------


def test_tokens_expiry_revoke_and_prune(store: Store) -> None:
    alice, bob = _users(store, "alice", "bob")
    store.add_token(alice, b"a1", expires=100)
    store.add_token(alice, b"a2", expires=200)
    store.add_token(bob, b"b1", expires=50)
    assert store.token_owner(b"a1", now=99) == alice
    assert store.token_owner(b"a1", now=100) is None  # expired at `expires`
    assert store.token_owner(b"nope", now=0) is None
    assert store.prune_tokens(now=60) == 1
    assert store.token_owner(b"b1", now=0) is None
    assert store.revoke_tokens(alice) == 2
    assert store.token_owner(b"a2", now=0) is None
    assert store.revoke_tokens(alice) == 0


# -- removal --------------------------------------------------------------------------------


def test_remove_user_cascades(db_path: Path, store: Store) -> None:
    alice, bob, carol = _users(store, "alice", "bob", "carol")
    _buddies(store, alice, bob)
    store.add_buddy(carol, alice)
    store.append_inbox([_msg(alice, 1, sender=bob, client_id=1), _msg(bob, 1, sender=alice)])
    store.add_token(alice, b"tok", expires=10**12)
    store.commit()

    assert store.remove_user(alice)
    store.commit()
    assert store.user_by_uid(alice) is None
    assert store.relations_of(bob) == [] and store.relations_of(carol) == []
    assert store.buddy_ids(bob) == set()
    assert store.token_owner(b"tok", now=0) is None
    assert store.find_dedup(bob, 1, [TS // DAY], alice) is None  # its inbox's records
    con = sqlite3.connect(db_path)
    for table in ("inbox_runs", "accepted"):
        assert con.execute(
            f"SELECT count(*) FROM {table} WHERE recipient = ?", (alice,)
        ).fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM relations").fetchone() == (0,)
    con.close()
    assert _stored(store, bob) == [b"m1"]  # what it sent stays
