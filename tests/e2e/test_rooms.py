"""Rooms on the real relay (PROTOCOL.md section 10): membership with consent, fan-out to
every device of every member in one order, history for new members, events, limits, and
nothing of it for v1 and plain v2 sessions."""

from __future__ import annotations

import contextlib
import itertools
import random
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tests.harness import RelayProcess
from tests.wire import WireClient

Op = pb.RoomRequest
Code = pb.RoomResponse
_request_ids = itertools.count(1)
# Frames a helper read while waiting for another one, per connection, in arrival order:
# the next reader of that connection gets them first.
_stash: dict[int, list[tuple[int, Any]]] = {}


def _recv(conn: WireClient, timeout: float = 10.0) -> tuple[int, Any]:
    stashed = _stash.get(id(conn))
    if stashed:
        return stashed.pop(0)
    return conn.recv(timeout=timeout)


def _wait_for(conn: WireClient, wanted: Callable[[int, Any], bool]) -> Any:
    """The first frame (stashed or new) ``wanted`` accepts; the others are stashed."""
    stashed = _stash.setdefault(id(conn), [])
    for index, (frame_type, message) in enumerate(stashed):
        if wanted(frame_type, message):
            del stashed[index]
            return message
    while True:
        frame_type, message = conn.recv(timeout=10)
        if wanted(frame_type, message):
            return message
        stashed.append((frame_type, message))


def _client(relay: RelayProcess) -> WireClient:
    return WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)


def _users(relay: RelayProcess, *names: str) -> dict[str, int]:
    uids = {}
    for name in names:
        conn = _client(relay)
        conn.register(name)
        conn.close()
    for name in names:
        conn = _device(relay, name, "setup")
        uids[name] = conn.uid
        conn.close()
    return uids


def _device(relay: RelayProcess, name: str, device: str, since_seq: int = 0) -> WireClient:
    conn = _client(relay)
    response = conn.login(name, version=2, device=device, since_seq=since_seq)
    assert response.code == pb.LoginResponse.SUCCESS, response
    return conn


def room_op(
    conn: WireClient, op: int, room: int = 0, name: str = "", uid: int = 0
) -> pb.RoomResponse:
    """Send a RoomRequest; return its response (EVENT pushes and other traffic skipped)."""
    request_id = next(_request_ids)
    conn.send(
        FrameType.ROOM, pb.RoomRequest(op=op, room=room, name=name, uid=uid, request_id=request_id)
    )
    response: pb.RoomResponse = _wait_for(
        conn, lambda kind, message: kind == FrameType.ROOM and message.request_id == request_id
    )
    return response


def _room_with(
    relay: RelayProcess, owner: str, members: list[str], name: str = "ops"
) -> tuple[int, dict[str, WireClient]]:
    """A room ``name`` created by ``owner`` with ``members`` invited and joined; returns the
    room and each user's device "tui" (logged in before the room existed)."""
    devices = {user: _device(relay, user, "tui") for user in [owner, *members]}
    created = room_op(devices[owner], Op.CREATE, name=name)
    assert created.code == Code.SUCCESS, created
    room = created.rooms[0].id
    for user in members:
        invited = room_op(devices[owner], Op.INVITE, room, uid=devices[user].uid)
        assert invited.code == Code.SUCCESS, invited
        joined = room_op(devices[user], Op.JOIN, room)
        assert joined.code == Code.SUCCESS and joined.rooms[0].my_role == pb.Member.MEMBER
    return room, devices


def _send(conn: WireClient, room: int, text: str, msg_id: int) -> pb.Ack:
    conn.send(
        FrameType.MESSAGE, pb.Message(room=room, type=pb.Message.MESSAGE, msg=text, id=msg_id)
    )
    ack: pb.Ack = _wait_for(
        conn, lambda kind, message: kind == FrameType.ACK and message.id == msg_id
    )
    return ack


def _room_messages(conn: WireClient, count: int, events: bool = True) -> list[pb.Message]:
    """The next ``count`` room messages on ``conn``: timeline events included, or skipped."""
    got: list[pb.Message] = []
    while len(got) < count:
        frame_type, message = _recv(conn)
        if (
            frame_type == FrameType.MESSAGE
            and message.room
            and (events or message.type != pb.Message.ROOM_EVENT)
        ):
            got.append(message)
    return got


def _gather(conn: WireClient, acks: int, messages: int) -> tuple[list[pb.Ack], list[pb.Message]]:
    """Read until ``acks`` OK Acks and ``messages`` room messages (events skipped) came."""
    got_acks: list[pb.Ack] = []
    got: list[pb.Message] = []
    while len(got_acks) < acks or len(got) < messages:
        frame_type, message = _recv(conn)
        if frame_type == FrameType.ACK and not message.delivered:
            got_acks.append(message)
        elif frame_type == FrameType.MESSAGE and message.type != pb.Message.ROOM_EVENT:
            got.append(message)
    return got_acks, got


def test_every_member_gets_every_message_once_in_one_order(relay: RelayProcess) -> None:
    names = ("ann", "ben", "cat")
    _users(relay, *names)
    room, devices = _room_with(relay, "ann", ["ben", "cat"])
    ann_tail = _device(relay, "ann", "tail")  # a second device of a sender
    expected = [f"m{number} from {names[number % 3]}" for number in range(9)]
    for number, text in enumerate(expected):
        devices[names[number % 3]].send(
            FrameType.MESSAGE,
            pb.Message(room=room, type=pb.Message.MESSAGE, msg=text, id=100 + number),
        )
    _, copies = _gather(ann_tail, acks=0, messages=9)
    relay_order = [m.msg for m in copies]  # everything, ann's own as outgoing copies
    assert sorted(relay_order) == sorted(expected)
    assert [m.outgoing for m in copies] == [m.msg.endswith("ann") for m in copies]
    assert all(m.uid == devices[m.msg.split()[-1]].uid for m in copies)
    for user, conn in devices.items():
        acks, got = _gather(conn, acks=3, messages=6)
        assert [(a.code, a.seq) for a in acks] == [(pb.Ack.OK, 0)] * 3 and acks[0].timestamp
        assert all(m.room == room and not m.outgoing for m in got)
        # The relay's one order, without the member's own (its sending device has them).
        assert [m.msg for m in got] == [t for t in relay_order if not t.endswith(user)], user
        mine = [t for t in relay_order if t.endswith(user)]
        assert mine == [t for t in expected if t.endswith(user)]  # each sender's own order
        conn.round_trip()  # and nothing more came: nothing twice


def test_outsiders_invitees_and_old_sessions_see_nothing(relay: RelayProcess) -> None:
    uids = _users(relay, "ann", "ben", "eve", "ivy")
    room, devices = _room_with(relay, "ann", ["ben"])
    eve = _device(relay, "eve", "tui")
    eve.send(FrameType.MESSAGE, pb.Message(room=room, msg="let me in", id=1))
    assert eve.expect(FrameType.ACK, pb.Ack).code == pb.Ack.NOT_MEMBER
    assert room_op(eve, Op.MEMBERS, room).code == Code.NO_SUCH_ROOM
    assert room_op(eve, Op.JOIN, room).code == Code.NO_SUCH_ROOM
    assert room_op(devices["ann"], Op.INVITE, room, uid=uids["ivy"]).code == Code.SUCCESS
    ivy = _device(relay, "ivy", "tui")
    listed = room_op(ivy, Op.LIST)
    assert [(r.id, r.my_role) for r in listed.rooms] == [(room, pb.Member.INVITED)]
    ivy.send(FrameType.MESSAGE, pb.Message(room=room, msg="not yet", id=2))
    assert (
        ivy.expect(
            FrameType.ACK, pb.Ack, skip=(FrameType.LIST_BUDDY, FrameType.SYNC, FrameType.ROOM)
        ).code
        == pb.Ack.NOT_MEMBER
    )
    # A plain v2 and a v1 session of a member: no ROOM frames, no room messages.
    plain = _client(relay)
    assert plain.login("ben", version=2).code == pb.LoginResponse.SUCCESS
    old = _client(relay)
    assert old.login("ann", version=1).code == pb.LoginResponse.SUCCESS
    _send(devices["ben"], room, "members only", 3)
    assert _room_messages(devices["ann"], 1, events=False)[0].msg == "members only"
    for conn in (plain, old):
        conn.round_trip()  # nothing came before its answer
    plain.send(FrameType.ROOM, pb.RoomRequest(op=Op.LIST))
    reset = plain.expect_closed()
    assert reset is not None and reset.code == pb.Reset.PROTOCOL_MISMATCH


def test_a_new_member_gets_the_last_history_then_live_traffic(tmp_path: Path) -> None:
    with RelayProcess(tmp_path, extra_args=["--room-history", "3"]) as relay:
        uids = _users(relay, "ann", "ben")
        room, devices = _room_with(relay, "ann", [])
        for number in range(5):
            _send(devices["ann"], room, f"old {number}", number + 1)
        ben = _device(relay, "ben", "tui")
        assert room_op(devices["ann"], Op.INVITE, room, uid=uids["ben"]).code == Code.SUCCESS
        assert room_op(ben, Op.JOIN, room).code == Code.SUCCESS
        _send(devices["ann"], room, "new", 9)
        got = _room_messages(ben, 5)
        assert [(m.type, m.msg) for m in got] == [
            (pb.Message.MESSAGE, "old 3"),
            (pb.Message.MESSAGE, "old 4"),
            (pb.Message.ROOM_EVENT, f"invite {uids['ben']}"),
            (pb.Message.ROOM_EVENT, "join"),
            (pb.Message.MESSAGE, "new"),
        ]
        assert [m.seq for m in got] == sorted(m.seq for m in got)


def test_events_kick_leave_and_the_last_member_deleting_the_room(relay: RelayProcess) -> None:
    uids = _users(relay, "ann", "ben", "cat")
    room, devices = _room_with(relay, "ann", ["ben", "cat"], name="night shift")
    ann, ben, cat = devices["ann"], devices["ben"], devices["cat"]
    assert room_op(ben, Op.KICK, room, uid=uids["cat"]).code == Code.NOT_ALLOWED
    assert room_op(ben, Op.RENAME, room, name="mine").code == Code.NOT_ALLOWED
    renamed = room_op(ann, Op.RENAME, room, name="day shift")
    assert renamed.code == Code.SUCCESS and renamed.rooms[0].name == "day shift"
    kicked = room_op(ann, Op.KICK, room, uid=uids["cat"])
    assert kicked.code == Code.SUCCESS
    assert [m.uid for m in kicked.rooms[0].members] == [uids["ann"], uids["ben"]]
    # cat's device hears of it at once (an EVENT with no members: not its room any more).
    _wait_for(
        cat,
        lambda kind, message: (
            kind == FrameType.ROOM and message.op == Op.EVENT and not message.rooms[0].members
        ),
    )
    _send(ann, room, "after the kick", 50)
    cat.send(FrameType.MESSAGE, pb.Message(room=room, msg="still here?", id=51))
    assert (
        cat.expect(
            FrameType.ACK,
            pb.Ack,
            skip=(FrameType.LIST_BUDDY, FrameType.SYNC, FrameType.ROOM, FrameType.MESSAGE),
        ).code
        == pb.Ack.NOT_MEMBER
    )
    cat.round_trip()
    timeline = [m.msg for m in _room_messages(ben, 7)]
    assert timeline == [
        f"invite {uids['ben']}",  # from the history ben got on joining
        "join",
        f"invite {uids['cat']}",
        "join",
        "rename day shift",
        f"kick {uids['cat']}",
        "after the kick",
    ]
    assert room_op(ann, Op.LEAVE, room).code == Code.SUCCESS
    members = room_op(ben, Op.MEMBERS, room)
    assert [(m.uid, m.role) for m in members.rooms[0].members] == [(uids["ben"], pb.Member.OWNER)]
    assert room_op(ben, Op.LEAVE, room).code == Code.SUCCESS  # the last member: room gone
    assert room_op(ben, Op.MEMBERS, room).code == Code.NO_SUCH_ROOM
    assert room_op(ann, Op.LIST).rooms == []


def test_limits_refuse_with_their_codes(tmp_path: Path) -> None:
    args = ["--max-room-members", "2", "--max-rooms-per-user", "1"]
    with RelayProcess(tmp_path, extra_args=args) as relay:
        uids = _users(relay, "ann", "ben", "cat")
        ann = _device(relay, "ann", "tui")
        for bad in ("", " lead", "two  spaces", "x" * 65, "bell\x07", "\u202eevil"):
            assert room_op(ann, Op.CREATE, name=bad).code == Code.INVALID_NAME, bad
        room = room_op(ann, Op.CREATE, name="only one").rooms[0].id
        assert room_op(ann, Op.CREATE, name="second").code == Code.TOO_MANY_ROOMS
        assert room_op(ann, Op.INVITE, room, uid=uids["ben"]).code == Code.SUCCESS
        assert room_op(ann, Op.INVITE, room, uid=uids["cat"]).code == Code.ROOM_FULL
        ben = _device(relay, "ben", "tui")
        assert room_op(ben, Op.CREATE, name="bens").code == Code.TOO_MANY_ROOMS  # invited counts
        assert room_op(ann, Op.INVITE, room, uid=9999).code == Code.FAILED


@pytest.mark.parametrize("seed", [3])
def test_three_senders_2000_messages_cuts_and_two_sigkills(tmp_path: Path, seed: int) -> None:
    """Three members each send from one device while another device of each reads; the
    connections are cut at random and the relay is SIGKILLed twice. In the end every
    reader has every message exactly once, and all readers have them in the same order."""
    rng = random.Random(seed)
    names = ("ann", "ben", "cat")
    texts = [f"{names[n % 3]}-{n}" for n in range(2000)]
    text_of = {number + 1: text for number, text in enumerate(texts)}
    id_of = {text: number for number, text in text_of.items()}
    seen: dict[str, dict[int, str]] = {name: {} for name in names}
    acked: set[str] = set()
    with RelayProcess(tmp_path) as relay:
        _users(relay, *names)
        room, setup = _room_with(relay, "ann", ["ben", "cat"])
        for conn in setup.values():
            conn.close()
        kills = [len(texts) // 3, 2 * len(texts) // 3]
        senders: dict[str, WireClient] = {}
        readers: dict[str, WireClient] = {}
        sent = 0
        while len(acked) < len(texts):
            todo = (
                texts[sent : sent + 50]
                if sent < len(texts)
                else [t for t in texts if t not in acked][:50]
            )
            sent += 50
            senders = senders or {name: _device(relay, name, "sender") for name in names}
            readers = readers or {
                name: _device(relay, name, "reader", since_seq=max(seen[name], default=0))
                for name in names
            }
            for text in todo:
                message = pb.Message(room=room, type=pb.Message.MESSAGE, msg=text, id=id_of[text])
                senders[text.split("-")[0]].send(FrameType.MESSAGE, message)
            kill = bool(kills) and sent >= kills[0]
            if kill:
                kills.pop(0)
                assert relay.process is not None
                relay.process.send_signal(signal.SIGKILL)
                relay.process.wait()
            for conn in senders.values():
                _collect_acks(conn, acked, text_of)
            for name, conn in readers.items():
                _read_room(conn, seen[name])
            if kill:
                relay.restart()
            if kill or rng.random() < 0.15:  # a cut: everyone reconnects
                for conn in (*senders.values(), *readers.values()):
                    conn.close()
                senders, readers = {}, {}
        for name in names:
            conn = _device(relay, name, "reader", since_seq=max(seen[name], default=0))
            _read_room(conn, seen[name])
        assert not kills and relay.logs().count("listening on") == 3  # two kills, two starts
    orders = {name: [seen[name][s] for s in sorted(seen[name])] for name in names}
    for name, order in orders.items():
        messages = [t for t in order if t in id_of]
        assert len(messages) == len(set(messages)), f"{name} got a message twice"
        assert set(messages) == set(texts), f"{name} misses messages"
        assert sorted(seen[name]) == list(range(1, len(seen[name]) + 1)), f"{name}: seq gaps"
    assert orders["ann"] == orders["ben"] == orders["cat"], "readers disagree on the order"


def _collect_acks(conn: WireClient, acked: set[str], text_of: dict[int, str]) -> None:
    """OK Acks until the answer of a Ping sent now, or the connection ends."""
    with contextlib.suppress(OSError):
        conn.send(FrameType.PING, pb.Ping(nonce=1))
    while True:
        try:
            frame_type, message = conn.recv(timeout=20)
        except (ConnectionError, OSError, EOFError):
            return
        if frame_type == FrameType.ACK and message.code == pb.Ack.OK:
            acked.add(text_of[message.id])
        elif frame_type in (FrameType.PING, FrameType.RESET):
            return


def _read_room(conn: WireClient, seen: dict[int, str]) -> None:
    """Room messages by seq until the answer of a Ping sent now (then Ack them all), or the
    connection ends."""
    try:
        conn.send(FrameType.PING, pb.Ping(nonce=5))
    except OSError:
        return
    while True:
        try:
            frame_type, message = conn.recv(timeout=20)
        except (ConnectionError, OSError, EOFError):
            return
        if frame_type == FrameType.MESSAGE and message.room:
            assert seen.get(message.seq, message.msg) == message.msg
            seen[message.seq] = message.msg
        elif frame_type == FrameType.PING:
            if seen:
                conn.send(FrameType.ACK, pb.Ack(seq=max(seen)))
            return
        elif frame_type == FrameType.RESET:
            return
