"""relay.sessions and relay.presence without a relay process: an in-process Relay on a real
SQLite store, with real connections on socket pairs (nothing is written to them: the frames
each session would receive are read back from its staged output)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import FrameDecoder, FrameType
from protocol import chat_pb2 as pb
from relay import presence
from relay.config import RelayConfig
from relay.connection import Connection, ConnState
from relay.handlers import HANDLERS
from relay.loop import Relay
from relay.sessions import Sessions
from relay.store import AddBuddyOutcome, Store

ALICE, BOB, CAROL, DAVE = 1, 2, 3, 4


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """alice and bob are buddies, alice asked carol (pending), dave knows nobody."""
    with Store(tmp_path / "relay.db") as opened:
        for name in ("alice", "bob", "carol", "dave"):
            assert opened.add_user(name, name, "h", 0) is not None
        opened.add_buddy(ALICE, BOB)
        assert opened.add_buddy(BOB, ALICE) == AddBuddyOutcome.SUCCESS
        assert opened.add_buddy(ALICE, CAROL) == AddBuddyOutcome.PENDING
        opened.commit()
        yield opened


@pytest.fixture
def relay(store: Store) -> Iterator[Relay]:
    relay = Relay(RelayConfig(), store, None, HANDLERS)
    yield relay
    for conn in list(relay.connections.values()):
        relay.close(conn, "test over")
    relay.hasher.close()
    relay.readiness.selector.close()


def _connection(conn_id: int) -> Connection:
    ours, theirs = socket.socketpair()
    theirs.close()
    conn = Connection(conn_id, ours, f"peer{conn_id}", "127.0.0.1", 65536, 0.0)
    conn.state = ConnState.OPEN
    return conn


def _online(relay: Relay, uid: int, version: int = 2) -> Connection:
    conn = _connection(uid)
    conn.uid = uid
    conn.version = version
    conn.box = relay.devices.register(uid, "", 0)
    relay.connections[conn.id] = conn
    relay.sessions.attach(conn)
    return conn


def _lists(conn: Connection) -> list[list[tuple[int, bool, int]]]:
    """The buddy lists staged for ``conn``: (uid, online, relation) per entry."""
    frames = FrameDecoder(1 << 20).feed(conn.take_staged())
    lists = []
    for frame_type, payload in frames:
        assert frame_type == FrameType.LIST_BUDDY
        users = pb.ListBuddyResponse.FromString(payload).users
        lists.append([(u.uid, u.online, u.relation) for u in users])
    return lists


def test_sessions_show_online_only_oneself_and_online_buddies(store: Store) -> None:
    sessions = Sessions(store)
    alice, bob, carol = _connection(1), _connection(2), _connection(3)
    for uid, conn in ((ALICE, alice), (BOB, bob), (CAROL, carol)):
        conn.uid = conn.box = uid
        sessions.attach(conn)
    assert sessions.buddies == {ALICE: {BOB}, BOB: {ALICE}, CAROL: set()}
    assert sessions.shows_online(ALICE, ALICE) and sessions.shows_online(ALICE, BOB)
    assert not sessions.shows_online(ALICE, CAROL)  # a pending request shows nothing
    assert not sessions.shows_online(CAROL, ALICE)
    assert sessions.viewers_of(BOB) == [ALICE]
    assert sessions.detach(bob) and not sessions.detach(bob)
    assert not sessions.shows_online(ALICE, BOB) and BOB not in sessions.buddies
    assert sessions.viewers_of(BOB) == [ALICE]  # alice's cache still names bob, offline


def test_a_new_login_takes_over_without_the_old_session_announcing_anything(store: Store) -> None:
    sessions = Sessions(store)
    first, second = _connection(1), _connection(2)
    first.uid = second.uid = ALICE
    first.box = second.box = ALICE
    assert sessions.attach(first)  # the user comes online
    assert sessions.take_over(ALICE) is first
    assert not sessions.detach(first)  # its teardown is not the user going offline
    sessions.attach(second)
    assert sessions.by_box[ALICE] is second and len(sessions) == 1


def test_a_user_is_online_while_any_receiving_session_lives(store: Store) -> None:
    sessions = Sessions(store)
    tui, tail, script = _connection(1), _connection(2), _connection(3)
    for conn, box in ((tui, ALICE), (tail, 1 << 32), (script, 0)):
        conn.uid, conn.box = ALICE, box
    script.send_only = True
    assert not sessions.attach(script)  # send-only: no presence
    assert ALICE not in sessions.online and sessions.buddies[ALICE] == {BOB}
    assert sessions.attach(tui)
    assert not sessions.attach(tail)
    assert sessions.receiving(ALICE) == [tui, tail] and len(sessions) == 3
    assert not sessions.detach(tui) and ALICE in sessions.online
    assert sessions.detach(tail) and ALICE not in sessions.online
    assert sessions.all_of(ALICE) == [script]  # still logged in: may send
    assert not sessions.detach(script) and ALICE not in sessions.buddies


def test_going_offline_is_pushed_to_online_buddies_only(relay: Relay) -> None:
    alice, bob, carol, dave = (_online(relay, uid) for uid in (ALICE, BOB, CAROL, DAVE))
    relay.close(bob, "left")
    assert _lists(alice) == [[(BOB, False, pb.User.BUDDY), (CAROL, False, pb.User.REQUEST_SENT)]]
    assert _lists(carol) == [] and _lists(dave) == []
    assert not relay.sessions.all_of(BOB)


def test_v1_sessions_see_buddies_only_in_their_lists(relay: Relay) -> None:
    alice = _online(relay, ALICE, version=1)
    _online(relay, BOB)
    presence.push_list(relay, alice)
    assert _lists(alice) == [[(BOB, True, pb.User.BUDDY)]]


def test_a_relation_change_refreshes_both_caches_and_pushes_both_lists(
    relay: Relay, store: Store
) -> None:
    alice, carol = _online(relay, ALICE), _online(relay, CAROL)
    assert store.add_buddy(CAROL, ALICE) == AddBuddyOutcome.SUCCESS
    presence.relation_changed(relay, ALICE, CAROL)
    assert relay.sessions.buddies[ALICE] == {BOB, CAROL}
    assert relay.sessions.shows_online(ALICE, CAROL)
    assert _lists(alice) == [[(BOB, False, pb.User.BUDDY), (CAROL, True, pb.User.BUDDY)]]
    assert _lists(carol) == [[(ALICE, True, pb.User.BUDDY)]]


def test_a_removed_user_is_dropped_from_its_buddies_lists(relay: Relay, store: Store) -> None:
    alice = _online(relay, ALICE)
    assert store.remove_user(BOB)
    presence.user_removed(relay, BOB)
    assert relay.sessions.buddies[ALICE] == set()
    assert _lists(alice) == [[(CAROL, False, pb.User.REQUEST_SENT)]]
