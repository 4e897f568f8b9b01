"""The frames of a run of copies of the same messages: per copy only the seq field differs.

A room's messages of a pass go to every member box in the same order (:mod:`relay.room_passes`)
and a run stored once for many boxes (:mod:`relay.store.inboxes`, shared runs) is rebuilt for
each box when read: both build a box's frames from the messages' bodies and the box's first
seq with :func:`run_frames`, a few C-level joins instead of one Python step per copy
(bench_vs_mosquitto room500: the per-copy loop was a fifth of the relay's CPU).

Invariants:
- :func:`run_frames` returns exactly what a copy-by-copy build gives: per copy the MESSAGE
  frame header, the body (a MESSAGE payload without seq), then the seq field (tag 8,
  varint), back to back; :func:`run_size` is its length, computed without building it.
- :class:`FramePieces` never changes its bodies; it caches per varint length what precedes
  each copy's varint.

Pure: no I/O, no relay state.
"""

from __future__ import annotations

from itertools import chain, repeat

from protocol.framing import pack_header
from protocol.types import FrameType
from relay.forwarding import encode_varint, seq_field

_MESSAGE = int(FrameType.MESSAGE)
_SEQ_TAG = b"\x40"  # field 8 (seq), varint
# The first varint byte of a seq, by seq & 0x7F: as the last byte (seq < 128) or followed by
# more (seq >= 128, the rest being the varint of seq >> 7).
_LOW_LAST = [bytes((low,)) for low in range(0x80)]
_LOW_MORE = [bytes((low | 0x80,)) for low in range(0x80)]
_FRAME_OVERHEAD = 5 + 1  # frame header, seq tag


class FramePieces:
    """Messages' bodies and, per seq varint length, each one's header + body + seq tag."""

    __slots__ = ("_pieces", "bodies", "body_bytes")

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = bodies
        self.body_bytes = sum(len(body) for body in bodies)
        self._pieces: dict[int, list[bytes]] = {}

    def pieces(self, varint_length: int) -> list[bytes]:
        """Per message: its frame header for a seq varint of ``varint_length`` bytes, its
        body and the seq tag (what precedes the varint); built once per length."""
        pieces = self._pieces.get(varint_length)
        if pieces is None:
            extra = 1 + varint_length
            pieces = [
                pack_header(len(body) + extra, _MESSAGE) + body + _SEQ_TAG for body in self.bodies
            ]
            self._pieces[varint_length] = pieces
        return pieces


def run_frames(messages: FramePieces, start: int, end: int, first_seq: int) -> bytes:
    """The frames of copies of messages ``start`` .. ``end - 1`` with seqs from
    ``first_seq``, back to back (module docstring).

    Seqs are split where ``seq & 0x7F`` wraps: within such a block every varint has the same
    length and the same bytes after the first, so the block is one ``zip`` of prebuilt parts.
    """
    parts: list[bytes] = []
    seq = first_seq
    index = start
    while index < end:
        low = seq & 0x7F
        stop = min(end, index + 0x80 - low)
        count = stop - index
        if seq < 0x80:
            pieces = messages.pieces(1)
            parts += chain.from_iterable(
                zip(pieces[index:stop], _LOW_LAST[low : low + count], strict=True)
            )
        else:
            rest = encode_varint(seq >> 7)
            pieces = messages.pieces(1 + len(rest))
            parts += chain.from_iterable(
                zip(
                    pieces[index:stop],
                    _LOW_MORE[low : low + count],
                    repeat(rest, count),
                    strict=True,
                )
            )
        seq += count
        index = stop
    return b"".join(parts)


def run_size(body_bytes: int, count: int, first_seq: int) -> int:
    """``len(run_frames(...))`` for ``count`` copies of bodies totalling ``body_bytes`` from
    ``first_seq``, without building them."""
    size = body_bytes + count * _FRAME_OVERHEAD
    seq = first_seq
    end = first_seq + count
    while seq < end:
        stop = min(end, (seq | 0x7F) + 1)
        size += (stop - seq) * (len(seq_field(seq)) - 1)
        seq = stop
    return size
