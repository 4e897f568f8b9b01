"""The plaintext frames of the original design's packet capture decode as expected.

Bytes are transcribed from ../shared/seeds/003_78ac6cf6ae74daef.txt (section "未加密").
"""

from __future__ import annotations

from protocol import Direction, FrameDecoder, decode_payload
from protocol import chat_pb2 as pb

GREETING = bytes.fromhex(
    "0000002afe5468697320697320612063686174207365727665722e2048656c6c6f2c203139322e3136382e312e3221"
)
LOGIN_REQUEST = bytes.fromhex("0000000e000a04747764321206313233343536")
LOGIN_RESPONSE = bytes.fromhex("00000002001001")
LIST_BUDDY_REQUEST = bytes.fromhex("0000000003")
LIST_BUDDY_RESPONSE = bytes.fromhex("00000016030a0a080112047477643218010a080802120474776433")


def test_greeting() -> None:
    (frame,) = FrameDecoder().feed(GREETING)
    assert frame.type == 254
    assert decode_payload(frame.type, frame.payload, Direction.TO_CLIENT) == (
        "This is a chat server. Hello, 192.168.1.2!"
    )


def test_login_request() -> None:
    (frame,) = FrameDecoder().feed(LOGIN_REQUEST)
    assert frame.type == 0
    message = decode_payload(frame.type, frame.payload, Direction.TO_RELAY)
    assert message == pb.LoginRequest(username="twd2", password="123456")


def test_login_response() -> None:
    (frame,) = FrameDecoder().feed(LOGIN_RESPONSE)
    message = decode_payload(frame.type, frame.payload, Direction.TO_CLIENT)
    assert message == pb.LoginResponse(code=pb.LoginResponse.SUCCESS, uid=1)


def test_list_buddy_request_and_response() -> None:
    frames = FrameDecoder().feed(LIST_BUDDY_REQUEST + LIST_BUDDY_RESPONSE)
    assert [f.type for f in frames] == [3, 3]
    assert decode_payload(3, frames[0].payload, Direction.TO_RELAY) == pb.ListBuddyRequest()
    response = decode_payload(3, frames[1].payload, Direction.TO_CLIENT)
    assert response == pb.ListBuddyResponse(
        users=[
            pb.User(uid=1, username="twd2", online=True),
            pb.User(uid=2, username="twd3", online=False),
        ]
    )


def test_the_server_stream_decodes_in_any_split() -> None:
    stream = GREETING + LOGIN_RESPONSE + LIST_BUDDY_RESPONSE * 3
    whole = FrameDecoder().feed(stream)
    decoder = FrameDecoder()
    dribbled = [f for b in stream for f in decoder.feed(bytes([b]))]
    assert dribbled == whole
    assert [f.type for f in whole] == [254, 0, 3, 3, 3]
