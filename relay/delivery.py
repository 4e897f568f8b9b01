"""Store-and-forward of Messages to sessions: live pushes, the backlog pump, v1 delivery.

The inboxes' state (seqs, sizes, the pass's rows, deliveries) is :mod:`relay.inboxes`';
this module puts stored messages on connections and reports what was delivered to it.

Invariants:
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

from typing import TYPE_CHECKING

from protocol import chat_pb2 as pb
from protocol.framing import frame_ends, pack_header
from protocol.types import FrameType
from relay.connection import Connection, ConnState
from relay.forwarding import override_tail, receipt_frames
from relay.forwarding import sender_prefix as encode_sender_prefix

if TYPE_CHECKING:
    from relay.context import Context

BACKLOG_RUNS = 64  # stored runs read per batch: at most 64 x 64 messages, ~4 MiB of frames
MAX_BATCHES_PER_PASS = 2
_MESSAGE_HEADER_TYPE = FrameType.MESSAGE


def apply_deliveries(relay: Context) -> None:
    """Apply the pass's deliveries (:meth:`relay.inboxes.Inboxes.apply_deliveries`) and
    queue the receipts they owe."""
    for recipient, receipts in relay.inboxes.apply_deliveries():
        send_receipts(relay, recipient, receipts)


def sender_prefix(relay: Context, conn: Connection) -> bytes:
    """uid+timestamp override fields for messages from ``conn``, cached per wall second."""
    if conn.prefix_wall != relay.wall:
        conn.prefix_wall = relay.wall
        conn.prefix = encode_sender_prefix(conn.uid, relay.wall)
    return conn.prefix


def store_durable(
    relay: Context,
    conn: Connection,
    recipient: int,
    client_id: int,
    payload: bytes,
    stored_bytes: int,
) -> tuple[int, int]:
    """Buffer a durable message for the iteration's group commit and push it if possible.

    ``stored_bytes`` is the recipient's stored bytes before this message
    (:meth:`relay.inboxes.Inboxes.bytes_of`). Returns ``(seq, timestamp)``. The push is
    queued now and written after the commit.
    """
    timestamp = relay.wall
    prefix = conn.prefix if conn.prefix_wall == timestamp else sender_prefix(relay, conn)
    seq, frame = relay.inboxes.accept(
        recipient, conn.uid, client_id, timestamp, payload + prefix, stored_bytes
    )
    relay.durable_count += 1
    target = relay.sessions.online.get(recipient)
    if target is not None:
        push(relay, target, seq, frame, client_id != 0)
    return seq, timestamp


def forward_ephemeral(relay: Context, sender: int, recipient: int, payload: bytes) -> None:
    """Forward an ephemeral message to an online recipient; drop it under pressure."""
    target = relay.sessions.online.get(recipient)
    if target is None or target.state is not ConnState.OPEN:
        return
    if target.pending_bytes > relay.config.high_water // 2:
        return  # ephemeral traffic is the first thing dropped under pressure
    forwarded = payload + override_tail(sender, relay.wall, 0)
    relay.send(target, pack_header(len(forwarded), _MESSAGE_HEADER_TYPE) + forwarded)


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
        conn.v1_unacked.append((conn.bytes_queued, seq, has_id))


def start_backlog(relay: Context, conn: Connection, since_seq: int, send_sync: bool) -> None:
    """Begin sending stored messages with seq > since_seq (then Sync, for v2)."""
    conn.pushed_seq = since_seq
    conn.catching_up = True
    conn.sync_requested = send_sync
    resume(relay, conn)


def resume(relay: Context, conn: Connection) -> None:
    """Pump stored messages while the session's buffer is below half the high-water mark."""
    if conn.state is not ConnState.OPEN or not conn.uid:
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
        runs = store.inbox_after(conn.uid, conn.pushed_seq, BACKLOG_RUNS)
        if runs:
            if v1:
                # v1 rows count as delivered once their frame is written: track each frame.
                offset = conn.bytes_queued
                for first_seq, _, frames in runs:
                    for index, end in enumerate(frame_ends(frames)):
                        conn.v1_unacked.append((offset + end, first_seq + index, True))
                    offset += len(frames)
            relay.send(conn, b"".join(run.frames for run in runs))
            conn.pushed_seq = runs[-1].last_seq
        if len(runs) < BACKLOG_RUNS:
            conn.catching_up = False
            if conn.sync_requested:
                conn.sync_requested = False
                relay.send_message(
                    conn, FrameType.SYNC, pb.Sync(head_seq=relay.inboxes.current_head(conn.uid))
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
    if last:
        relay.inboxes.delivered_through(conn.uid, last, has_id)


def send_receipts(relay: Context, recipient: int, delivered: list[tuple[int, int]]) -> None:
    """Best-effort delivery receipts ``Ack{id, delivered, peer}`` to online v2 senders.

    Each sender's receipts are queued as one chunk (one Ack per message on the wire).
    """
    if not delivered:
        return
    online = relay.sessions.online
    by_sender: dict[int, list[int]] = {}
    for sender, client_id in delivered:
        ids = by_sender.get(sender)
        if ids is None:
            ids = by_sender[sender] = []
        ids.append(client_id)
    for sender, ids in by_sender.items():
        target = online.get(sender)
        if target is None or target.version < 2 or target.state is not ConnState.OPEN:
            continue
        relay.send(target, receipt_frames(ids, recipient))
