"""Forwarding: rewrite a client's Message without decoding and re-encoding it, and build the
relay's Ack frames by hand.

The relay must set ``uid`` (to the sender), ``timestamp`` and ``seq`` (PROTOCOL.md section 7).
Protobuf lets a later occurrence of a scalar field override an earlier one, so appending
those three fields to the client's payload yields the forwarded message; everything else
stays the client's opaque bytes.

Invariant: ``Message.FromString(payload + override_tail(u, t, s))`` has uid ``u``,
timestamp ``t`` and seq ``s`` whatever ``payload`` held, including explicit zeros.
The Ack frames built here are byte-identical to ``encode_frame`` of the same Ack (tested).

State owned: two module-level Ack objects reused by :func:`ack_ok_frame` and
:func:`receipt_frames` (every field they carry is assigned on each call; the relay's loop is
single-threaded, and encoding into a reused object is what keeps the durable path fast).
"""

from __future__ import annotations

from collections.abc import Iterable

from protocol import chat_pb2
from protocol.framing import pack_header
from protocol.types import FrameType

_ONE_BYTE = [bytes((value,)) for value in range(0x80)]


def encode_varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    if value < 0x80:
        if value < 0:
            raise ValueError("varints here are unsigned")
        return _ONE_BYTE[value]
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    if value < 0x200000:  # seqs past 16384 (every long-lived inbox): no loop
        return bytes(((value & 0x7F) | 0x80, ((value >> 7) & 0x7F) | 0x80, value >> 14))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_TAG_UID = b"\x08"  # field 1, varint
_TAG_TIMESTAMP = b"\x10"  # field 2, varint
_TAG_SEQ = b"\x40"  # field 8, varint


def override_tail(uid: int, timestamp: int, seq: int) -> bytes:
    """Bytes to append to a Message payload so it carries these uid, timestamp and seq."""
    return sender_prefix(uid, timestamp) + seq_field(seq)


def sender_prefix(uid: int, timestamp: int) -> bytes:
    """The uid and timestamp part of :func:`override_tail` (callers may cache it)."""
    return _TAG_UID + encode_varint(uid) + _TAG_TIMESTAMP + encode_varint(timestamp)


OUTGOING_TRUE = b"\x58\x01"  # field 11 (outgoing), varint 1: appended to mark a copy


def outgoing_prefix(peer: int, timestamp: int) -> bytes:
    """Override fields of an ``outgoing`` copy (PROTOCOL.md section 9): uid = the peer it
    went to, the timestamp, outgoing = true (the seq field follows, per copy)."""
    return (
        _TAG_UID + encode_varint(peer) + _TAG_TIMESTAMP + encode_varint(timestamp) + OUTGOING_TRUE
    )


def seq_field(seq: int) -> bytes:
    """The seq part of :func:`override_tail`: the tag, then the varint. Once per stored
    copy: the sizes every inbox reaches (below 2**21) are built in one step."""
    if seq < 0x80:
        return bytes((0x40, seq))
    if seq < 0x4000:
        return bytes((0x40, (seq & 0x7F) | 0x80, seq >> 7))
    if seq < 0x200000:
        return bytes((0x40, (seq & 0x7F) | 0x80, ((seq >> 7) & 0x7F) | 0x80, seq >> 14))
    return _TAG_SEQ + encode_varint(seq)


_ACK_HEADER_TYPE = int(FrameType.ACK)  # a plain int: struct packs it faster than the enum
_Ack = chat_pb2.Ack


def ack_ok_frame(message_id: int, seq: int, timestamp: int) -> bytes:
    """The whole ACK frame ``Ack{id, seq, code OK, timestamp}``.

    One is sent per durable message. Message ids are large 64-bit values, which upb encodes
    ~3x faster than a Python varint loop. One Ack object is reused (every field it carries
    is assigned on each call; the loop is single-threaded).
    """
    ack = _OK_ACK
    ack.id = message_id
    ack.seq = seq
    ack.timestamp = timestamp
    payload = ack.SerializeToString()
    return pack_header(len(payload), _ACK_HEADER_TYPE) + payload


def receipt_frames(message_ids: Iterable[int], peer: int) -> bytes:
    """The delivery receipts ``Ack{id, delivered: true, peer}`` of ``message_ids``: one whole
    ACK frame per id, back to back (one Ack object is reused, as in :func:`ack_ok_frame`)."""
    ack = _RECEIPT
    ack.peer = peer
    serialize = ack.SerializeToString
    frames: list[bytes] = []
    append = frames.append
    for message_id in message_ids:
        ack.id = message_id
        payload = serialize()
        append(pack_header(len(payload), _ACK_HEADER_TYPE))
        append(payload)
    return b"".join(frames)


_OK_ACK = _Ack()
_RECEIPT = _Ack(delivered=True)
