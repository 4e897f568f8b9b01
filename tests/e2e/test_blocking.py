"""Blocking on the real relay (PROTOCOL.md section 12): the relation ends, the blocked
user's requests, invitations and one-to-one messages are dropped without revealing the
block, room messages still reach the room, and only v2.1 sessions see BLOCKED."""

from __future__ import annotations

from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tests.e2e.test_rooms import Code, Op, room_op
from tests.harness import RelayProcess
from tests.wire import WireClient, make_buddies


def _login(relay: RelayProcess, name: str, device: str = "tui") -> WireClient:
    conn = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
    assert conn.login(name, version=2, device=device).code == pb.LoginResponse.SUCCESS
    return conn


def _relations(conn: WireClient) -> dict[int, int]:
    conn.send(FrameType.LIST_BUDDY, pb.ListBuddyRequest())
    conn.send(FrameType.LIST_USER, pb.ListUserRequest(limit=1))
    latest = None
    while True:
        frame_type, message = conn.recv(timeout=10)
        if frame_type == FrameType.LIST_USER:
            break
        if frame_type == FrameType.LIST_BUDDY:
            latest = message
    assert latest is not None
    return {u.uid: u.relation for u in latest.users}


def _block(conn: WireClient, uid: int, blocked: bool = True) -> int:
    conn.send(FrameType.BLOCK, pb.BlockRequest(uid=uid, blocked=blocked))
    return conn.expect(
        FrameType.BLOCK,
        pb.BlockResponse,
        skip=(FrameType.LIST_BUDDY, FrameType.SYNC, FrameType.ROOM, FrameType.MESSAGE),
    ).code


def test_a_block_ends_the_relation_and_drops_what_the_blocked_user_sends(
    relay: RelayProcess,
) -> None:
    for name in ("alice", "bob"):
        setup = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        setup.register(name)
        setup.close()
    alice, bob = _login(relay, "alice"), _login(relay, "bob")
    make_buddies(alice, bob)
    room = room_op(alice, Op.CREATE, name="shared").rooms[0].id
    assert room_op(alice, Op.INVITE, room, uid=bob.uid).code == Code.SUCCESS
    assert room_op(bob, Op.JOIN, room).code == Code.SUCCESS

    assert _block(alice, bob.uid) == pb.BlockResponse.SUCCESS
    assert _relations(alice) == {bob.uid: pb.User.BLOCKED}
    assert alice.uid not in _relations(bob)  # the relation is gone on both sides

    bob.send_text(alice.uid, "hello?", msg_id=1)
    ack = bob.expect(
        FrameType.ACK,
        pb.Ack,
        skip=(FrameType.LIST_BUDDY, FrameType.SYNC, FrameType.ROOM, FrameType.MESSAGE),
    )
    assert ack.code == pb.Ack.NOT_BUDDY  # as for any non-buddy
    assert bob.add_buddy(alice.uid) == pb.AddBuddyResponse.PENDING  # as for any request
    assert _relations(alice) == {bob.uid: pb.User.BLOCKED}  # but nothing reached alice
    second = room_op(bob, Op.CREATE, name="bobs").rooms[0].id
    assert room_op(bob, Op.INVITE, second, uid=alice.uid).code == Code.SUCCESS
    assert [r.id for r in room_op(alice, Op.LIST).rooms] == [room]  # no invitation

    # Room messages still reach the room (clients hide them).
    bob.send(FrameType.MESSAGE, pb.Message(room=room, msg="to the room", id=2))
    assert (
        bob.expect(
            FrameType.ACK,
            pb.Ack,
            skip=(FrameType.LIST_BUDDY, FrameType.SYNC, FrameType.ROOM, FrameType.MESSAGE),
        ).code
        == pb.Ack.OK
    )
    while True:
        frame_type, message = alice.recv(timeout=10)
        if frame_type == FrameType.MESSAGE and message.msg == "to the room":
            break

    # A plain v2 session of alice sees no BLOCKED entry, and may not BLOCK.
    plain = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
    assert plain.login("alice", version=2).code == pb.LoginResponse.SUCCESS
    assert _relations(plain) == {}
    plain.send(FrameType.BLOCK, pb.BlockRequest(uid=bob.uid, blocked=False))
    reset = plain.expect_closed()
    assert reset is not None and reset.code == pb.Reset.PROTOCOL_MISMATCH

    assert _block(alice, bob.uid, blocked=False) == pb.BlockResponse.SUCCESS
    assert _relations(alice) == {}
    assert bob.add_buddy(alice.uid) == pb.AddBuddyResponse.PENDING
    assert _relations(alice) == {bob.uid: pb.User.REQUEST_RECEIVED}
    assert _block(alice, alice.uid) == pb.BlockResponse.FAILED
    assert _block(alice, 9999) == pb.BlockResponse.FAILED
