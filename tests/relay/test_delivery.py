"""relay.delivery without a relay process: live pushes, the backlog pump and its Sync, v1
write accounting. An in-process Relay on a real SQLite store, real connections on socket
pairs; what a session would receive is read back from its staged output."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import FrameDecoder, FrameType
from protocol import chat_pb2 as pb
from relay import delivery
from relay.connection import Connection
from relay.handlers import HANDLERS
from relay.loop import Relay
from relay.store import AddBuddyOutcome
from tests.relay.inprocess import in_process_relay, online

ALICE, BOB = 1, 2


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    """alice and bob are buddies."""
    with in_process_relay(tmp_path / "relay.db", "alice", "bob") as relay:
        relay.store.add_buddy(ALICE, BOB)
        assert relay.store.add_buddy(BOB, ALICE) == AddBuddyOutcome.SUCCESS
        relay.store.commit()
        yield relay


_online = online


def _send_text(relay: Relay, sender: Connection, to: int, text: str, msg_id: int) -> None:
    message = pb.Message(uid=to, type=pb.Message.MESSAGE, msg=text, id=msg_id)
    HANDLERS[FrameType.MESSAGE](relay, sender, message.SerializeToString())


def _staged(conn: Connection) -> list[tuple[int, pb.Message | pb.Sync]]:
    frames = []
    for frame_type, payload in FrameDecoder(1 << 20).feed(conn.take_staged()):
        if frame_type == FrameType.MESSAGE:
            frames.append((frame_type, pb.Message.FromString(payload)))
        elif frame_type == FrameType.SYNC:
            frames.append((frame_type, pb.Sync.FromString(payload)))
    return frames


def test_a_live_push_carries_the_sender_and_the_next_seq(relay: Relay) -> None:
    alice, bob = _online(relay, ALICE), _online(relay, BOB)
    for number in (1, 2, 3):
        _send_text(relay, alice, BOB, f"hi {number}", msg_id=100 + number)
    pushed = [message for _, message in _staged(bob)]
    assert [(m.uid, m.seq, m.msg) for m in pushed] == [
        (ALICE, 1, "hi 1"),
        (ALICE, 2, "hi 2"),
        (ALICE, 3, "hi 3"),
    ]
    assert len(alice.pending_acks) == 3  # one OK Ack per message, queued after the read


def test_the_backlog_comes_in_order_after_a_cursor_then_sync(relay: Relay) -> None:
    alice = _online(relay, ALICE)
    for number in range(1, 6):  # bob is offline: stored only
        _send_text(relay, alice, BOB, f"m{number}", msg_id=number)
    relay.inboxes.flush_rows()
    relay.store.commit()
    bob = _online(relay, BOB)
    delivery.start_backlog(relay, bob, since_seq=2, send_sync=True)
    frames = _staged(bob)
    assert [(kind, getattr(m, "seq", None)) for kind, m in frames[:-1]] == [
        (FrameType.MESSAGE, 3),
        (FrameType.MESSAGE, 4),
        (FrameType.MESSAGE, 5),
    ]
    kind, sync = frames[-1]
    assert kind == FrameType.SYNC and sync.head_seq == 5
    assert not bob.catching_up


def test_a_v1_message_counts_as_delivered_once_its_frame_is_written(relay: Relay) -> None:
    alice, bob = _online(relay, ALICE), _online(relay, BOB, version=1)
    _send_text(relay, alice, BOB, "for v1", msg_id=7)
    assert [entry[1] for entry in bob.v1_unacked] == [1]  # pushed, not yet written
    relay.inboxes.flush_rows()
    relay.store.commit()
    bob.release_staged()
    assert bob.flush()
    delivery.note_v1_written(relay, bob)
    assert not bob.v1_unacked
    delivery.apply_deliveries(relay)
    relay.store.commit()
    assert relay.store.inbox_count(BOB) == 0  # delivered: gone from the store


def test_room_copies_and_direct_messages_to_one_box_keep_seq_order_on_the_wire(
    relay: Relay,
) -> None:
    """Room copies are batched per box for the pass; a direct message to the same box in
    between closes the batch first, so the box's seqs are pushed and stored in order."""
    from relay.rooms import MEMBER

    alice, bob = _online(relay, ALICE, device="tui"), _online(relay, BOB, device="tui")
    room = relay.store.rooms.create_room("r", ALICE, 0)
    relay.store.rooms.set_member(room, BOB, MEMBER, 0)
    relay.rooms.forget_all()
    handler = HANDLERS[FrameType.MESSAGE]

    def to_room(text: str, msg_id: int) -> None:
        message = pb.Message(room=room, type=pb.Message.MESSAGE, msg=text, id=msg_id)
        handler(relay, alice, message.SerializeToString())

    to_room("room 1", 1)
    to_room("room 2", 2)
    _send_text(relay, alice, BOB, "direct", msg_id=3)
    to_room("room 3", 4)
    relay.inboxes.flush_rows()
    relay.store.commit()
    pushed = [message for _, message in _staged(bob)]
    assert [(m.seq, m.msg, m.room) for m in pushed] == [
        (1, "room 1", room),
        (2, "room 2", room),
        (3, "direct", 0),
        (4, "room 3", room),
    ]
    stored = relay.store.inbox_after(bob.box, 0, 10)
    frames = FrameDecoder(1 << 20).feed(b"".join(run.frames for run in stored))
    assert [pb.Message.FromString(f.payload).seq for f in frames] == [1, 2, 3, 4]


@pytest.mark.parametrize("head", [126, 16382, 2_097_150, 2**35])
def test_room_copies_carry_the_right_seq_across_varint_sizes(relay: Relay, head: int) -> None:
    """The fan-out loop writes the seq field by hand for 1-, 2- and 3-byte varints."""
    from relay.rooms import MEMBER

    alice, bob = _online(relay, ALICE, device="tui"), _online(relay, BOB, device="tui")
    room = relay.store.rooms.create_room("r", ALICE, 0)
    relay.store.rooms.set_member(room, BOB, MEMBER, 0)
    relay.rooms.forget_all()
    relay.inboxes.head_seq[bob.box] = head
    relay.inboxes.floor[bob.box] = head
    relay.inboxes.stored_bytes[bob.box] = 0
    for number in range(3):
        message = pb.Message(room=room, type=pb.Message.MESSAGE, msg=f"m{number}", id=9 + number)
        HANDLERS[FrameType.MESSAGE](relay, alice, message.SerializeToString())
    relay.inboxes.flush_rows()
    pushed = [message for _, message in _staged(bob)]
    assert [(m.seq, m.msg) for m in pushed] == [(head + n + 1, f"m{n}") for n in range(3)]
