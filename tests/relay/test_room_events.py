"""relay.handlers.rooms.push_event without a relay process: the EVENT frame built once per
kind of viewer and extended with each viewer's role says exactly what room_view says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import FrameDecoder, FrameType
from protocol import chat_pb2 as pb
from relay.connection import Connection
from relay.handlers.rooms import push_event, room_view
from relay.loop import Relay
from relay.rooms import INVITED, MEMBER, OWNER
from tests.relay.inprocess import in_process_relay, online


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    with in_process_relay(tmp_path / "relay.db", "ann", "ben", "cat", "dan") as relay:
        yield relay


def _online(relay: Relay, uid: int) -> Connection:
    return online(relay, uid, device="t")


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
