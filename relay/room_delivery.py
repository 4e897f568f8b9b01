"""Fan-out of room messages and room events to every device of every member.

PROTOCOL.md section 10, with :mod:`relay.delivery` (which owns pushes and quotas) and
:mod:`relay.inboxes` (seqs and the pass's rows).

Invariants:
- A room's durable message is stored in every *named* box (v2.1 device) of every member in
  the room (MEMBER or OWNER), the sender's other boxes as ``outgoing`` copies, the sending
  box never; v1 and plain v2 boxes never see rooms. Its body (the client's payload with the
  sender and timestamp fields appended) is built once: per copy only the seq field differs
  (and the outgoing flag for the sender's copies). Copies go into their box's batch for the
  pass (:class:`relay.run_batches.RunBatch`): one stored run and one push per box per pass,
  so one loop pass writes each recipient's connection once.
- The relay assigns all copies in one thread, so every member gets a room's messages in the
  same order. The body is also kept in the room's timeline tail (``room_history``).
- Each room message files one dedup record, under the room's key
  (:func:`relay.store.room_dedup_key`), whoever receives it; no copy owes a receipt.
- A box over its quota is skipped (as for one-to-one messages).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol import chat_pb2 as pb
from protocol.framing import pack_header
from protocol.types import FrameType
from relay.connection import ConnState
from relay.delivery import push, room_in, sender_prefix
from relay.forwarding import OUTGOING_TRUE, override_tail, seq_field
from relay.rooms import INVITED

if TYPE_CHECKING:
    from relay.connection import Connection
    from relay.context import Context

_MESSAGE_HEADER_TYPE = FrameType.MESSAGE
_MESSAGE = int(FrameType.MESSAGE)


def store_room_message(
    relay: Context, conn: Connection, room: int, client_id: int, payload: bytes
) -> int:
    """Store a durable message ``conn`` sent to ``room`` for every member's devices (pushed
    when the pass's batches close) and file its dedup record; return its timestamp (the
    sender's Ack carries it)."""
    timestamp = relay.wall
    prefix = conn.prefix if conn.prefix_wall == timestamp else sender_prefix(relay, conn)
    body = payload + prefix
    _fan_out(relay, room, body, conn)
    relay.inboxes.add_room_record(room, conn.uid, client_id, timestamp)
    relay.inboxes.add_room_history(room, body)
    relay.durable_count += 1
    return timestamp


def store_room_event(relay: Context, room: int, actor: int, event: str, uids: set[int]) -> None:
    """Store the durable ROOM_EVENT ``event`` by ``actor`` in ``room``'s timeline for the
    devices of ``uids`` (and in the room's history)."""
    body = pb.Message(
        uid=actor, timestamp=relay.wall, type=pb.Message.ROOM_EVENT, msg=event, room=room
    ).SerializeToString()
    _store_for(relay, body, uids)
    relay.inboxes.add_room_history(room, body)


def store_room_history(relay: Context, room: int, uid: int) -> None:
    """A new member joins: the room's last ``room_history`` durable messages go to its
    devices first (before the join event and live traffic)."""
    limit = relay.config.room_history
    if limit <= 0:
        return
    relay.inboxes.flush_rows()  # the pass's history first
    for body in relay.store.rooms.history(room, limit):
        _store_for(relay, body, {uid})


def forward_room_ephemeral(relay: Context, conn: Connection, room: int, payload: bytes) -> None:
    """INPUTING in a room: to the live v2.1 receiving sessions of the members in it but the
    sender's own; dropped for any under pressure."""
    forwarded = payload + override_tail(conn.uid, relay.wall, 0)
    frame = pack_header(len(forwarded), _MESSAGE_HEADER_TYPE) + forwarded
    half_water = relay.config.high_water // 2
    online = relay.sessions.online
    for uid, role in relay.rooms.members(room).items():
        if role == INVITED:
            continue
        for target in online.get(uid, ()):
            if (
                target is conn
                or not target.v21
                or target.state is not ConnState.OPEN
                or target.pending_bytes > half_water
            ):
                continue
            relay.send(target, frame)


def _fan_out(relay: Context, room: int, body: bytes, conn: Connection) -> None:
    """The hot loop of a room message: one copy per named box of each member in the room,
    added to the box's batch of this pass (a run stored and pushed once per box per pass).

    Inline on purpose (no call per copy but the seq field's bytes): every call here is paid
    once per member's device per message (bench/bench_vs_mosquitto.py, room fan-out).
    """
    inboxes = relay.inboxes
    batches = inboxes.batches
    sender = conn.uid
    sending_box = conn.box
    timestamp = relay.wall
    outgoing = body + OUTGOING_TRUE
    # Frame headers by seq field length (2 bytes below seq 128, 3 below 16384, 4 below 2^21).
    short_headers = tuple(pack_header(len(body) + size, _MESSAGE) for size in (2, 3, 4))
    outgoing_headers = tuple(pack_header(len(outgoing) + size, _MESSAGE) for size in (2, 3, 4))
    copy_size = len(outgoing) + 16  # header, body, seq field: at most this
    body_size = len(body) + 5
    outgoing_size = body_size + len(OUTGOING_TRUE)
    for box, uid in relay.rooms.targets(room):
        if uid == sender:
            if box == sending_box:
                continue
            piece, headers, piece_size = outgoing, outgoing_headers, outgoing_size
        else:
            piece, headers, piece_size = body, short_headers, body_size
        batch = batches.get(box)
        if (
            batch is None
            or batch.ids is not None
            or batch.next_seq >= batch.limit_seq
            or batch.size + copy_size > batch.byte_limit
        ):
            batch = inboxes.open_batch(box, timestamp, copy_size)
            if batch is None:
                continue  # the box is full: skipped (docs/DECISIONS.md, devices)
        seq = batch.next_seq
        batch.next_seq = seq + 1
        if seq < 0x80:
            field = bytes((0x40, seq))
            header = headers[0]
        elif seq < 0x4000:
            field = bytes((0x40, (seq & 0x7F) | 0x80, seq >> 7))
            header = headers[1]
        elif seq < 0x200000:
            field = bytes((0x40, (seq & 0x7F) | 0x80, ((seq >> 7) & 0x7F) | 0x80, seq >> 14))
            header = headers[2]
        else:
            field = seq_field(seq)
            header = pack_header(len(piece) + len(field), _MESSAGE)
        batch.pieces += (header, piece, field)
        batch.size += piece_size + len(field)


def _store_for(relay: Context, body: bytes, uids: set[int]) -> None:
    """Store ``body`` (a whole Message, no seq) in every named box of ``uids``."""
    inboxes = relay.inboxes
    by_box = relay.sessions.by_box
    timestamp = relay.wall
    for uid in sorted(uids):
        for box, named in relay.devices.boxes_of(uid):
            if not named:
                continue
            size = room_in(relay, box, len(body))
            if size < 0:
                continue
            seq, frame = inboxes.accept(box, 0, 0, timestamp, body, size, 0)
            target = by_box.get(box)
            if target is not None:
                push(relay, target, seq, frame, False)
