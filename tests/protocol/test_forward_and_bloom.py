"""Hand-encoded forwarding tails and Ack frames equal protobuf's bytes; the Bloom filter
never forgets what was added within its period."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol import FrameDecoder, encode_frame
from protocol import chat_pb2 as pb
from protocol.bloom import PairBloom
from protocol.forward import (
    ack_ok_frame,
    encode_varint,
    override_tail,
    receipt_frames,
)
from protocol.types import FrameType

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)


@given(value=u64)
def test_varint_matches_protobuf(value: int) -> None:
    if value:
        assert pb.Ping(nonce=value).SerializeToString() == b"\x08" + encode_varint(value)
    else:
        assert encode_varint(0) == b"\x00"  # protobuf omits a zero field; the value is 0x00


@given(original=st.builds(pb.Message, uid=u32, timestamp=u64, seq=u64, msg=st.text(max_size=20),
                          id=u64), uid=u32, timestamp=u64, seq=u64)
def test_override_tail_overrides_whatever_the_payload_held(
        original: pb.Message, uid: int, timestamp: int, seq: int) -> None:
    forwarded = pb.Message.FromString(original.SerializeToString()
                                      + override_tail(uid, timestamp, seq))
    assert (forwarded.uid, forwarded.timestamp, forwarded.seq) == (uid, timestamp, seq)
    assert (forwarded.msg, forwarded.id) == (original.msg, original.id)


@given(message_id=u64, seq=u64, timestamp=u64)
def test_ack_frame_equals_protobuf(message_id: int, seq: int, timestamp: int) -> None:
    frame = ack_ok_frame(message_id, seq, timestamp)
    (decoded,) = FrameDecoder().feed(frame)
    assert decoded.type == FrameType.ACK
    ack = pb.Ack.FromString(decoded.payload)
    assert (ack.id, ack.seq, ack.timestamp, ack.code, ack.delivered) == (
        message_id, seq, timestamp, pb.Ack.OK, False)
    if message_id and seq and timestamp:
        assert frame == encode_frame(FrameType.ACK, pb.Ack(id=message_id, seq=seq,
                                                           timestamp=timestamp))


@given(message_ids=st.lists(st.integers(1, 2**64 - 1), max_size=5),
       peer=st.integers(1, 2**32 - 1))
def test_receipt_frames_are_the_receipts_back_to_back(message_ids: list[int], peer: int) -> None:
    assert receipt_frames(message_ids, peer) == b"".join(
        encode_frame(FrameType.ACK, pb.Ack(id=i, delivered=True, peer=peer))
        for i in message_ids)


@given(message_id=st.integers(1, 2**64 - 1), peer=st.integers(1, 2**32 - 1))
def test_one_receipt_frame_equals_protobuf(message_id: int, peer: int) -> None:
    assert receipt_frames([message_id], peer) == encode_frame(
        FrameType.ACK, pb.Ack(id=message_id, delivered=True, peer=peer))


@given(pairs=st.lists(st.tuples(u32, u64), max_size=200))
def test_bloom_has_no_false_negatives_across_one_rotation(pairs: list[tuple[int, int]]) -> None:
    bloom = PairBloom(bits_log2=12, period=10.0, now=0.0)
    for a, b in pairs:
        bloom.add(a, b)
    assert all(pair in bloom for pair in pairs)
    assert bloom.maybe_rotate(10.0)
    assert all(pair in bloom for pair in pairs)  # still there for one more period


def test_bloom_forgets_after_two_rotations_and_is_mostly_negative() -> None:
    bloom = PairBloom(bits_log2=16, period=10.0)
    bloom.add(1, 2)
    assert not bloom.maybe_rotate(5.0)
    bloom.maybe_rotate(10.0)
    bloom.maybe_rotate(20.0)
    assert (1, 2) not in bloom
    for i in range(1000):
        bloom.add(7, i)
    false_positives = sum((8, i) in bloom for i in range(10_000))
    assert false_positives < 50  # 6 bits in one of 1,024 words per pair: under 0.5 %


def test_test_and_add_reports_prior_presence() -> None:
    bloom = PairBloom(bits_log2=16)
    assert not bloom.test_and_add(3, 4)
    assert bloom.test_and_add(3, 4)
    assert (3, 4) in bloom


def test_bloom_hash_is_keyed_so_ids_cannot_be_crafted_to_look_seen() -> None:
    """Issue 11: with Python's public int-tuple hash, ids that differ by 2**61 - 1 hash alike,
    so one stored id made every such id "maybe seen" (a store lookup each)."""
    bloom = PairBloom(bits_log2=16, secret=bytes(range(16)))
    bloom.add(1, 12345)
    assert (1, 12345) in bloom
    assert not any((1, 12345 + k * (2**61 - 1)) in bloom for k in range(1, 8))
