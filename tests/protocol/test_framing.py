"""Frame codec: any split gives the same frames; bounds are enforced before buffering."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    DEFAULT_MAX_FRAME,
    Frame,
    FrameDecoder,
    FrameTooLarge,
    ProtocolError,
    encode_frame,
)
from protocol import chat_pb2 as pb
from protocol.framing import frame_ends

frames_strategy = st.lists(
    st.tuples(st.integers(0, 255), st.binary(max_size=300)), min_size=0, max_size=30
)


def _stream(frames: list[tuple[int, bytes]]) -> bytes:
    return b"".join(encode_frame(t, p) for t, p in frames)


@given(frames=frames_strategy, cuts=st.lists(st.integers(0, 10_000), max_size=40))
@settings(max_examples=300, deadline=None)
def test_any_split_yields_the_same_frames(frames: list[tuple[int, bytes]], cuts: list[int]) -> None:
    stream = _stream(frames)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    decoder = FrameDecoder()
    got: list[Frame] = []
    start = 0
    for point in [*points, len(stream)]:
        got.extend(decoder.feed(stream[start:point]))
        start = point
    decoder.close()
    assert got == [Frame(t, p) for t, p in frames]
    assert decoder.buffered == 0


@given(frames=frames_strategy)
@settings(max_examples=100, deadline=None)
def test_frame_ends_of_frames_back_to_back(frames: list[tuple[int, bytes]]) -> None:
    stream = _stream(frames)
    ends = frame_ends(stream)
    assert len(ends) == len(frames)
    starts = [0, *ends][: len(ends)]
    assert [stream[a:b] for a, b in zip(starts, ends, strict=True)] == [
        encode_frame(t, p) for t, p in frames
    ]
    if stream:
        for cut in (len(stream) - 1, ends[0] - 1, 3):
            if 0 < cut < len(stream) and cut not in ends:
                with pytest.raises(ProtocolError):
                    frame_ends(stream[:cut])


@given(frames=frames_strategy)
@settings(max_examples=100, deadline=None)
def test_one_byte_at_a_time_equals_all_at_once(frames: list[tuple[int, bytes]]) -> None:
    stream = _stream(frames)
    whole = FrameDecoder().feed(stream)
    decoder = FrameDecoder()
    dribbled: list[Frame] = []
    for i in range(len(stream)):
        dribbled.extend(decoder.feed(stream[i : i + 1]))
    assert dribbled == whole == [Frame(t, p) for t, p in frames]


def test_oversized_length_is_rejected_after_exactly_five_bytes() -> None:
    decoder = FrameDecoder(max_frame=1024)
    header = struct.pack(">IB", 1025, 6)
    for i in range(4):
        assert decoder.feed(header[i : i + 1]) == []
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(header[4:5])
    assert info.value.code == pb.Reset.FRAME_TOO_LARGE
    assert info.value.length == 1025
    assert decoder.buffered == 0  # nothing of the payload was kept
    with pytest.raises(FrameTooLarge):  # poisoned: the stream has lost its framing
        decoder.feed(b"\x00")


def test_default_limit_is_four_mebibytes() -> None:
    decoder = FrameDecoder()
    assert decoder.max_frame == DEFAULT_MAX_FRAME == 4 * 1024 * 1024
    assert decoder.feed(struct.pack(">IB", DEFAULT_MAX_FRAME, 6)) == []
    with pytest.raises(FrameTooLarge):
        FrameDecoder().feed(struct.pack(">IB", DEFAULT_MAX_FRAME + 1, 6))


def test_max_length_frame_passes() -> None:
    decoder = FrameDecoder(max_frame=10)
    assert decoder.feed(encode_frame(6, b"x" * 10)) == [Frame(6, b"x" * 10)]


@given(
    frames=st.lists(
        st.tuples(st.integers(0, 255), st.binary(min_size=1, max_size=50)), min_size=1, max_size=5
    ),
    cut=st.integers(1, 10_000),
)
def test_truncated_stream_raises_protocol_error_on_close(
    frames: list[tuple[int, bytes]], cut: int
) -> None:
    stream = _stream(frames)
    last_frame_size = 5 + len(frames[-1][1])
    cut = 1 + cut % (last_frame_size - 1)  # drop 1..size-1 bytes: the last frame is cut short
    decoder = FrameDecoder()
    assert len(decoder.feed(stream[:-cut])) == len(frames) - 1
    with pytest.raises(ProtocolError):
        decoder.close()


@given(garbage=st.binary(max_size=2000), max_frame=st.integers(0, 4096))
def test_garbage_raises_only_protocol_error(garbage: bytes, max_frame: int) -> None:
    decoder = FrameDecoder(max_frame=max_frame)
    try:
        for frame in decoder.feed(garbage):
            assert len(frame.payload) <= max_frame
        decoder.close()
    except ProtocolError:
        pass


def test_large_stream_work_is_linear() -> None:
    """Feeding a big frame in small pieces must not re-copy the buffer per piece.

    Counted, not timed: the decoder's buffer may only be compacted when frames complete.
    """
    payload = bytes(range(256)) * 4096  # 1 MiB
    stream = encode_frame(6, payload) * 3
    decoder = FrameDecoder()
    got = []
    for i in range(0, len(stream), 1000):
        got.extend(decoder.feed(stream[i : i + 1000]))
    assert [f.payload for f in got] == [payload] * 3


def test_encode_frame_header_and_message() -> None:
    frame = encode_frame(0, pb.LoginRequest(username="twd2", password="123456"))
    assert frame == bytes.fromhex("0000000e00") + bytes.fromhex("0a04747764321206313233343536")
    with pytest.raises(ValueError):
        encode_frame(256, b"")
    with pytest.raises(TypeError):
        encode_frame(6, "text")  # type: ignore[arg-type]


@given(
    frames=frames_strategy,
    cuts=st.lists(st.integers(0, 10_000), max_size=40),
    limits=st.lists(st.integers(1, 5), min_size=1, max_size=10),
)
@settings(max_examples=300, deadline=None)
def test_a_frame_limit_per_feed_loses_and_reorders_nothing(
    frames: list[tuple[int, bytes]], cuts: list[int], limits: list[int]
) -> None:
    """The relay takes at most N frames per loop pass; the rest wait in the decoder."""
    stream = _stream(frames)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    decoder = FrameDecoder()
    got: list[Frame] = []
    start = 0
    for index, point in enumerate([*points, len(stream)]):
        limit = limits[index % len(limits)]
        taken = decoder.feed(stream[start:point], limit)
        assert len(taken) <= limit
        got.extend(taken)
        start = point
    while decoder.has_frame:
        taken = decoder.feed(b"", limits[0])
        assert 1 <= len(taken) <= limits[0]
        got.extend(taken)
    assert decoder.feed(b"", 1) == []
    decoder.close()
    assert got == [Frame(t, p) for t, p in frames]
    assert decoder.buffered == 0


def test_frames_left_by_a_limit_stay_buffered_as_bytes() -> None:
    ping = encode_frame(9, b"\x08\x01")
    decoder = FrameDecoder()
    assert len(decoder.feed(ping * 10, 3)) == 3
    assert decoder.has_frame
    assert decoder.buffered == 7 * len(ping)  # what waits costs its bytes, not frame objects
    assert len(decoder.feed(b"", 100)) == 7
    assert not decoder.has_frame and decoder.buffered == 0


def test_an_oversized_header_behind_held_frames_counts_as_work() -> None:
    decoder = FrameDecoder(max_frame=16)
    decoder.feed(encode_frame(9, b"") + struct.pack(">IB", 17, 6), 1)
    assert decoder.has_frame  # the next feed raises: the caller must come back for it
    with pytest.raises(FrameTooLarge):
        decoder.feed(b"", 1)


def test_max_frame_can_be_raised_between_feeds() -> None:
    """Before login the relay accepts 4 KiB frames; at login it raises the limit."""
    decoder = FrameDecoder(max_frame=16)
    assert decoder.feed(encode_frame(6, b"x" * 16)) == [Frame(6, b"x" * 16)]
    decoder.max_frame = 64
    assert decoder.feed(encode_frame(6, b"y" * 64)) == [Frame(6, b"y" * 64)]


def test_an_emptied_buffer_of_a_large_frame_is_released() -> None:
    decoder = FrameDecoder()
    big = encode_frame(6, b"z" * (1024 * 1024))
    for i in range(0, len(big), 65536):
        decoder.feed(big[i : i + 65536])
    assert decoder.buffered == 0
    assert decoder._buf.__alloc__() <= 1024  # not the megabyte it grew to


def test_discard_releases_the_buffer_and_poisons_the_decoder() -> None:
    decoder = FrameDecoder()
    decoder.feed(struct.pack(">IB", 1000, 6) + b"a" * 500)
    decoder.discard()
    assert decoder.buffered == 0
    with pytest.raises(ProtocolError):
        decoder.feed(b"a" * 500)


@given(
    frames=frames_strategy,
    cut=st.integers(0, 10_000),
    handled=st.integers(0, 10),
    split=st.integers(0, 10_000),
)
@settings(max_examples=200, deadline=None)
def test_unread_frames_come_back_first_and_in_order(
    frames: list[tuple[int, bytes]], cut: int, handled: int, split: int
) -> None:
    """The relay puts back the frames a pass had no time for; nothing is lost or reordered,
    also when the frames put back sit in front of an incomplete one."""
    stream = _stream(frames)
    point = cut % (len(stream) + 1)
    decoder = FrameDecoder()
    taken = decoder.feed(stream[:point])
    kept = taken[: handled % (len(taken) + 1)]
    decoder.unread(taken[len(kept) :])
    rest = stream[point:]
    middle = split % (len(rest) + 1)
    got = kept + decoder.feed(rest[:middle]) + decoder.feed(rest[middle:])
    decoder.close()
    assert got == [Frame(t, p) for t, p in frames]
