"""Errors raised when the peer misbehaves.

Invariant: a :class:`ProtocolError` always carries the ``Reset.Code`` the receiving side should
send before closing, and a short reason that is safe to log and to put in ``Reset.msg``
(it never contains payload bytes).
"""

from __future__ import annotations

from protocol import chat_pb2


class ProtocolError(Exception):
    """The peer sent bytes that break PROTOCOL.md; answer with Reset(code, reason) and close."""

    def __init__(
        self, reason: str, code: chat_pb2.Reset.Code.ValueType = chat_pb2.Reset.PROTOCOL_MISMATCH
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class FrameTooLarge(ProtocolError):
    """A frame header declared a length above the decoder's ``max_frame``."""

    def __init__(self, length: int, max_frame: int) -> None:
        super().__init__(
            f"frame of {length} bytes exceeds the limit of {max_frame} bytes",
            chat_pb2.Reset.FRAME_TOO_LARGE,
        )
        self.length = length
        self.max_frame = max_frame
