"""relay.handlers.rooms.push_event without a relay process: the EVENT frame built once per
kind of viewer and extended with each viewer's role says exactly what room_view says."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import FrameDecoder, FrameType
from protocol import chat_pb2 as pb
from relay.config import RelayConfig
from relay.connection import Connection, ConnState
from relay.handlers import HANDLERS
from relay.handlers.rooms import push_event, room_view
from relay.loop import Relay
from relay.rooms import INVITED, MEMBER, OWNER
from relay.store import Store

_PEERS: list[socket.socket] = []


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    with Store(tmp_path / "relay.db") as store:
        for name in ("ann", "ben", "cat", "dan"):
            assert store.add_user(name, name, "h", 0) is not None
        store.commit()
        relay = Relay(RelayConfig(), store, None, HANDLERS)
        yield relay
        for conn in list(relay.connections.values()):
            relay.close(conn, "test over")
        for peer in _PEERS:
            peer.close()
        _PEERS.clear()
        relay.hasher.close()
        relay.readiness.selector.close()


def _online(relay: Relay, uid: int) -> Connection:
    ours, theirs = socket.socketpair()
    _PEERS.append(theirs)
    ours.setblocking(False)
    conn = Connection(uid, ours, f"peer{uid}", "127.0.0.1", 65536, 0.0)
    conn.state, conn.uid, conn.version, conn.v21, conn.device = ConnState.OPEN, uid, 2, True, "t"
    conn.box = relay.devices.register(uid, "t", 0)
    relay.connections[conn.id] = conn
    relay.sessions.attach(conn)
    return conn


def test_each_viewer_gets_the_room_as_room_view_shows_it(relay: Relay) -> None:
    ann, ben, cat, dan = (_online(relay, uid) for uid in (1, 2, 3, 4))
    rooms = relay.store.rooms
    room = rooms.create_room("ops team", 1, 0)
    rooms.set_member(room, 2, MEMBER, 1)
    rooms.set_member(room, 3, INVITED, 2)
    relay.rooms.forget_all()
    push_event(relay, room, {1, 2, 3, 4}, skip=None)  # dan (4) is not in it
    for conn in (ann, ben, cat, dan):
        frames = FrameDecoder(1 << 20).feed(conn.take_staged())
        assert [f.type for f in frames] == [FrameType.ROOM]
        got = pb.RoomResponse.FromString(frames[0].payload)
        assert (got.code, got.op) == (pb.RoomResponse.SUCCESS, pb.RoomRequest.EVENT)
        assert list(got.rooms) == [room_view(relay, room, conn.uid)], conn.uid
    assert room_view(relay, room, 1).my_role == OWNER
    assert not room_view(relay, room, 4).members  # out of it: no members
    invited = room_view(relay, room, 3)
    assert invited.my_role == INVITED and not any(m.online for m in invited.members)
    rooms.delete_room(room)
    relay.rooms.forget_all()
    push_event(relay, room, {1}, skip=ann)  # the skipped session gets nothing
    assert ann.take_staged() == b""
