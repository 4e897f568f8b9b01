"""relay.forwarding: hand-encoded forwarding tails and Ack frames equal protobuf's bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol import FrameDecoder, encode_frame
from protocol import chat_pb2 as pb
from protocol.types import FrameType
from relay.forwarding import (
    ack_ok_frame,
    encode_varint,
    override_tail,
    receipt_frames,
)

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)


@given(value=u64)
def test_varint_matches_protobuf(value: int) -> None:
    if value:
        assert pb.Ping(nonce=value).SerializeToString() == b"\x08" + encode_varint(value)
    else:
        assert encode_varint(0) == b"\x00"  # protobuf omits a zero field; the value is 0x00


@given(
    original=st.builds(
        pb.Message, uid=u32, timestamp=u64, seq=u64, msg=st.text(max_size=20), id=u64
    ),
    uid=u32,
    timestamp=u64,
    seq=u64,
)
def test_override_tail_overrides_whatever_the_payload_held(
    original: pb.Message, uid: int, timestamp: int, seq: int
) -> None:
    forwarded = pb.Message.FromString(
        original.SerializeToString() + override_tail(uid, timestamp, seq)
    )
    assert (forwarded.uid, forwarded.timestamp, forwarded.seq) == (uid, timestamp, seq)
    assert (forwarded.msg, forwarded.id) == (original.msg, original.id)


@given(message_id=u64, seq=u64, timestamp=u64)
def test_ack_frame_equals_protobuf(message_id: int, seq: int, timestamp: int) -> None:
    frame = ack_ok_frame(message_id, seq, timestamp)
    (decoded,) = FrameDecoder().feed(frame)
    assert decoded.type == FrameType.ACK
    ack = pb.Ack.FromString(decoded.payload)
    assert (ack.id, ack.seq, ack.timestamp, ack.code, ack.delivered) == (
        message_id,
        seq,
        timestamp,
        pb.Ack.OK,
        False,
    )
    if message_id and seq and timestamp:
        assert frame == encode_frame(
            FrameType.ACK, pb.Ack(id=message_id, seq=seq, timestamp=timestamp)
        )


@given(message_ids=st.lists(st.integers(1, 2**64 - 1), max_size=5), peer=st.integers(1, 2**32 - 1))
def test_receipt_frames_are_the_receipts_back_to_back(message_ids: list[int], peer: int) -> None:
    assert receipt_frames(message_ids, peer) == b"".join(
        encode_frame(FrameType.ACK, pb.Ack(id=i, delivered=True, peer=peer)) for i in message_ids
    )


@given(message_id=st.integers(1, 2**64 - 1), peer=st.integers(1, 2**32 - 1))
def test_one_receipt_frame_equals_protobuf(message_id: int, peer: int) -> None:
    assert receipt_frames([message_id], peer) == encode_frame(
        FrameType.ACK, pb.Ack(id=message_id, delivered=True, peer=peer)
    )
