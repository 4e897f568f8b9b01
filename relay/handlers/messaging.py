"""MESSAGE, ACK and SYNC (PROTOCOL.md section 7).

Invariants:
- The sender's identity is the session's uid, never a field of the packet; the relay reads
  only ``uid`` (destination), ``type`` and ``id`` and forwards the client's bytes with
  uid/timestamp/seq appended (see :mod:`relay.forwarding`).
- Durable messages are acknowledged (v2) only by frames written after the commit.
- A (sender, id) seen within the dedup window gets the original Ack and stores nothing.
- Messages go only between buddies, or to a room the sender is in (PROTOCOL.md section 10;
  file replies also one-to-one between users who share a room); ROOM_EVENT messages come
  from the relay only. Refusals are Ack codes for v2 senders and silent drops
  for v1 senders (v1 has no way to report them), logged at debug level. While the store
  cannot write, durable messages are refused before anything is written
  (:mod:`relay.outage`); a retry of one already stored still gets its Ack.
- Each box (a device's inbox) holds at most ``inbox_quota`` messages and
  ``inbox_quota_bytes`` bytes; a full box is skipped, and a message no box of its
  recipient can take is refused (:func:`relay.delivery.store_durable`).
- Integers from the wire never reach SQLite or arithmetic unbounded (uint64 fields may be
  >= 2**63, beyond SQLite's INTEGER): ``since_seq`` is clamped to the inbox head (beyond it
  there is nothing to send), an Ack's seq to what was pushed; message ids are only ever
  stored packed or hashed, never as an SQLite INTEGER.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from protocol import ProtocolError
from protocol import chat_pb2 as pb
from protocol.types import EPHEMERAL_MESSAGE_TYPES, FrameType, parse_message
from protocol.validation import MAX_TEXT_BYTES, text_within_limit
from relay import delivery, room_delivery
from relay.forwarding import ack_ok_frame
from relay.store import room_dedup_key

if TYPE_CHECKING:
    from relay.connection import Connection
    from relay.context import Context

log = logging.getLogger("parley.relay")

_Message = pb.Message
_MESSAGE_TEXT = pb.Message.MESSAGE
_SURELY_SHORT = MAX_TEXT_BYTES // 4  # at most 4 UTF-8 bytes per character


def _ack(
    relay: Context,
    conn: Connection,
    client_id: int,
    code: pb.Ack.Code.ValueType,
    seq: int = 0,
    timestamp: int = 0,
) -> None:
    if code == pb.Ack.OK:
        # Collected while one read is dispatched and queued as one chunk at its end.
        conn.pending_acks.append(ack_ok_frame(client_id, seq, timestamp))
        return
    relay.send_message(
        conn, FrameType.ACK, pb.Ack(id=client_id, seq=seq, code=code, timestamp=timestamp)
    )


def _refuse(
    relay: Context, conn: Connection, client_id: int, code: pb.Ack.Code.ValueType, durable: bool
) -> None:
    if conn.version >= 2 and durable:
        _ack(relay, conn, client_id, code)
    else:
        log.debug("conn=%d uid=%d message refused: %s", conn.id, conn.uid, pb.Ack.Code.Name(code))


def _find_duplicate(
    relay: Context, sender: int, client_id: int, recipient: int
) -> tuple[int, int] | None:
    """(seq, timestamp) of the Ack already given for this id, if any, within the window.

    The Bloom filter answers "certainly new" for almost every fresh id without touching the
    store; only a possible retry is looked up (after flushing this iteration's rows, so a
    duplicate inside one read is found too).
    """
    dedup = relay.dedup
    if not dedup.bloom.test_and_add(sender, client_id):
        return None  # added now: a refusal later only costs a rare extra lookup
    relay.inboxes.flush_rows()
    record = dedup.find(sender, client_id, recipient)
    if record is None:
        return None
    return record.seq, record.timestamp


_ROOM_EVENT = pb.Message.ROOM_EVENT
# One-to-one file messages allowed between users who share a room (not only buddies).
_FILE_REPLY_TYPES = frozenset(
    {
        pb.Message.FILE_ACCEPT,
        pb.Message.FILE_DECLINE,
        pb.Message.FILE_CHUNK,
        pb.Message.FILE_CANCEL,
        pb.Message.FILE_PROGRESS,
    }
)
_FILE_TYPES = frozenset(
    {
        pb.Message.FILE_OFFER,
        pb.Message.FILE_ACCEPT,
        pb.Message.FILE_DECLINE,
        pb.Message.FILE_CANCEL,
        pb.Message.FILE_PROGRESS,
    }
)


def _account_transfer(relay: Context, conn: Connection, message: pb.Message) -> bool:
    """Apply the file-transfer limits; False if the message was refused."""
    kind = message.type
    transfer_id = message.file.transfer_id
    ledger = relay.transfers
    now = relay.now
    if kind == pb.Message.FILE_OFFER:
        if message.file.size > relay.config.max_file_size:
            _refuse(relay, conn, message.id, pb.Ack.TOO_LARGE, True)
            return False
        if not ledger.offer(conn.uid, transfer_id, message.file.size, now):
            _refuse(relay, conn, message.id, pb.Ack.RATE_LIMITED, True)
            return False
    elif kind == pb.Message.FILE_PROGRESS:
        ledger.progress(message.uid, transfer_id, message.file.offset, now)
    elif kind == pb.Message.FILE_ACCEPT:
        ledger.touch(message.uid, transfer_id, now)
    elif kind == pb.Message.FILE_DECLINE:
        ledger.finished(message.uid, transfer_id)
    else:  # FILE_CANCEL, from either side
        ledger.finished(message.uid, transfer_id)
        ledger.finished(conn.uid, transfer_id)
    return True


def _too_long(message: pb.Message) -> bool:
    """A text message over the limit (counted in bytes only when it may be)."""
    return (
        message.type == _MESSAGE_TEXT
        and len(message.msg) > _SURELY_SHORT
        and not text_within_limit(message.msg)
    )


def handle_message(relay: Context, conn: Connection, payload: bytes) -> None:
    """The hot path: keep it flat (one relayed message costs a few microseconds)."""
    try:
        message = _Message.FromString(payload)
    except Exception as exc:  # upb raises DecodeError; anything else is equally the peer's
        raise ProtocolError("payload does not decode as Message") from exc
    relay.message_count += 1
    sender = conn.uid
    recipient = message.uid
    message_type = message.type
    client_id = message.id
    durable = message_type not in EPHEMERAL_MESSAGE_TYPES
    bucket = conn.bucket
    if bucket is not None and not bucket.take(relay.now):
        if conn.version >= 2:
            _refuse(relay, conn, client_id, pb.Ack.RATE_LIMITED, durable)
        else:
            relay.reset(conn, pb.Reset.RATE_LIMITED, "more messages per second than allowed")
        return
    if message.room:
        _handle_room_message(relay, conn, message, payload, durable)
        return
    if message_type == _ROOM_EVENT:
        _refuse(relay, conn, client_id, pb.Ack.INVALID, durable)  # only the relay writes them
        return
    buddies = relay.sessions.buddies.get(sender)
    if (buddies is None or recipient not in buddies) and not (
        message_type in _FILE_REPLY_TYPES
        and relay.rooms.share_room(sender, recipient)
        and not relay.store.blocks.has_blocked(recipient, sender)
    ):
        exists = recipient != 0 and relay.store.user_by_uid(recipient) is not None
        code = pb.Ack.NOT_BUDDY if exists else pb.Ack.NO_SUCH_USER
        _refuse(relay, conn, client_id, code, durable)
        return
    if message_type in _FILE_TYPES and not _account_transfer(relay, conn, message):
        return
    if not durable:
        delivery.forward_ephemeral(relay, sender, recipient, payload)
        return
    if _too_long(message):
        _refuse(relay, conn, client_id, pb.Ack.TOO_LARGE, durable)
        return
    v2 = conn.version >= 2
    if v2:
        if client_id == 0:
            _refuse(relay, conn, client_id, pb.Ack.INVALID, durable)
            return
        duplicate = _find_duplicate(relay, sender, client_id, recipient)
        if duplicate is not None:
            _ack(relay, conn, client_id, pb.Ack.OK, duplicate[0], duplicate[1])
            return
    if not relay.store.available:
        relay.outage.refuse_durable(relay, conn, client_id)
        return
    stored = delivery.store_durable(relay, conn, recipient, client_id, payload)
    if stored is None:
        _refuse(relay, conn, client_id, pb.Ack.QUOTA_EXCEEDED, durable)
        return
    if v2:  # _ack's OK path, inline: once per relayed message
        conn.pending_acks.append(ack_ok_frame(client_id, stored[0], stored[1]))


def _handle_room_message(
    relay: Context, conn: Connection, message: pb.Message, payload: bytes, durable: bool
) -> None:
    """A message to a room (PROTOCOL.md section 10): members only (Ack NOT_MEMBER); durable
    ones fan out to every member's devices and are Acked {id, OK, timestamp} (no seq: each
    copy has its own); INPUTING goes to the members' live sessions; a FILE_OFFER is a
    durable room message, every other file message is one-to-one."""
    client_id = message.id
    room = message.room
    message_type = message.type
    if not conn.v21 or not relay.rooms.is_in(room, conn.uid):
        _refuse(relay, conn, client_id, pb.Ack.NOT_MEMBER, durable)
        return
    if message_type == _ROOM_EVENT or (
        message_type in _FILE_TYPES and message_type != pb.Message.FILE_OFFER
    ):
        _refuse(relay, conn, client_id, pb.Ack.INVALID, durable)
        return
    if not durable:
        if message_type == pb.Message.INPUTING:
            room_delivery.forward_room_ephemeral(relay, conn, room, payload)
        return  # FILE_CHUNK and FILE_PROGRESS go one-to-one
    if message_type == pb.Message.FILE_OFFER and not _account_transfer(relay, conn, message):
        return
    if _too_long(message):
        _refuse(relay, conn, client_id, pb.Ack.TOO_LARGE, durable)
        return
    if client_id == 0:
        _refuse(relay, conn, client_id, pb.Ack.INVALID, durable)
        return
    duplicate = _find_duplicate(relay, conn.uid, client_id, room_dedup_key(room))
    if duplicate is not None:
        _ack(relay, conn, client_id, pb.Ack.OK, 0, duplicate[1])
        return
    if not relay.store.available:
        relay.outage.refuse_durable(relay, conn, client_id)
        return
    timestamp = room_delivery.store_room_message(relay, conn, room, client_id, payload)
    conn.pending_acks.append(ack_ok_frame(client_id, 0, timestamp))


def handle_ack(relay: Context, conn: Connection, payload: bytes) -> None:
    ack = parse_message(pb.Ack, payload)
    through = min(ack.seq, conn.pushed_seq)
    if through > 0:
        relay.inboxes.delivered_through(conn.uid, conn.box, through, receipts=True)


def handle_sync(relay: Context, conn: Connection, payload: bytes) -> None:
    sync = parse_message(pb.Sync, payload)
    if conn.send_only:  # no inbox: nothing to send, and the backlog is over at once
        relay.send_message(conn, FrameType.SYNC, pb.Sync(head_seq=0))
        return
    since = min(sync.since_seq, relay.inboxes.current_head(conn.box))
    delivery.start_backlog(relay, conn, since, send_sync=True)
