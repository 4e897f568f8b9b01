"""Store-and-forward of Messages: sequence numbers, live pushes, backlog, v1 delivery.

Invariants:
- Per recipient, ``seq`` strictly increases and survives restarts (``users.head_seq``).
- A session is pushed messages in seq order, each at most once per session
  (``conn.pushed_seq``); what a session cannot take now stays in the store and is pumped
  from there when its buffer drains, so relay memory per connection stays near
  ``high_water`` whatever the backlog.
- v1 sessions: a row is deleted only once the bytes of its frame have been written to the
  socket (tracked by stream offset), so a v1 client that disconnects loses nothing.
- v2 sessions: rows are deleted when the recipient acknowledges them (``Ack{seq}``).
- Deliveries (both kinds) are recorded in ``relay.deliveries`` and applied once per pass,
  before its commit (:func:`apply_deliveries`); while the store cannot write they wait.
- The caches ``relay.head_seq``, ``relay.inbox_floor`` and ``relay.inbox_bytes`` (bytes of
  a recipient's stored runs plus its rows not yet flushed) are exact when present; any may
  be dropped at any time (:mod:`relay.outage` does) and is then read again from the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol import chat_pb2 as pb
from protocol.forward import override_tail, receipt_frames, seq_field
from protocol.forward import sender_prefix as encode_sender_prefix
from protocol.framing import frame_ends, pack_header
from protocol.types import FrameType
from relay.connection import Connection, ConnState
from relay.store import InboxRow, StoreUnavailable

if TYPE_CHECKING:
    from relay.server import Relay

BACKLOG_RUNS = 64  # stored runs read per batch: at most 64 x 64 messages, ~4 MiB of frames
MAX_BATCHES_PER_PASS = 2
new_tuple = tuple.__new__  # NamedTuple rows without their Python-level __new__
_MESSAGE_HEADER_TYPE = FrameType.MESSAGE


def current_head(relay: Relay, uid: int) -> int:
    head = relay.head_seq.get(uid)
    return relay.store.head_seq(uid) if head is None else head


def inbox_count(relay: Relay, uid: int) -> int:
    """Messages stored for ``uid``: seqs in (floor, head], floor being its delivered_seq
    (which buffered rows do not change: no flush needed)."""
    floor = relay.inbox_floor.get(uid)
    head = relay.head_seq.get(uid)
    if floor is not None and head is not None:
        return head - floor
    if floor is None:
        floor = relay.store.inbox_floor(uid)
        relay.inbox_floor[uid] = floor
    return current_head(relay, uid) - floor


def inbox_bytes(relay: Relay, uid: int) -> int:
    """Bytes stored for ``uid`` (its runs, counted whole until deleted, and its rows not yet
    flushed), from the cache or, once, from the store."""
    size = relay.inbox_bytes.get(uid)
    if size is None:
        relay.flush_rows()
        size = relay.inbox_bytes[uid] = relay.store.inbox_bytes(uid)
    return size


def deleted_through(relay: Relay, uid: int, seq: int, freed_bytes: int) -> None:
    """Record that ``uid`` has received everything through ``seq`` (its new floor) and that
    the runs deleted with it held ``freed_bytes``."""
    floor = relay.inbox_floor.get(uid)
    if floor is not None and seq > floor:
        relay.inbox_floor[uid] = seq
    size = relay.inbox_bytes.get(uid)
    if size is not None:
        relay.inbox_bytes[uid] = size - freed_bytes


def delivered_through(relay: Relay, uid: int, seq: int, receipts: bool) -> None:
    """``uid``'s session has received everything through ``seq``: its rows are deleted (and
    ``receipts`` may be owed for them) when the pass's deliveries are applied."""
    _note_delivery(relay.deliveries, uid, seq, receipts)


def _note_delivery(table: dict[int, tuple[int, bool]], uid: int, seq: int,
                   receipts: bool) -> None:
    previous = table.get(uid)
    table[uid] = (seq, receipts) if previous is None else (max(previous[0], seq),
                                                           previous[1] or receipts)


def apply_deliveries(relay: Relay) -> None:
    """Delete what sessions have received and queue the receipts owed, in the open
    transaction (the caller has flushed its rows). Remembered in
    ``relay.deliveries_applied`` until that transaction's commit, which may still lose
    them."""
    due, relay.deliveries = relay.deliveries, {}
    for uid, (seq, receipts) in due.items():
        _note_delivery(relay.deliveries_applied, uid, seq, receipts)
    store = relay.store
    try:
        for uid, (seq, receipts) in due.items():
            delivered = store.delete_inbox_through(uid, seq, receipts=receipts)
            deleted_through(relay, uid, seq, delivered.freed_bytes)
            send_receipts(relay, uid, delivered.receipts)
    except StoreUnavailable:
        return  # rolled back with the rest of the pass: relay.outage records them again


def sender_prefix(relay: Relay, conn: Connection) -> bytes:
    """uid+timestamp override fields for messages from ``conn``, cached per wall second."""
    if conn.prefix_wall != relay.wall:
        conn.prefix_wall = relay.wall
        conn.prefix = encode_sender_prefix(conn.uid, relay.wall)
    return conn.prefix


def store_durable(relay: Relay, conn: Connection, recipient: int, client_id: int,
                  payload: bytes, stored_bytes: int) -> tuple[int, int]:
    """Buffer a durable message for the iteration's group commit and push it if possible.

    ``stored_bytes`` is the recipient's :func:`inbox_bytes` before this message. Returns
    ``(seq, timestamp)``. The push is queued now and written after the commit.
    """
    heads = relay.head_seq
    seq = heads.get(recipient)
    if seq is None:
        seq = relay.store.head_seq(recipient)
    seq += 1
    heads[recipient] = seq
    timestamp = relay.wall
    prefix = conn.prefix if conn.prefix_wall == timestamp else sender_prefix(relay, conn)
    forwarded = payload + prefix + seq_field(seq)
    frame = pack_header(len(forwarded), _MESSAGE_HEADER_TYPE) + forwarded
    relay.pending_rows.append(new_tuple(
        InboxRow, (recipient, seq, conn.uid, client_id, timestamp, frame)))
    relay.inbox_bytes[recipient] = stored_bytes + len(frame)
    relay.durable_count += 1
    target = relay.online.get(recipient)
    if target is not None:
        push(relay, target, seq, frame, client_id != 0)
    return seq, timestamp


def forward_ephemeral(relay: Relay, sender: int, recipient: int, payload: bytes) -> None:
    """Forward an ephemeral message to an online recipient; drop it under pressure."""
    target = relay.online.get(recipient)
    if target is None or target.state is not ConnState.OPEN:
        return
    if target.pending_bytes > relay.config.high_water // 2:
        return  # ephemeral traffic is the first thing dropped under pressure
    forwarded = payload + override_tail(sender, relay.wall, 0)
    relay.send(target, pack_header(len(forwarded), _MESSAGE_HEADER_TYPE) + forwarded)


def push(relay: Relay, conn: Connection, seq: int, frame: bytes, has_id: bool) -> None:
    """Push a stored message live unless the session is catching up or over high water."""
    if conn.catching_up or conn.paused or seq <= conn.pushed_seq:
        return
    if conn.pending_bytes > relay.config.high_water:
        if conn.version >= 2:
            conn.paused = True  # resumed from the store when the buffer drains
            relay.paused_count += 1
        else:
            relay.reset(conn, pb.Reset.SLOW_CONSUMER,
                        "you are not reading fast enough; messages wait for your next login")
        return
    conn.queue(frame)
    relay.dirty.add(conn)
    conn.pushed_seq = seq
    if conn.version < 2:
        conn.v1_unacked.append((conn.bytes_queued, seq, has_id))


def start_backlog(relay: Relay, conn: Connection, since_seq: int, send_sync: bool) -> None:
    """Begin sending stored messages with seq > since_seq (then Sync, for v2)."""
    conn.pushed_seq = since_seq
    conn.catching_up = True
    conn.sync_requested = send_sync
    resume(relay, conn)


def resume(relay: Relay, conn: Connection) -> None:
    """Pump stored messages while the session's buffer is below half the high-water mark."""
    if conn.state is not ConnState.OPEN or not conn.uid:
        return
    relay.flush_rows()
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
                relay.send_message(conn, FrameType.SYNC,
                                   pb.Sync(head_seq=current_head(relay, conn.uid)))
            return


def note_v1_written(relay: Relay, conn: Connection) -> None:
    """Record v1 rows whose frames are fully written: delivered (deleted in the next pass)."""
    sent = conn.bytes_sent
    unacked = conn.v1_unacked
    last = 0
    has_id = False
    while unacked and unacked[0][0] <= sent:
        _, last, row_has_id = unacked.popleft()
        has_id = has_id or row_has_id
    if last:
        delivered_through(relay, conn.uid, last, has_id)


def send_receipts(relay: Relay, recipient: int, delivered: list[tuple[int, int]]) -> None:
    """Best-effort delivery receipts ``Ack{id, delivered, peer}`` to online v2 senders.

    Each sender's receipts are queued as one chunk (one Ack per message on the wire).
    """
    if not delivered:
        return
    online = relay.online
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
        target.queue(receipt_frames(ids, recipient))
        relay.dirty.add(target)
