"""Rooms in the local store and the room table, without a relay: a room is the conversation
of its negative id, its messages are stored once per file with their sender, and the room
table follows answers and pushes (PROTOCOL.md section 10)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from tui.client.cli_rooms import room_line
from tui.client.connection import Endpoint
from tui.client.events import Buddy
from tui.client.history import HistoryEntry, MessageState, room_peer
from tui.client.rooms import RoomChanged, RoomEvent, RoomInvited, RoomRemoved, RoomTable
from tui.client.session import ClientSession
from tui.client.store import SCHEMA_VERSION, LocalStore
from tui.client.trust import TrustPolicy

_M = pb.Message
Op = pb.RoomRequest
Role = pb.Member


def room_message(seq: int, text: str, *, sender: int = 7, msg_id: int = 0, room: int = 3) -> _M:
    kind = _M.MESSAGE if msg_id else _M.ROOM_EVENT
    return _M(uid=sender, room=room, seq=seq, id=msg_id, type=kind, msg=text, timestamp=1000)


def test_room_messages_are_the_negative_conversation_with_their_sender() -> None:
    store = LocalStore.open(":memory:")
    entry = store.add_incoming(room_message(1, "hello", msg_id=11), "tui@a")
    assert entry is not None and entry.peer == room_peer(3) == -3 and entry.room == 3
    assert entry.sender == 7 and not entry.outgoing
    store.commit()
    [stored] = store.page(-3)
    assert stored.sender == 7 and stored.text == "hello"
    assert [c.peer for c in store.conversations()] == [-3]
    assert store.conversations()[0].unread == 1
    event = store.add_incoming(room_message(2, "join", sender=9), "tui@a")
    assert event is not None and event.type == _M.ROOM_EVENT and event.sender == 9
    assert store.conversations()[0].unread == 1  # events are not unread messages


def test_a_room_message_is_one_row_whatever_brought_it() -> None:
    store = LocalStore.open(":memory:")
    first = store.add_incoming(room_message(1, "hello", msg_id=11), "tui@a")
    event = store.add_incoming(room_message(2, "join", sender=9), "tui@a")
    assert first is not None and event is not None
    # Another device sharing the file: the same rows, reported once by that device.
    again = store.add_incoming(room_message(5, "hello", msg_id=11), "tail@a")
    assert again is not None and again.local_id == first.local_id
    assert store.add_incoming(room_message(6, "join", sender=9), "tail@a") == event
    # The same device gets the room's history again (a new join): not reported again.
    assert store.add_incoming(room_message(9, "hello", msg_id=11), "tui@a") is None
    assert store.add_incoming(room_message(10, "join", sender=9), "tui@a") is None
    assert store.count(-3) == 2


def test_own_room_message_and_its_copies() -> None:
    store = LocalStore.open(":memory:")
    mine = store.add_outgoing(-3, _M.MESSAGE, text="mine")
    wire = mine.to_wire()
    assert (wire.uid, wire.room) == (0, 3)
    # Acked with seq 0 (room Acks carry none).
    sent = store.mark_sent(mine.msg_id, 0)
    assert sent is not None and sent.state is MessageState.SENT and sent.seq is None
    # The copy for another device of this user, and the room's history replaying it.
    copy = _M(uid=5, room=3, seq=4, id=mine.msg_id, type=_M.MESSAGE, msg="mine", outgoing=True)
    assert store.add_incoming(copy, "tail@a") == sent
    replay = _M(uid=5, room=3, seq=8, id=mine.msg_id, type=_M.MESSAGE, msg="mine")
    assert store.add_incoming(replay, "tui@a") == sent
    assert store.count(-3) == 1
    # An outgoing copy from elsewhere that this file never sent: an own entry.
    other = _M(uid=5, room=3, seq=9, id=77, type=_M.MESSAGE, msg="from phone", outgoing=True)
    entry = HistoryEntry.from_incoming(other)
    assert entry.outgoing and entry.peer == -3 and entry.sender == 0


def test_schema_2_file_gets_the_sender_column(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    store = LocalStore.open(path)
    store.add_incoming(_M(uid=4, seq=1, id=5, type=_M.MESSAGE, msg="old"), "")
    store.close()
    with sqlite3.connect(path) as db:  # back to what schema 2 had
        db.execute("ALTER TABLE messages DROP COLUMN sender")
        db.execute("PRAGMA user_version = 2")
    store = LocalStore.open(path)
    [old] = store.page(4)
    assert old.text == "old" and old.sender == 0
    store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def pb_room(room: int, role: int, *uids: int, name: str = "r") -> pb.Room:
    members = [pb.Member(uid=uid, username=f"u{uid}", role=Role.MEMBER) for uid in uids]
    return pb.Room(id=room, name=name, members=members, my_role=pb.Member.Role.ValueType(role))


async def test_room_table_applies_answers_and_pushes() -> None:
    store = LocalStore.open(":memory:")
    seen: list[RoomEvent] = []
    table = RoomTable(store, seen.append)
    ok = pb.RoomResponse.SUCCESS

    listing = table.request(Op.LIST)
    table.expect_silently(listing)
    table.on_response(
        pb.RoomResponse(
            code=ok, op=Op.LIST, request_id=listing.request_id, rooms=[pb_room(1, Role.OWNER, 1)]
        )
    )
    assert [type(e) for e in seen] == [RoomChanged] and store.peer_name(-1) == "r"
    # Pushed: an invitation, then a rename of room 1, then room 1 taken away.
    table.on_response(pb.RoomResponse(code=ok, op=Op.EVENT, rooms=[pb_room(2, Role.INVITED, 4)]))
    table.on_response(
        pb.RoomResponse(code=ok, op=Op.EVENT, rooms=[pb_room(1, Role.OWNER, 1, name="s")])
    )
    table.on_response(pb.RoomResponse(code=ok, op=Op.EVENT, rooms=[pb.Room(id=1, name="s")]))
    assert [type(e) for e in seen[1:]] == [RoomInvited, RoomChanged, RoomRemoved]
    assert list(table.rooms) == [2] and store.peer_name(4) == "u4"

    # An answer resolves exactly its call; a successful DECLINE removes the room.
    decline = table.request(Op.DECLINE, 2)
    waiting = table.expect(decline)
    other = table.request(Op.MEMBERS, 2)
    other_waiting = table.expect(other)
    table.on_response(pb.RoomResponse(code=ok, op=Op.DECLINE, request_id=decline.request_id))
    result = await waiting
    assert result.ok and result.room is None and not other_waiting.done()
    assert table.rooms == {} and isinstance(seen[-1], RoomRemoved)
    table.fail_all(ConnectionError("gone"))
    with pytest.raises(ConnectionError):
        await other_waiting


def test_tail_lines_for_rooms_name_room_and_sender_and_hide_the_blocked() -> None:
    session = ClientSession(
        Endpoint("relay.invalid", 1),
        "alice",
        "pw",
        trust=TrustPolicy.plaintext(),
        store=LocalStore.open(":memory:"),
        device="tail@box",
    )
    session.store.set_peer_names([(-3, "dev\x1b[31m team"), (7, "bob")])
    session.buddies = {9: Buddy(9, "mallory", False, pb.User.BLOCKED, 2)}
    said = session.store.add_incoming(room_message(1, "hi\x07", msg_id=11), "tail@box")
    event = session.store.add_incoming(room_message(2, "rename ops", sender=7), "tail@box")
    blocked = session.store.add_incoming(room_message(3, "spam", sender=9, msg_id=12), "")
    assert said is not None and event is not None and blocked is not None
    line = room_line(session, said)
    assert line is not None and line.endswith("[dev[31m team] bob: hi")
    assert (room_line(session, event) or "").endswith(
        "[dev[31m team] * bob renamed the room to ops"
    )
    assert room_line(session, blocked) is None
