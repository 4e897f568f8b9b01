"""Store-and-forward of Messages to sessions: fan-out to boxes, live pushes, the backlog
pump, v1 delivery.

The inboxes' state (seqs, sizes, the pass's rows, deliveries) is :mod:`relay.inboxes`',
which boxes a user has is :mod:`relay.devices`'; this module stores each message in the
boxes it goes to, puts stored messages on connections and reports what was delivered.

Invariants:
- A durable message is stored once per box of its recipient (every device, PROTOCOL.md
  section 9) and once per *other* named box of its sender as an ``outgoing`` copy; the
  client's payload is extended, never decoded again, and each copy differs from the others
  only in its seq field (and the outgoing copies in their uid/outgoing fields). A box over its
  quota is skipped; the message is refused only when no box of the recipient can take it.
- A session is pushed messages in seq order, each at most once per session
  (``conn.pushed_seq``); what a session cannot take now stays in the store and is pumped
  from there when its buffer drains, so relay memory per connection stays near
  ``high_water`` whatever the backlog.
- v1 sessions: a row is deleted only once the bytes of its frame have been written to the
  socket (tracked by stream offset), so a v1 client that disconnects loses nothing.
- v2 sessions: rows are deleted when the recipient acknowledges them (``Ack{seq}``).
- Deliveries (both kinds) are recorded with the inboxes and applied once per pass, before
  its commit (:func:`apply_deliveries`, which also queues the receipts they owe).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from protocol import chat_pb2 as pb
from protocol.framing import frame_ends, pack_header
from protocol.types import FrameType
from relay.connection import Connection, ConnState
from relay.forwarding import outgoing_prefix, override_tail, receipt_frames
from relay.forwarding import sender_prefix as encode_sender_prefix

if TYPE_CHECKING:
    from relay.context import Context
    from relay.devices import Box

BACKLOG_RUNS = 64  # stored runs read per batch: at most 64 x 64 messages, ~4 MiB of frames
MAX_BATCHES_PER_PASS = 2
_MESSAGE_HEADER_TYPE = FrameType.MESSAGE


def apply_deliveries(relay: Context) -> None:
    """Apply the pass's deliveries (:meth:`relay.inboxes.Inboxes.apply_deliveries`) and
    queue the receipts they owe (one per message, whichever device acknowledged it first)."""
    devices = relay.devices
    several = {uid for uid in relay.inboxes.users_due() if len(devices.boxes_of(uid)) > 1}
    for recipient, receipts in relay.inboxes.apply_deliveries(several):
        send_receipts(relay, recipient, receipts)


def sender_prefix(relay: Context, conn: Connection) -> bytes:
    """uid+timestamp override fields for messages from ``conn``, cached per wall second."""
    if conn.prefix_wall != relay.wall:
        conn.prefix_wall = relay.wall
        conn.prefix = encode_sender_prefix(conn.uid, relay.wall)
    return conn.prefix


def store_durable(
    relay: Context, conn: Connection, recipient: int, client_id: int, payload: bytes
) -> tuple[int, int] | None:
    """Buffer a durable message for the iteration's group commit, in every box of
    ``recipient`` with room (and as ``outgoing`` copies in the sender's other named boxes),
    and push each copy to its box's live session if possible.

    Returns ``(seq, timestamp)`` of the first copy (the Ack's), or None if no box of the
    recipient had room (nothing was stored). The pushes are queued now and written after
    the commit. The hot path: keep it flat.
    """
    timestamp = relay.wall
    prefix = conn.prefix if conn.prefix_wall == timestamp else sender_prefix(relay, conn)
    body = payload + prefix
    inboxes = relay.inboxes
    sender = conn.uid
    boxes_of = relay.devices.boxes_of
    boxes = boxes_of(recipient)
    own = boxes_of(sender)
    if len(boxes) == 1 and len(own) == 1 and own[0].box == conn.box:
        # One device each side, the common case: no loop, no tuple, no outgoing path
        # (bench/bench_vs_mosquitto.py v1-qos0: the general loop cost ~0.4 us per message).
        box = boxes[0].box
        size = room_in(relay, box, len(payload))
        if size < 0:
            return None
        seq, frame = inboxes.accept(box, sender, client_id, timestamp, body, size, recipient)
        relay.durable_count += 1
        target = relay.sessions.by_box.get(box)
        if target is not None:
            push(relay, target, seq, frame, client_id != 0)
        return seq, timestamp
    first: tuple[int, int] | None = None
    headers: tuple[bytes, bytes, bytes] | None = None
    for box, named in boxes:
        if first is not None and named:
            # Another device of the recipient: into its batch for the pass (one run, one
            # push per box per pass; bench/bench_vs_mosquitto.py dev3 vs dev1).
            if headers is None:
                headers = _headers(len(body))
            inboxes.batch_copy(box, timestamp, body, headers, sender, client_id)
            continue
        size = room_in(relay, box, len(payload))
        if size < 0:
            continue
        seq, frame = inboxes.accept(
            box, sender, client_id, timestamp, body, size, recipient if first is None else 0
        )
        if first is None:
            first = (seq, timestamp)
        target = relay.sessions.by_box.get(box)
        if target is not None:
            push(relay, target, seq, frame, client_id != 0)
    if first is None:
        return None
    relay.durable_count += 1
    if len(own) > 1 or (own[0].named and own[0].box != conn.box):
        _store_outgoing(relay, conn, own, recipient, payload, timestamp)
    return first


def _headers(body_size: int) -> tuple[bytes, bytes, bytes]:
    """MESSAGE frame headers of a ``body_size``-byte body plus a 2-, 3- or 4-byte seq
    field."""
    return (
        pack_header(body_size + 2, _MESSAGE_HEADER_TYPE),
        pack_header(body_size + 3, _MESSAGE_HEADER_TYPE),
        pack_header(body_size + 4, _MESSAGE_HEADER_TYPE),
    )


def room_in(relay: Context, box: int, payload_size: int) -> int:
    """``box``'s stored bytes if a message of ``payload_size`` fits in its quota, else -1."""
    inboxes = relay.inboxes
    inboxes.settle(box)  # room copies and batched copies of the pass counted first
    config = relay.config
    floor = inboxes.floor.get(box)
    head = inboxes.head_seq.get(box)
    stored = head - floor if floor is not None and head is not None else inboxes.count(box)
    size = inboxes.stored_bytes.get(box)
    if size is None:
        size = inboxes.bytes_of(box)
    if stored >= config.inbox_quota or size + payload_size > config.inbox_quota_bytes:
        return -1
    return size


def _store_outgoing(
    relay: Context,
    conn: Connection,
    own: tuple[Box, ...],
    peer: int,
    payload: bytes,
    timestamp: int,
) -> None:
    """Store the sender's ``outgoing`` copies in its named boxes but the sending one's (no
    receipt is owed for them, no dedup record filed)."""
    body = payload + outgoing_prefix(peer, timestamp)
    headers = _headers(len(body))
    inboxes = relay.inboxes
    for box, named in own:
        if named and box != conn.box:
            inboxes.batch_copy(box, timestamp, body, headers, conn.uid, 0)


def forward_ephemeral(relay: Context, sender: int, recipient: int, payload: bytes) -> None:
    """Forward an ephemeral message to the recipient's live receiving sessions; drop it for
    any under pressure."""
    targets = relay.sessions.online.get(recipient)
    if not targets:
        return
    forwarded = payload + override_tail(sender, relay.wall, 0)
    frame = pack_header(len(forwarded), _MESSAGE_HEADER_TYPE) + forwarded
    half_water = relay.config.high_water // 2
    for target in targets:
        if target.state is not ConnState.OPEN or target.pending_bytes > half_water:
            continue  # ephemeral traffic is the first thing dropped under pressure
        relay.send(target, frame)


def push(relay: Context, conn: Connection, seq: int, frame: bytes, has_id: bool) -> None:
    """Push a stored message live unless the session is catching up or over high water."""
    if conn.catching_up or conn.paused or seq <= conn.pushed_seq:
        return
    if conn.pending_bytes > relay.config.high_water:
        if conn.version >= 2:
            conn.paused = True  # resumed from the store when the buffer drains
            relay.paused_count += 1
        else:
            relay.reset(
                conn,
                pb.Reset.SLOW_CONSUMER,
                "you are not reading fast enough; messages wait for your next login",
            )
        return
    relay.send(conn, frame)
    conn.pushed_seq = seq
    if conn.version < 2:
        if conn.v1_unacked is None:
            conn.v1_unacked = deque()
        conn.v1_unacked.append((conn.bytes_queued, seq, has_id))


def push_run(relay: Context, box: int, first_seq: int, last_seq: int, frames: bytes) -> None:
    """Push a run of consecutive stored messages (a closed fan-out batch) to ``box``'s live
    session, unless it is catching up, paused or over high water (the store has them)."""
    conn = relay.sessions.by_box.get(box)
    if conn is None or conn.catching_up or conn.paused or first_seq <= conn.pushed_seq:
        return
    if conn.pending_bytes > relay.config.high_water:
        conn.paused = True  # named boxes are v2.1 sessions: resumed from the store
        relay.paused_count += 1
        return
    relay.send(conn, frames)
    conn.pushed_seq = last_seq


def start_backlog(relay: Context, conn: Connection, since_seq: int, send_sync: bool) -> None:
    """Begin sending stored messages with seq > since_seq (then Sync, for v2)."""
    conn.pushed_seq = since_seq
    conn.catching_up = True
    conn.sync_requested = send_sync
    resume(relay, conn)


def resume(relay: Context, conn: Connection) -> None:
    """Pump stored messages while the session's buffer is below half the high-water mark."""
    if conn.state is not ConnState.OPEN or not conn.box:
        return
    relay.inboxes.flush_rows()
    low_water = relay.config.high_water // 2
    store = relay.store
    conn.paused = False
    conn.catching_up = True
    v1 = conn.version < 2
    # At most MAX_BATCHES_PER_PASS batches per loop pass: a 100,000-message backlog must not
    # hold the loop (and every other client) while it is read and framed. The write pass
    # calls resume() again once these are written, so the pump keeps going.
    for _ in range(MAX_BATCHES_PER_PASS):
        if conn.pending_bytes >= low_water:
            return
        runs = store.inbox_after(conn.box, conn.pushed_seq, BACKLOG_RUNS)
        if runs:
            if v1:
                # v1 rows count as delivered once their frame is written: track each frame.
                offset = conn.bytes_queued
                if conn.v1_unacked is None:
                    conn.v1_unacked = deque()
                unacked = conn.v1_unacked
                for first_seq, _, frames in runs:
                    for index, end in enumerate(frame_ends(frames)):
                        unacked.append((offset + end, first_seq + index, True))
                    offset += len(frames)
            relay.send(conn, b"".join(run.frames for run in runs))
            conn.pushed_seq = runs[-1].last_seq
        if len(runs) < BACKLOG_RUNS:
            conn.catching_up = False
            if conn.sync_requested:
                conn.sync_requested = False
                relay.send_message(
                    conn, FrameType.SYNC, pb.Sync(head_seq=relay.inboxes.current_head(conn.box))
                )
            return


def note_v1_written(relay: Context, conn: Connection) -> None:
    """Record v1 rows whose frames are fully written: delivered (deleted in the next pass)."""
    sent = conn.bytes_sent
    unacked = conn.v1_unacked
    last = 0
    has_id = False
    while unacked and unacked[0][0] <= sent:
        _, last, row_has_id = unacked.popleft()
        has_id = has_id or row_has_id
    if not unacked:
        conn.v1_unacked = None  # all written: no deque while idle
    if last:
        relay.inboxes.delivered_through(conn.uid, conn.box, last, has_id)


def send_receipts(relay: Context, recipient: int, delivered: list[tuple[int, int]]) -> None:
    """Best-effort delivery receipts ``Ack{id, delivered, peer}`` to the senders' live v2
    sessions (each of its devices: the others hold the message as an ``outgoing`` copy).

    Each sender's receipts are queued as one chunk per session (one Ack per message on the
    wire).
    """
    if not delivered:
        return
    sessions = relay.sessions
    by_sender: dict[int, list[int]] = {}
    for sender, client_id in delivered:
        ids = by_sender.get(sender)
        if ids is None:
            ids = by_sender[sender] = []
        ids.append(client_id)
    for sender, ids in by_sender.items():
        frames = b""
        for target in sessions.all_of(sender):
            if target.version < 2 or target.state is not ConnState.OPEN:
                continue
            frames = frames or receipt_frames(ids, recipient)
            relay.send(target, frames)
