"""Frame codec: ``u32 length (big-endian) | u8 type | payload`` (PROTOCOL.md section 2).

Invariants:
- :class:`FrameDecoder` is correct for any split of the byte stream: feeding the same bytes in
  any chunking yields the same frames in the same order.
- ``feed(data, max_frames)`` returns at most ``max_frames`` frames; complete frames beyond
  that stay buffered (as bytes, not as frame objects) and come out of later calls, in order.
  The frames returned over all calls do not depend on the split or on the limits.
- A declared length above ``max_frame`` raises :class:`FrameTooLarge` as soon as the decoder
  reaches its 5 header bytes, without waiting for any of the payload. ``max_frame`` may be
  raised between calls (the relay does at login).
- Total work is O(n) for n bytes fed: consumed bytes are dropped once per ``feed`` call (each
  byte is moved at most once), never by re-slicing the buffer per frame. A buffer that grew
  for a large frame is released once it is empty, so an idle decoder holds no memory.
- After an error the decoder is poisoned: further ``feed`` calls raise the same error, so a
  caller cannot accidentally resume a stream that has lost its framing.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

from google.protobuf.message import Message as ProtoMessage

from protocol.errors import FrameTooLarge, ProtocolError

HEADER_SIZE = 5
DEFAULT_MAX_FRAME = 4 * 1024 * 1024
_HEADER = struct.Struct(">IB")
_MAX_U32 = 0xFFFFFFFF
_KEEP_ALLOCATED = 64 * 1024  # an empty buffer with more room than this is released


class Frame(NamedTuple):
    """One decoded frame: its type code and the raw payload bytes."""

    type: int
    payload: bytes


pack_header = _HEADER.pack
"""``pack_header(length, frame_type)``: the unchecked fast path of :func:`encode_header`."""


def encode_header(frame_type: int, length: int) -> bytes:
    """The 5 header bytes of a frame carrying ``length`` payload bytes."""
    if not 0 <= frame_type <= 255:
        raise ValueError(f"frame type {frame_type} is not a u8")
    if not 0 <= length <= _MAX_U32:
        raise ValueError(f"payload length {length} does not fit a u32")
    return _HEADER.pack(length, frame_type)


def encode_frame(frame_type: int, message: ProtoMessage | bytes | bytearray | memoryview) -> bytes:
    """Serialise ``message`` (a protobuf message or raw payload bytes) into one frame."""
    if isinstance(message, ProtoMessage):
        payload = message.SerializeToString()
    elif isinstance(message, (bytes, bytearray, memoryview)):
        payload = bytes(message)
    else:
        raise TypeError(f"cannot frame a {type(message).__name__}")
    return encode_header(frame_type, len(payload)) + payload


def frame_ends(data: bytes | bytearray | memoryview) -> list[int]:
    """End offsets of the frames packed back to back in ``data`` (whole frames only).

    Used on stored runs of frames (the relay's inbox keeps consecutive MESSAGE frames as one
    blob). Raises :class:`ProtocolError` if ``data`` does not end exactly on a frame boundary.
    """
    ends: list[int] = []
    pos = 0
    end = len(data)
    unpack = _HEADER.unpack_from
    while pos < end:
        if end - pos < HEADER_SIZE:
            raise ProtocolError("stored frames end inside a frame header")
        length, _ = unpack(data, pos)
        pos += HEADER_SIZE + length
        if pos > end:
            raise ProtocolError("stored frames end inside a frame")
        ends.append(pos)
    return ends


class FrameDecoder:
    """Incremental decoder: ``feed(data)`` then iterate the complete frames it returns.

    ``feed`` returns a list of the frames completed by ``data``. Bytes of an incomplete frame
    stay buffered until the rest arrives.
    """

    __slots__ = ("_buf", "_error", "_need", "max_frame")

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        if max_frame < 0 or max_frame > _MAX_U32:
            raise ValueError("max_frame must fit a u32")
        self.max_frame = max_frame
        self._buf = bytearray()
        # Length of the frame whose header has been validated, header included; 0 = unknown.
        self._need = 0
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held: an incomplete frame, and complete frames a limited ``feed`` left."""
        return len(self._buf)

    @property
    def has_frame(self) -> bool:
        """Whether ``feed(b"")`` would return a frame (or raise): work is waiting."""
        if self._error is not None:
            return True
        size = len(self._buf)
        if self._need:
            return size >= self._need
        if size < HEADER_SIZE:
            return False
        length: int = _HEADER.unpack_from(self._buf)[0]
        return length > self.max_frame or size >= HEADER_SIZE + length

    def feed(self, data: bytes | bytearray | memoryview, max_frames: int = 0) -> list[Frame]:
        """Add ``data`` to the stream and return the frames now complete, in order.

        With ``max_frames`` > 0 at most that many are returned; the rest stay buffered for
        later calls (``feed(b"", n)`` takes them without adding input).
        """
        if self._error is not None:
            raise self._error
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        max_frame = self.max_frame
        unpack = _HEADER.unpack_from
        new_tuple = tuple.__new__
        need = self._need
        left = max_frames or -1  # counts down to 0 only when a limit was given
        while True:
            if need == 0:
                if end - pos < HEADER_SIZE:
                    break
                length, _ = unpack(buf, pos)
                if length > max_frame:
                    del buf[:]
                    self._error = FrameTooLarge(length, max_frame)
                    raise self._error
                need = HEADER_SIZE + length
            if end - pos < need:
                break
            # tuple.__new__ directly: a NamedTuple's own __new__ is a Python-level function.
            payload = bytes(buf[pos + HEADER_SIZE : pos + need])
            frames.append(new_tuple(Frame, (buf[pos + 4], payload)))
            pos += need
            need = 0
            left -= 1
            if not left:
                break
        self._need = need
        if pos:
            del buf[:pos]
            if not buf and buf.__alloc__() > _KEEP_ALLOCATED:
                self._buf = bytearray()  # give a large frame's buffer back
        return frames

    def unread(self, frames: Sequence[Frame]) -> None:
        """Put back, at the front and in order, frames a caller took from :meth:`feed` but
        did not handle: the next ``feed`` returns them first, as if never taken."""
        if frames:
            pack = _HEADER.pack
            self._buf[0:0] = b"".join(
                pack(len(payload), frame_type) + payload for frame_type, payload in frames
            )
            self._need = 0  # the buffer starts with a frame whose header is not read yet

    def discard(self) -> None:
        """Drop everything buffered and release the buffer. The stream has lost its framing,
        so the decoder is poisoned like after an error."""
        self._buf = bytearray()
        self._need = 0
        if self._error is None:
            self._error = ProtocolError("buffered input was discarded")

    def close(self) -> None:
        """Declare end of stream: raise :class:`ProtocolError` if a frame was cut short."""
        if self._error is not None:
            raise self._error
        if self._buf:
            self._error = ProtocolError(
                f"stream ended inside a frame ({len(self._buf)} bytes buffered)"
            )
            raise self._error
