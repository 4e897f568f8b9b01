"""Type table and payload decoding: every message round-trips, bad payloads are refused."""

from __future__ import annotations

import contextlib

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message as ProtoMessage
from hypothesis import given
from hypothesis import strategies as st

from protocol import Direction, FrameDecoder, FrameType, ProtocolError, decode_payload, encode_frame
from protocol import chat_pb2 as pb
from protocol.types import TYPE_TABLE, is_durable, message_class


def _populate(message: ProtoMessage, depth: int = 0) -> ProtoMessage:
    """Set every field of ``message`` to a non-default value (recursing into sub-messages)."""
    for field in message.DESCRIPTOR.fields:
        name = field.name
        repeated = field.is_repeated
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if repeated:
                for _ in range(2):
                    _populate(getattr(message, name).add(), depth + 1)
            else:
                _populate(getattr(message, name), depth + 1)
            continue
        if field.type == FieldDescriptor.TYPE_ENUM:
            value: object = field.enum_type.values[-1].number
        elif field.type == FieldDescriptor.TYPE_STRING:
            value = f"{name}-ü-[/]"
        elif field.type == FieldDescriptor.TYPE_BYTES:
            value = b"\x00\xff" + name.encode()
        elif field.type == FieldDescriptor.TYPE_BOOL:
            value = True
        else:
            value = 2**31 - 7 if field.type == FieldDescriptor.TYPE_UINT32 else 2**63 + 5
        if repeated:
            getattr(message, name).extend([value, value])
        else:
            setattr(message, name, value)
    return message


ROWS = [
    (code, direction)
    for code, info in TYPE_TABLE.items()
    for direction in Direction
    if (info.to_relay if direction is Direction.TO_RELAY else info.to_client) is not None
]


@pytest.mark.parametrize(("code", "direction"), ROWS)
def test_every_message_type_round_trips(code: int, direction: Direction) -> None:
    original = _populate(message_class(code, direction)())
    frames = FrameDecoder().feed(encode_frame(code, original))
    assert len(frames) == 1 and frames[0].type == code
    decoded = decode_payload(frames[0].type, frames[0].payload, direction)
    assert decoded == original
    assert decoded.SerializeToString(deterministic=True) == original.SerializeToString(
        deterministic=True
    )


def test_every_type_of_the_protocol_table_is_present() -> None:
    assert sorted(TYPE_TABLE) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 254, 255]
    assert message_class(FrameType.LOGIN, Direction.TO_RELAY) is pb.LoginRequest
    assert message_class(FrameType.LOGIN, Direction.TO_CLIENT) is pb.LoginResponse
    assert message_class(FrameType.MESSAGE, Direction.TO_CLIENT) is pb.Message


def test_raw_greeting_is_text_to_clients_only() -> None:
    assert decode_payload(254, "héllo".encode(), Direction.TO_CLIENT) == "héllo"
    with pytest.raises(ProtocolError):
        decode_payload(254, b"hi", Direction.TO_RELAY)
    with pytest.raises(ProtocolError):
        decode_payload(254, b"\xff\xfe", Direction.TO_CLIENT)


@pytest.mark.parametrize("code", [12, 13, 100, 200, 253])
def test_unknown_type_is_a_protocol_mismatch(code: int) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_payload(code, b"", Direction.TO_RELAY)
    assert info.value.code == pb.Reset.PROTOCOL_MISMATCH
    assert str(code) in info.value.reason


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff",
        b"\x0a\x05ab",
        b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        b"\x0a\x02\xc3\x28",
    ],
)
def test_undecodable_payload_is_a_protocol_error(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_payload(FrameType.LOGIN, payload, Direction.TO_RELAY)
    assert "LoginRequest" in info.value.reason


@given(
    code=st.sampled_from(sorted(TYPE_TABLE)),
    payload=st.binary(max_size=200),
    direction=st.sampled_from(list(Direction)),
)
def test_random_payloads_raise_only_protocol_error(
    code: int, payload: bytes, direction: Direction
) -> None:
    with contextlib.suppress(ProtocolError):
        decode_payload(code, payload, direction)


def test_durability_of_message_types() -> None:
    durable = {
        pb.Message.MESSAGE,
        pb.Message.FILE,
        pb.Message.GRAPHICS,
        pb.Message.FILE_OFFER,
        pb.Message.FILE_ACCEPT,
        pb.Message.FILE_DECLINE,
        pb.Message.FILE_CANCEL,
        pb.Message.ROOM_EVENT,
    }
    for value in pb.Message.Type.values():
        assert is_durable(value) == (value in durable)
