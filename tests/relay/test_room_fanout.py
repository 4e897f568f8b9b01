"""Room fan-out once per pass (relay.room_passes, relay.run_frames, relay.room_delivery) and
shared runs in the store: an in-process Relay on a real SQLite store, sessions on socket
pairs, what a session would receive read back from its staged output, what the store keeps
read back with its own readers."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import FrameDecoder, FrameType
from protocol import chat_pb2 as pb
from protocol.framing import Frame, pack_header
from relay.connection import Connection
from relay.forwarding import seq_field
from relay.handlers import HANDLERS
from relay.loop import Relay
from relay.room_passes import RoomPass
from relay.rooms import MEMBER
from relay.run_frames import FramePieces, run_frames, run_size
from relay.store import MAX_RUN_BYTES, MAX_RUN_MESSAGES
from tests.relay.inprocess import in_process_relay, online

ANN, BEN, CAT, DAN = 1, 2, 3, 4


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    with in_process_relay(tmp_path / "relay.db", "ann", "ben", "cat", "dan") as relay:
        yield relay


def _room(relay: Relay, *members: int) -> int:
    room = relay.store.rooms.create_room("ops", ANN, 0)
    for uid in members:
        relay.store.rooms.set_member(room, uid, MEMBER, 0)
    relay.store.commit()
    relay.rooms.forget_all()
    return room


def _say(relay: Relay, conn: Connection, room: int, text: str, msg_id: int) -> None:
    message = pb.Message(room=room, type=pb.Message.MESSAGE, msg=text, id=msg_id)
    HANDLERS[FrameType.MESSAGE](relay, conn, message.SerializeToString())


def _messages(data: bytes) -> list[pb.Message]:
    return [
        pb.Message.FromString(payload)
        for frame_type, payload in FrameDecoder(1 << 20).feed(data)
        if frame_type == FrameType.MESSAGE
    ]


def _stored(relay: Relay, box: int) -> list[pb.Message]:
    runs = relay.store.inbox_after(box, 0, 100)
    return _messages(b"".join(run.frames for run in runs))


def _copy_by_copy(bodies: list[bytes], first_seq: int) -> bytes:
    frames = []
    for offset, body in enumerate(bodies):
        field = seq_field(first_seq + offset)
        frames.append(pack_header(len(body) + len(field), int(FrameType.MESSAGE)) + body + field)
    return b"".join(frames)


FIRST_SEQS = [1, 2, 100, 127, 128, 129, 16_300, 16_383, 16_384, 2**21 - 3, 2**28 - 5, 2**35]


@pytest.mark.parametrize("first_seq", FIRST_SEQS)
def test_run_frames_are_the_copy_by_copy_frames_across_varint_sizes(first_seq: int) -> None:
    rng = random.Random(first_seq)
    bodies = [rng.randbytes(rng.randrange(1, 300)) for _ in range(MAX_RUN_MESSAGES)]
    pieces = FramePieces(bodies)
    for start, end in ((0, len(bodies)), (5, 9), (63, 64)):
        built = run_frames(pieces, start, end, first_seq)
        assert built == _copy_by_copy(bodies[start:end], first_seq)
    whole = run_frames(pieces, 0, len(bodies), first_seq)
    assert run_size(pieces.body_bytes, len(bodies), first_seq) == len(whole)


def test_a_pass_is_cut_into_runs_by_message_count_and_size() -> None:
    room_pass = RoomPass(0)
    for _ in range(MAX_RUN_MESSAGES + 10):
        room_pass.add(b"x" * 10, ANN, 1)
    room_pass.add(b"y" * (MAX_RUN_BYTES - 100), ANN, 1)
    room_pass.add(b"z" * 10, ANN, 1)
    room_pass.add(b"w" * (MAX_RUN_BYTES + 1), ANN, 1)  # alone larger than a run: its own
    segments = room_pass.segments()
    assert [(start, len(p.bodies)) for start, p in segments] == [
        (0, MAX_RUN_MESSAGES),
        (MAX_RUN_MESSAGES, 10),
        (MAX_RUN_MESSAGES + 10, 2),
        (MAX_RUN_MESSAGES + 12, 1),
    ]
    assert b"".join(b for _, p in segments for b in p.bodies) == b"".join(room_pass.bodies)


def test_a_pass_of_room_messages_is_stored_once_for_every_member_box(relay: Relay) -> None:
    """ben is online, cat offline: both get every message, in order, with their own seqs;
    the bodies are stored once, and released with the last box that held them."""
    ann, ben = online(relay, ANN, device="tui"), online(relay, BEN, device="tui")
    cat_box = relay.devices.register(CAT, "tui", 0)
    relay.inboxes.head_seq[cat_box] = 1_000  # cat's box is further on: other seqs
    relay.inboxes.floor[cat_box] = 1_000
    relay.inboxes.stored_bytes[cat_box] = 0
    room = _room(relay, BEN, CAT)
    texts = [f"line {n} <b>[red]" for n in range(5)]
    for number, text in enumerate(texts):
        _say(relay, ann, room, text, 10 + number)
    relay.inboxes.flush_rows()
    relay.store.commit()
    pushed = _messages(ben.take_staged())
    assert [(m.seq, m.msg, m.uid, m.room) for m in pushed] == [
        (n + 1, text, ANN, room) for n, text in enumerate(texts)
    ]
    assert [(m.seq, m.msg) for m in _stored(relay, ben.box)] == [(m.seq, m.msg) for m in pushed]
    assert [(m.seq, m.msg) for m in _stored(relay, cat_box)] == [
        (1_001 + n, text) for n, text in enumerate(texts)
    ]
    assert ann.take_staged().count(b"line") == 0  # the sending box gets no copy
    con = relay.store._con
    assert con.execute("SELECT count(*), max(refs) FROM shared_runs").fetchone() == (1, 2)
    ben_bytes = relay.store.inbox_bytes(ben.box)
    assert (
        ben_bytes
        == relay.inboxes.bytes_of(ben.box)
        == len(b"".join(run.frames for run in relay.store.inbox_after(ben.box, 0, 10)))
    )
    assert relay.store.delete_inbox_through(ben.box, 5).freed_bytes == ben_bytes
    assert con.execute("SELECT refs FROM shared_runs").fetchall() == [(1,)]
    relay.store.delete_many_through({cat_box: 1_005, ben.box: 5})
    assert con.execute("SELECT count(*) FROM shared_runs").fetchone() == (0,)
    assert relay.store.inbox_count(cat_box) == 0


def test_a_partly_delivered_shared_run_is_read_from_the_next_message(relay: Relay) -> None:
    ann, ben = online(relay, ANN, device="tui"), online(relay, BEN, device="tui")
    room = _room(relay, BEN)
    for number in range(4):
        _say(relay, ann, room, f"m{number}", 20 + number)
    relay.inboxes.flush_rows()
    relay.store.delete_inbox_through(ben.box, 2)
    relay.store.commit()
    assert [(m.seq, m.msg) for m in _stored(relay, ben.box)] == [(3, "m2"), (4, "m3")]
    relay.store.inboxes.remove_box(ben.box)  # a forgotten device: its rows and their references go
    assert relay.store._con.execute("SELECT count(*) FROM shared_runs").fetchone() == (0,)


def test_a_kick_in_the_same_pass_keeps_what_was_sent_before_it(relay: Relay) -> None:
    """Room messages wait for the end of the pass; a membership change first fans out what
    was sent before it, to the members it was sent to."""
    ann, ben = online(relay, ANN, device="tui"), online(relay, BEN, device="tui")
    cat = online(relay, CAT, device="tui")
    room = _room(relay, BEN, CAT)
    _say(relay, ann, room, "before the kick", 30)
    kick = pb.RoomRequest(op=pb.RoomRequest.KICK, room=room, uid=CAT, request_id=1)
    HANDLERS[FrameType.ROOM](relay, ann, kick.SerializeToString())
    _say(relay, ann, room, "after the kick", 31)
    relay.inboxes.flush_rows()
    relay.store.commit()
    cat_texts = [m.msg for m in _messages(cat.take_staged()) if m.type == pb.Message.MESSAGE]
    ben_texts = [m.msg for m in _messages(ben.take_staged()) if m.type == pb.Message.MESSAGE]
    assert cat_texts == ["before the kick"]
    assert ben_texts == ["before the kick", "after the kick"]


def test_the_senders_other_devices_get_outgoing_copies_and_a_full_box_what_fits(
    relay: Relay,
) -> None:
    ann = online(relay, ANN, device="tui")
    ann_tail = online(relay, ANN, device="tail")
    ben, dan = online(relay, BEN, device="tui"), online(relay, DAN, device="tui")
    room = _room(relay, BEN, DAN)
    relay.inboxes.quota_messages = 2  # every box may hold two messages
    relay.inboxes.head_seq[dan.box] = 1  # dan's box already holds one message
    relay.inboxes.floor[dan.box] = 0
    relay.inboxes.stored_bytes[dan.box] = 0
    for number in range(3):
        _say(relay, ann, room, f"m{number}", 40 + number)
    relay.inboxes.flush_rows()
    relay.store.commit()
    tail = _messages(ann_tail.take_staged())
    assert [(m.msg, m.outgoing, m.uid) for m in tail] == [("m0", True, ANN), ("m1", True, ANN)]
    assert [m.msg for m in _messages(ben.take_staged())] == ["m0", "m1"]
    assert [m.msg for m in _messages(dan.take_staged())] == ["m0"]
    assert _messages(ann.take_staged()) == []


def test_a_schema_8_store_keeps_its_runs_readable(tmp_path: Path) -> None:
    """Step 9 adds the shared-run columns: rows written before it read and count as before."""
    from relay.store import Store, schema

    path = tmp_path / "relay.db"
    con = sqlite3.connect(path)
    for step in schema.MIGRATIONS[:8]:
        for statement in step:
            if isinstance(statement, str):
                con.execute(statement)
            else:
                statement(con, 3600)
    con.execute("PRAGMA user_version = 8")
    con.execute(
        "INSERT INTO users (uid, username, username_key, password_hash, created, head_seq)"
        " VALUES (1, 'ann', 'ann', 'h', 0, 2)"
    )
    frames = _copy_by_copy([b"\x22\x02hi", b"\x22\x03you"], 1)
    con.execute(
        "INSERT INTO inbox_runs (recipient, first_seq, last_seq, senders, client_ids, frames)"
        " VALUES (1, 1, 2, x'', x'', ?)",
        (frames,),
    )
    con.commit()
    con.close()
    with Store(path) as store:
        assert store._con.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS)
        assert b"".join(run.frames for run in store.inbox_after(1, 0, 10)) == frames
        assert store.inbox_bytes(1) == len(frames)
        assert store.delete_inbox_through(1, 2).freed_bytes == len(frames)


def test_an_error_in_the_fan_out_gives_the_pass_up_and_refuses_its_messages(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug met while storing a pass's room messages must not leave some acknowledged and
    missing: the pass is rolled back and answered for as a failed write is."""
    ann, ben = online(relay, ANN, device="tui"), online(relay, BEN, device="tui")
    room = _room(relay, BEN)
    relay.devices.committed()  # the sessions' devices belong to an earlier pass

    def broken(room: int, room_pass: RoomPass) -> None:
        raise RuntimeError("a bug")

    working, relay.inboxes.fan_out_room = relay.inboxes.fan_out_room, broken
    message = pb.Message(room=room, type=pb.Message.MESSAGE, msg="never half stored", id=50)
    relay._dispatch(ann, [Frame(FrameType.MESSAGE, message.SerializeToString())])
    relay.inboxes.flush_rows()  # what the end of the pass does first
    assert relay.outage.lost_writes()
    relay.outage.writes_lost(relay)
    acks = [
        pb.Ack.FromString(payload)
        for frame_type, payload in FrameDecoder(1 << 20).feed(ann.take_staged())
        if frame_type == FrameType.ACK
    ]
    assert [(ack.id, ack.code) for ack in acks] == [(50, pb.Ack.STORE_FULL)]
    assert _messages(ben.take_staged()) == []
    assert "fan-out failed" in caplog.text
    relay.outage.probe(relay)  # the sweep's probe: the store itself is fine, the episode ends
    assert relay.outage.began is None
    relay.inboxes.fan_out_room = working
    _say(relay, ann, room, "the next one", 51)
    relay.inboxes.flush_rows()
    relay.store.commit()
    assert [m.msg for m in _messages(ben.take_staged())] == ["the next one"]


@pytest.mark.parametrize(("budget", "per_pass"), [(1, [1, 1, 1, 1, 1]), (4, [2, 2, 1])])
def test_room_messages_past_the_copy_budget_wait_for_the_next_pass(
    relay: Relay, budget: int, per_pass: list[int]
) -> None:
    """copies_per_pass bounds a pass's fan-out (2 copies per message here: ann's and ben's
    boxes): past it the sender's further messages wait in its decoder and it is served
    next pass; its first message of a pass always goes. Every message arrives once, in
    order."""
    relay.config = dataclasses.replace(relay.config, copies_per_pass=budget)
    ann, ben = online(relay, ANN, device="tui"), online(relay, BEN, device="tui")
    room = _room(relay, BEN)
    texts = [f"m{n}" for n in range(5)]
    frames = [
        Frame(FrameType.MESSAGE, pb.Message(room=room, msg=text, id=n + 1).SerializeToString())
        for n, text in enumerate(texts)
    ]
    handled: list[int] = []
    relay._dispatch(ann, frames)
    while True:
        relay.end_iteration()
        handled.append(len(_stored(relay, ben.box)) - sum(handled))
        if ann not in relay.readiness.take_ready():
            break
        assert ann.decoder.has_frame
        relay._read(ann)
    assert handled == per_pass
    assert [(m.seq, m.msg) for m in _stored(relay, ben.box)] == [
        (n + 1, text) for n, text in enumerate(texts)
    ]
    assert relay.room_copies == 0 and not ann.decoder.has_frame


def test_a_room_sender_has_room_frames_per_pass_handled_and_another_frame_ends_it(
    relay: Relay,
) -> None:
    """A read of nothing but room messages goes on with what the decoder holds, up to
    room_frames_per_pass in the pass; the rest waits for the next pass. A frame of another
    kind among them ends the pass's read at frames_per_pass."""
    relay.config = dataclasses.replace(relay.config, frames_per_pass=2, room_frames_per_pass=5)
    ann, ben = online(relay, ANN, device="tui"), online(relay, BEN, device="tui")
    room = _room(relay, BEN)

    def say(number: int) -> Frame:
        message = pb.Message(room=room, msg=f"m{number}", id=number)
        return Frame(FrameType.MESSAGE, message.SerializeToString())

    def one_pass() -> int:
        relay._read(ann)
        relay.end_iteration()
        return len(_stored(relay, ben.box))

    ann.decoder.unread([say(n) for n in range(1, 8)])
    assert one_pass() == 5
    assert ann in relay.readiness.take_ready()
    assert one_pass() == 7
    relay.readiness.take_ready()
    ping = Frame(FrameType.PING, pb.Ping(nonce=1).SerializeToString())
    ann.decoder.unread([say(8), ping, say(9), say(10)])
    assert one_pass() == 8  # the Ping was the read's second frame: 2 frames this pass
    assert one_pass() == 10
    relay.readiness.take_ready()
    ann.decoder.unread([say(11), say(12), say(13), ping, say(14), say(15)])
    assert one_pass() == 13  # going on, it stops before the Ping
    assert ann.decoder.has_frame and ann in relay.readiness.take_ready()
    assert one_pass() == 14  # the Ping and a message: not all room messages, no more
    assert one_pass() == 15
    assert [m.msg for m in _stored(relay, ben.box)] == [f"m{n}" for n in range(1, 16)]
