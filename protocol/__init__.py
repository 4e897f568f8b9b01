"""Parley wire protocol, sans-IO.

Invariants of this package:
- It never imports socket, ssl, selectors, asyncio, sqlite3 or textual (a test enforces it):
  it turns bytes into frames and messages and back, and nothing else.
- Every failure caused by the peer's bytes is a :class:`ProtocolError` carrying the Reset code
  a caller should send; misuse by the caller (wrong argument types) raises the usual
  ``TypeError``/``ValueError``.
"""

from protocol.errors import FrameTooLarge, ProtocolError
from protocol.framing import (
    DEFAULT_MAX_FRAME,
    HEADER_SIZE,
    Frame,
    FrameDecoder,
    encode_frame,
)
from protocol.types import (
    Direction,
    FrameType,
    TypeInfo,
    decode_payload,
    is_durable,
    type_info,
)

__all__ = [
    "DEFAULT_MAX_FRAME",
    "HEADER_SIZE",
    "Direction",
    "Frame",
    "FrameDecoder",
    "FrameTooLarge",
    "FrameType",
    "ProtocolError",
    "TypeInfo",
    "decode_payload",
    "encode_frame",
    "is_durable",
    "type_info",
]
