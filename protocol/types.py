"""The type table of PROTOCOL.md section 3, and payload decoding per direction.

Invariants:
- ``TYPE_TABLE`` is the only place that maps a frame type code to its message classes; the
  relay, the client and the tests all read it from here.
- Requests and responses of one operation share a code; the direction decides the class.
- :func:`decode_payload` raises only :class:`ProtocolError` for anything the peer can send.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from protocol import chat_pb2 as pb
from protocol.errors import ProtocolError

M = TypeVar("M", bound=ProtoMessage)


class FrameType(enum.IntEnum):
    """Frame type codes (the u8 after the length)."""

    LOGIN = 0
    REGISTER = 1
    LIST_USER = 2
    LIST_BUDDY = 3
    ADD_BUDDY = 4
    REMOVE_BUDDY = 5
    MESSAGE = 6
    ACK = 7
    SYNC = 8
    PING = 9
    ROOM = 10
    BLOCK = 11
    RAW = 254
    RESET = 255


class Direction(enum.Enum):
    """Who sends the frame: a client to the relay, or the relay to a client."""

    TO_RELAY = "to_relay"
    TO_CLIENT = "to_client"


@dataclass(frozen=True)
class TypeInfo:
    """One row of the type table. ``None`` class: that direction never carries this type.

    ``raw_text`` marks the RAW greeting, whose payload is UTF-8 text, not protobuf.
    ``allowed_before_login`` lists what a client may send before it has logged in.
    """

    code: FrameType
    to_relay: type[ProtoMessage] | None
    to_client: type[ProtoMessage] | None
    since: int
    allowed_before_login: bool = False
    raw_text: bool = False


TYPE_TABLE: dict[int, TypeInfo] = {
    info.code: info
    for info in (
        TypeInfo(FrameType.LOGIN, pb.LoginRequest, pb.LoginResponse, 1, allowed_before_login=True),
        TypeInfo(
            FrameType.REGISTER,
            pb.RegisterRequest,
            pb.RegisterResponse,
            1,
            allowed_before_login=True,
        ),
        TypeInfo(FrameType.LIST_USER, pb.ListUserRequest, pb.ListUserResponse, 1),
        TypeInfo(FrameType.LIST_BUDDY, pb.ListBuddyRequest, pb.ListBuddyResponse, 1),
        TypeInfo(FrameType.ADD_BUDDY, pb.AddBuddyRequest, pb.AddBuddyResponse, 1),
        TypeInfo(FrameType.REMOVE_BUDDY, pb.RemoveBuddyRequest, pb.RemoveBuddyResponse, 1),
        TypeInfo(FrameType.MESSAGE, pb.Message, pb.Message, 1),
        TypeInfo(FrameType.ACK, pb.Ack, pb.Ack, 2),
        TypeInfo(FrameType.SYNC, pb.Sync, pb.Sync, 2),
        TypeInfo(FrameType.PING, pb.Ping, pb.Ping, 2, allowed_before_login=True),
        TypeInfo(FrameType.ROOM, pb.RoomRequest, pb.RoomResponse, 2),  # v2.1
        TypeInfo(FrameType.BLOCK, pb.BlockRequest, pb.BlockResponse, 2),  # v2.1
        TypeInfo(FrameType.RAW, None, None, 1, raw_text=True),
        TypeInfo(FrameType.RESET, pb.Reset, pb.Reset, 1, allowed_before_login=True),
    )
}

# Message.type values that are forwarded only to online recipients and never stored.
EPHEMERAL_MESSAGE_TYPES: frozenset[int] = frozenset(
    {pb.Message.INPUTING, pb.Message.FILE_CHUNK, pb.Message.FILE_PROGRESS}
)


def type_info(code: int) -> TypeInfo:
    """The table row for ``code``; :class:`ProtocolError` if the code is unknown."""
    info = TYPE_TABLE.get(code)
    if info is None:
        raise ProtocolError(f"unknown frame type {code}")
    return info


def is_durable(message_type: int) -> bool:
    """True if a Message of this ``Message.type`` is stored and acknowledged (section 7).

    Unknown future types count as durable: storing too much is safe, dropping is not.
    """
    return message_type not in EPHEMERAL_MESSAGE_TYPES


def message_class(code: int, direction: Direction) -> type[ProtoMessage]:
    """The protobuf class a frame of ``code`` carries in ``direction``."""
    info = type_info(code)
    cls = info.to_relay if direction is Direction.TO_RELAY else info.to_client
    if cls is None:
        raise ProtocolError(f"frame type {info.code.name} is not valid in this direction")
    return cls


def decode_payload(code: int, payload: bytes, direction: Direction) -> ProtoMessage | str:
    """Decode a frame payload into its message (or text, for RAW sent to a client)."""
    info = type_info(code)
    if info.raw_text:
        if direction is not Direction.TO_CLIENT:
            raise ProtocolError("RAW frames are sent by the relay only")
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("RAW greeting is not UTF-8") from exc
    return parse_message(message_class(code, direction), payload)


def parse_message(cls: type[M], payload: bytes) -> M:
    """Decode ``payload`` as ``cls``; :class:`ProtocolError` if it does not decode."""
    message = cls()
    try:
        message.ParseFromString(payload)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ProtocolError(f"payload does not decode as {cls.__name__}") from exc
    return message
