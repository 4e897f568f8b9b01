"""relay.store against real SQLite files: CRUD, consent flow, inbox, durability, migrations."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from relay import store as store_mod
from relay.store import (
    MIGRATIONS,
    AddBuddyOutcome,
    DedupRecord,
    InboxRow,
    Relation,
    RelationRecord,
    Store,
    StoreError,
)

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


def _msg(recipient: int, seq: int, sender: int = 99, client_id: int = 0) -> InboxRow:
    return InboxRow(recipient, seq, sender, client_id, 0, 1_700_000_000 + seq, b"m%d" % seq)


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


_CHILD = """
import sys, time
from pathlib import Path
from relay.store import InboxRow, Store
s = Store(Path(sys.argv[1]))
uid = s.add_user("alice", "alice", "h", 0)
s.append_inbox([InboxRow(uid, 1, uid, 11, 0, 100, b"committed")])
s.commit()
s.append_inbox([InboxRow(uid, 2, uid, 12, 0, 100, b"pending")])
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
        assert [r.payload for r in s.inbox_after(user.uid, 0, 10)] == [b"committed"]


# -- schema versions ------------------------------------------------------------------------


def test_empty_database_file_is_migrated(db_path: Path) -> None:
    sqlite3.connect(db_path).close()  # an empty file at user_version 0
    with Store(db_path) as s:
        assert s._con.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        tables = {r[0] for r in s._con.execute("SELECT name FROM sqlite_master")}
        assert {"users", "relations", "inbox", "dedup", "tokens"} <= tables
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
    store.append_inbox([_msg(alice, 1), _msg(bob, 1), _msg(alice, 3), _msg(alice, 2)])
    store.append_inbox([])
    assert (store.head_seq(alice), store.head_seq(bob)) == (3, 1)
    assert store.inbox_count(alice) == 3 and store.inbox_count(bob) == 1
    assert store.inbox_after(alice, 0, 10) == [_msg(alice, 1), _msg(alice, 2), _msg(alice, 3)]
    assert [r.seq for r in store.inbox_after(alice, 1, 10)] == [2, 3]
    assert [r.seq for r in store.inbox_after(alice, 0, 2)] == [1, 2]
    assert store.inbox_after(alice, 3, 10) == []
    user = store.user_by_uid(alice)
    assert user is not None and user.head_seq == 3


def test_inbox_duplicate_seq_raises_and_rollback_restores(store: Store) -> None:
    [alice] = _users(store, "alice")
    store.append_inbox([_msg(alice, 1)])
    store.commit()
    with pytest.raises(sqlite3.IntegrityError):
        store.append_inbox([_msg(alice, 2), _msg(alice, 1)])
    store.rollback()
    assert [r.seq for r in store.inbox_after(alice, 0, 10)] == [1]


def test_inbox_floor_and_remove_user_deletes_its_inbox(store: Store) -> None:
    alice, bob = _users(store, "alice", "bob")
    assert store.inbox_floor(alice) == 0
    store.append_inbox([_msg(alice, seq) for seq in (1, 2, 3)])
    store.delete_inbox_through(alice, 1)
    assert store.inbox_floor(alice) == 1  # stored seqs are (floor, head] = {2, 3}
    assert store.head_seq(alice) - store.inbox_floor(alice) == store.inbox_count(alice) == 2
    store.delete_inbox_through(alice, 3)
    assert store.inbox_floor(alice) == 3  # empty: floor == head
    store.append_inbox([_msg(bob, 1)])
    assert store.remove_user(bob)
    assert store.inbox_after(bob, 0, 10) == []  # no foreign key: removed explicitly


def test_inbox_delete_keeps_head_seq_across_reopen(db_path: Path) -> None:
    with Store(db_path) as s:
        alice, bob = _users(s, "alice", "bob")
        s.append_inbox(
            [
                _msg(alice, 1, sender=bob, client_id=7),
                _msg(alice, 2, sender=bob, client_id=0),
                _msg(alice, 3, sender=bob, client_id=8),
                _msg(alice, 4, sender=bob, client_id=9),
            ]
        )
        assert s.delete_inbox_through(alice, 3) == [(bob, 7), (bob, 8)]
        assert s.delete_inbox_through(alice, 3) == []
        assert s.inbox_count(alice) == 1
        assert s.delete_inbox_through(alice, 5, keep_dedup=False) == []
        assert s.inbox_count(alice) == 0
        assert s.head_seq(alice) == 4
    with Store(db_path) as s:
        assert s.head_seq(alice) == 4
        assert s.inbox_after(alice, 0, 10) == []
        s.append_inbox([_msg(alice, 5)])
        assert s.head_seq(alice) == 5


def test_head_seq_never_decreases(store: Store) -> None:
    [alice] = _users(store, "alice")
    store.append_inbox([_msg(alice, 10)])
    store.delete_inbox_through(alice, 10)
    store.append_inbox([_msg(alice, 4)])  # a caller bug, but head_seq must not go back
    assert store.head_seq(alice) == 10


# -- dedup ----------------------------------------------------------------------------------


DAY = 86_400  # the store fixture's dedup bucket


def _delivered(store: Store, recipient: int, seq: int, sender: int, client_id: int,
               timestamp: int) -> None:
    """Store a message and delete it as delivered: its (sender, id) moves into dedup."""
    store.append_inbox([InboxRow(recipient, seq, sender, client_id, 0, timestamp, b"m")])
    store.delete_inbox_through(recipient, seq)


def test_dedup_find_and_prune(store: Store) -> None:
    alice, bob = _users(store, "alice", "bob")
    _delivered(store, bob, 1, alice, 5, 10 * DAY + 100)
    _delivered(store, bob, 2, alice, 6, 10 * DAY + 150)
    first = DedupRecord(bucket=10, sender=alice, client_id=5, seq=1, timestamp=10 * DAY + 100)
    other = DedupRecord(10, alice, 6, 2, 10 * DAY + 150)
    assert store.find_dedup(alice, 5, buckets=[9, 10]) == first
    assert store.find_dedup(alice, 5, buckets=[11, 12]) is None  # not in the live buckets
    assert store.find_dedup(alice, 6, buckets=[10]) == other
    assert store.find_dedup(bob, 5, buckets=[10]) is None

    _delivered(store, bob, 3, alice, 5, 10 * DAY + 200)  # same bucket: the first is kept
    assert store.find_dedup(alice, 5, [10]) == first
    _delivered(store, bob, 4, alice, 5, 12 * DAY)
    newer = DedupRecord(12, alice, 5, 4, 12 * DAY)  # a later record: the newest bucket wins
    assert store.find_dedup(alice, 5, [10, 11, 12]) == newer

    assert store.prune_dedup(before_bucket=12, limit=1) == 1  # chunked
    assert store.prune_dedup(before_bucket=12) == 1
    assert store.find_dedup(alice, 6, [10]) is None
    assert store.find_dedup(alice, 5, [10, 11, 12]) == newer
    assert store.prune_dedup(before_bucket=12) == 0
    assert list(store.dedup_keys_since(12)) == [(alice, 5)]


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
    _delivered(store, carol, 1, alice, 1, 100)  # alice's sent-message dedup record
    store.commit()

    assert store.remove_user(alice)
    store.commit()
    assert store.user_by_uid(alice) is None
    assert store.relations_of(bob) == [] and store.relations_of(carol) == []
    assert store.buddy_ids(bob) == set()
    assert store.token_owner(b"tok", now=0) is None
    assert store.find_dedup(alice, 1, [0]) is None
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT count(*) FROM inbox WHERE recipient = ?", (alice,)).fetchone() == (
        0,
    )
    assert con.execute("SELECT count(*) FROM relations").fetchone() == (0,)
    con.close()
    assert [r.sender for r in store.inbox_after(bob, 0, 10)] == [alice]  # what it sent stays


def test_delivered_messages_with_ids_move_to_dedup(db_path: Path) -> None:
    with Store(db_path, dedup_bucket_seconds=100) as store:
        alice, bob = _users(store, "alice", "bob")
        store.append_inbox([_msg(bob, 1, sender=alice, client_id=77),
                            _msg(bob, 2, sender=alice, client_id=0)])
        undelivered = store.find_dedup(alice, 77, buckets=[], recipient=bob)
        assert undelivered is not None and undelivered.seq == 1  # found in the inbox
        assert store.find_dedup(alice, 77, buckets=[]) is None  # no recipient: dedup only
        assert store.delete_inbox_through(bob, 2) == [(alice, 77)]
        ts = _msg(bob, 1).timestamp
        moved = store.find_dedup(alice, 77, buckets=[ts // 100], recipient=bob)
        assert moved == DedupRecord(ts // 100, alice, 77, 1, ts)
        assert (alice, 77) in set(store.dedup_keys_since(0))
