"""Fan-out of room messages and room events to every device of every member.

PROTOCOL.md section 10, with :mod:`relay.delivery` (which owns pushes and quotas) and
:mod:`relay.inboxes` (seqs and the pass's rows).

Invariants:
- A room's durable message is stored in every *named* box (v2.1 device) of every member in
  the room (MEMBER or OWNER), the sender's other boxes as ``outgoing`` copies, the sending
  box never; v1 and plain v2 boxes never see rooms. Its body (the client's payload with the
  sender and timestamp fields appended) is built once: per copy only the seq field differs
  (and the outgoing flag for the sender's copies). The room's messages of a pass are kept
  (:class:`relay.room_passes.RoomPass`) and fanned out together (:func:`fan_out_pass`): one
  stored run and one push per box per pass, so one loop pass writes each recipient's
  connection once.
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
from relay.forwarding import OUTGOING_TRUE, override_tail
from relay.room_passes import RoomPass
from relay.rooms import INVITED
from relay.run_frames import run_frames, run_size

if TYPE_CHECKING:
    from relay.connection import Connection
    from relay.context import Context

_MESSAGE_HEADER_TYPE = FrameType.MESSAGE


def store_room_message(
    relay: Context, conn: Connection, room: int, client_id: int, payload: bytes
) -> int:
    """Store a durable message ``conn`` sent to ``room`` for every member's devices (pushed
    when the pass's batches close) and file its dedup record; return its timestamp (the
    sender's Ack carries it)."""
    timestamp = relay.wall
    prefix = conn.prefix if conn.prefix_wall == timestamp else sender_prefix(relay, conn)
    body = payload + prefix
    relay.inboxes.add_room_message(room, body, conn.uid, conn.box, timestamp)
    relay.inboxes.add_room_record(room, conn.uid, client_id, timestamp)
    relay.inboxes.add_room_history(room, body)
    relay.durable_count += 1
    relay.room_copies += len(relay.rooms.targets(room))
    relay.room_messages += 1
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


def fan_out_pass(relay: Context, room: int, room_pass: RoomPass) -> None:
    """Store ``room``'s messages of the pass in every named box of each member in the room
    (a run per box per segment, pushed at once), the sender's other boxes as ``outgoing``
    copies, the sending box never (the inboxes call this: :meth:`Inboxes.settle_rooms`).

    The boxes that sent none of a segment's messages and have quota for all of them take it
    as one shared run (its bodies stored once) and, if their session is live, get its frames
    built in one step (:func:`relay.run_frames.run_frames`); the others get their copies one
    by one.
    """
    inboxes = relay.inboxes
    by_box = relay.sessions.by_box
    targets = relay.rooms.targets(room)
    senders = set(room_pass.senders)
    for start, pieces in room_pass.segments():
        count = len(pieces.bodies)
        end = start + count
        max_bytes = pieces.body_bytes + count * 16
        rows: list[tuple[int, int, int, int]] = []
        for box, uid in targets:
            if uid not in senders:
                first = inboxes.reserve_run(box, count, max_bytes)
                if first is not None:
                    last = first + count - 1
                    if box in by_box:
                        frames = run_frames(pieces, 0, count, first)
                        inboxes.push_run(box, first, last, frames)
                        rows.append((box, first, last, len(frames)))
                    else:
                        rows.append((box, first, last, run_size(pieces.body_bytes, count, first)))
                    continue
            _copies_one_by_one(relay, box, uid, room_pass, start, end)
        if rows:
            inboxes.add_shared_run(pieces.bodies, rows)


def _copies_one_by_one(
    relay: Context, box: int, uid: int, room_pass: RoomPass, start: int, end: int
) -> None:
    """Add copies of messages ``start`` .. ``end - 1`` to ``box``'s batch one at a time: the
    sender's boxes (its own copy skipped, ``outgoing`` copies in its other boxes) and a box
    whose quota takes only some of them (the rest skipped once it is full)."""
    inboxes = relay.inboxes
    timestamp = room_pass.timestamp
    for index in range(start, end):
        body = room_pass.bodies[index]
        if room_pass.senders[index] == uid:
            if room_pass.sending_boxes[index] == box:
                continue
            body += OUTGOING_TRUE
        # A full box skips the copy (docs/DECISIONS.md, devices).
        inboxes.batch_copy(box, timestamp, body, None, uid, 0, receipts=False)


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
