"""Bad input gets the specified Reset/close while another pair keeps chatting unaffected."""

from __future__ import annotations

import re
import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import FrameDecoder, encode_frame
from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tests.harness import RelayProcess
from tests.wire import WireClient, make_buddies

EXTRA = [
    "--handshake-timeout",
    "1",
    "--login-timeout",
    "1",
    "--high-water",
    "65536",
    "--max-frame",
    "1048576",
]


@pytest.fixture(scope="module")
def busy_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    process = RelayProcess(tmp_path_factory.mktemp("relay"), extra_args=EXTRA)
    process.start()
    yield process
    process.stop()


class Pair:
    """Two logged-in buddies; :meth:`still_chatting` proves the relay still serves them."""

    def __init__(self, relay: RelayProcess, tag: str) -> None:
        self.a = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        self.b = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        for c, name in ((self.a, f"{tag}a"), (self.b, f"{tag}b")):
            assert c.register(name).code == pb.RegisterResponse.SUCCESS
            assert c.login(name).code == pb.LoginResponse.SUCCESS
        make_buddies(self.a, self.b)
        self.count = 0

    def still_chatting(self) -> None:
        self.count += 1
        self.a.send_text(self.b.uid, f"ping {self.count}")
        assert self.b.next_message().msg == f"ping {self.count}"
        self.b.send_text(self.a.uid, f"pong {self.count}")
        assert self.a.next_message().msg == f"pong {self.count}"


_pair_counter = iter(range(1000))


@pytest.fixture
def pair(busy_relay: RelayProcess) -> Pair:
    return Pair(busy_relay, f"p{next(_pair_counter)}")


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the relay sends until it closes (a reset after an alert counts as closed)."""
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def connect(relay: RelayProcess) -> WireClient:
    return WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)


def test_oversized_length_rejected_after_five_bytes(busy_relay: RelayProcess, pair: Pair) -> None:
    c = connect(busy_relay)
    c.send_raw(struct.pack(">IB", 1048577, FrameType.MESSAGE))  # header only, no payload
    reset = c.expect_closed()
    assert reset is not None and reset.code == pb.Reset.FRAME_TOO_LARGE
    pair.still_chatting()


def test_unknown_type(busy_relay: RelayProcess, pair: Pair) -> None:
    c = connect(busy_relay)
    c.send(42, b"")
    reset = c.expect_closed()
    assert reset is not None and reset.code == pb.Reset.PROTOCOL_MISMATCH
    assert "42" in reset.msg
    pair.still_chatting()


def test_relay_only_types_from_a_client(busy_relay: RelayProcess, pair: Pair) -> None:
    c = connect(busy_relay)
    c.send(FrameType.RAW, b"hello")
    reset = c.expect_closed()
    assert reset is not None and reset.code == pb.Reset.PROTOCOL_MISMATCH
    pair.still_chatting()


@pytest.mark.parametrize("frame_type", [FrameType.LOGIN, FrameType.REGISTER, FrameType.PING])
def test_garbage_protobuf_before_login(
    busy_relay: RelayProcess, pair: Pair, frame_type: int
) -> None:
    c = connect(busy_relay)
    c.send(frame_type, b"\xff\xff\xff\xff")
    reset = c.expect_closed()
    assert reset is not None and reset.code == pb.Reset.PROTOCOL_MISMATCH
    pair.still_chatting()


def test_garbage_message_after_login(busy_relay: RelayProcess, pair: Pair) -> None:
    pair.a.send(FrameType.MESSAGE, b"\x0a\x05ab")  # length runs past the payload
    reset = pair.a.expect_closed()
    assert reset is not None and reset.code == pb.Reset.PROTOCOL_MISMATCH
    other = Pair(busy_relay, "garbage-survivor")
    other.still_chatting()


@pytest.mark.parametrize(
    "frame_type",
    [
        FrameType.LIST_USER,
        FrameType.LIST_BUDDY,
        FrameType.ADD_BUDDY,
        FrameType.REMOVE_BUDDY,
        FrameType.MESSAGE,
        FrameType.ACK,
        FrameType.SYNC,
    ],
)
def test_requests_before_login(busy_relay: RelayProcess, pair: Pair, frame_type: int) -> None:
    c = connect(busy_relay)
    c.send(frame_type, b"")
    reset = c.expect_closed()
    assert reset is not None and reset.code == pb.Reset.NOT_LOGGED_IN
    pair.still_chatting()


def test_ping_is_allowed_before_login(busy_relay: RelayProcess) -> None:
    c = connect(busy_relay)
    c.send(FrameType.PING, pb.Ping(nonce=99))
    assert c.expect(FrameType.PING, pb.Ping).nonce == 99


def test_plaintext_bytes_to_the_tls_port(busy_relay: RelayProcess, pair: Pair) -> None:
    raw = socket.create_connection((busy_relay.host, busy_relay.port), timeout=10)
    raw.sendall(encode_frame(FrameType.LOGIN, pb.LoginRequest(username="x", password="y")))
    data = b""
    while chunk := raw.recv(4096):
        data += chunk
    (frame,) = FrameDecoder().feed(data)
    reset = pb.Reset.FromString(frame.payload)
    assert frame.type == FrameType.RESET and reset.code == pb.Reset.PROTOCOL_MISMATCH
    assert "TLS" in reset.msg
    pair.still_chatting()


def test_garbage_that_looks_like_tls(busy_relay: RelayProcess, pair: Pair) -> None:
    raw = socket.create_connection((busy_relay.host, busy_relay.port), timeout=10)
    raw.sendall(b"\x16\x03\x01\x00\x05hello-this-is-not-a-client-hello" * 4)
    received = read_until_closed(raw)
    assert len(received) < 64  # at most a TLS alert, then the relay hangs up
    busy_relay.wait_for_log(r"closed: handshake failed")
    pair.still_chatting()


def test_handshake_never_finished(busy_relay: RelayProcess, pair: Pair) -> None:
    silent = socket.create_connection((busy_relay.host, busy_relay.port), timeout=10)
    half = socket.create_connection((busy_relay.host, busy_relay.port), timeout=10)
    half.sendall(b"\x16\x03\x01\x02\x00\x01")  # a ClientHello that never completes
    pair.still_chatting()
    assert silent.recv(1) == b""  # closed by the relay after the handshake timeout
    assert half.recv(1) == b""
    busy_relay.wait_for_log(r"closed: handshake timeout")
    pair.still_chatting()


def test_login_timeout(busy_relay: RelayProcess, pair: Pair) -> None:
    c = connect(busy_relay)
    reset = c.expect_closed(timeout=10)
    assert reset is not None and reset.code == pb.Reset.TIMEOUT
    pair.still_chatting()


def test_client_that_never_reads_is_cut_off_and_loses_nothing(
    busy_relay: RelayProcess, pair: Pair
) -> None:
    sender = Pair(busy_relay, "flood")
    victim = sender.b  # reads nothing until the relay reports the Reset, then at full speed
    text = "x" * 1000
    sent = 0
    deadline = time.monotonic() + 60
    reset_seen = False
    while time.monotonic() < deadline and not reset_seen:
        for _ in range(100):
            sender.a.send_text(victim.uid, f"{sent:06d}{text}")
            sent += 1
        pair.still_chatting()  # the relay keeps serving others while the victim stalls
        reset_seen = "SLOW_CONSUMER" in busy_relay.logs()
    assert reset_seen, "relay never cut off the non-reading client"
    # What reached the victim's socket before the cut is still readable there.
    before: list[int] = []
    reset = None
    try:
        while True:
            frame_type, message = victim.recv(timeout=10)
            if frame_type == FrameType.MESSAGE:
                before.append(int(message.msg[:6]))
            elif frame_type == FrameType.RESET:
                reset = message
    except (ConnectionError, OSError):
        pass
    assert reset is not None and reset.code == pb.Reset.SLOW_CONSUMER
    sender.a.round_trip()  # every message sent so far has been processed
    again = connect(busy_relay)
    again.login("floodb")
    after: list[int] = []
    while len(before) + len(after) < sent:
        after.append(int(again.next_message(timeout=20).msg[:6]))
    # Nothing lost, nothing twice, in order: the rest arrives at the next login.
    assert before + after == list(range(sent))


def test_idle_v2_session_gets_timeout(tmp_path: Path) -> None:
    with RelayProcess(tmp_path, extra_args=["--idle-timeout", "1"]) as relay:
        c = connect(relay)
        c.register("idle")
        assert c.login("idle", version=2).code == pb.LoginResponse.SUCCESS
        v1 = connect(relay)
        v1.register("oldie")
        v1.login("oldie")
        reset = c.expect_closed(timeout=10)
        assert reset is not None and reset.code == pb.Reset.TIMEOUT
        v1.send(FrameType.LIST_BUDDY, pb.ListBuddyRequest())  # v1 has no idle timeout
        assert v1.expect(FrameType.LIST_BUDDY, pb.ListBuddyResponse, skip=()) is not None


def _loop_passes(relay: RelayProcess) -> int:
    """The relay's loop pass count, from the stats line SIGUSR1 makes it log."""
    logged = relay.logs().count("stats: ")
    assert relay.process is not None
    relay.process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 10
    while relay.logs().count("stats: ") == logged:
        assert time.monotonic() < deadline, "no stats line after SIGUSR1"
        time.sleep(0.01)
    return int(re.findall(r"stats: .* passes=(\d+)", relay.logs())[-1])


def test_more_connections_than_file_descriptors(tmp_path: Path) -> None:
    with RelayProcess(tmp_path, open_files=128) as relay:
        relay.wait_for_log(r"open-file limit 128 allows 64 connections")
        pair = Pair(relay, "fd")
        flood = [socket.create_connection((relay.host, relay.port), timeout=10) for _ in range(150)]
        pair.still_chatting()
        closed = 0
        for sock in flood:
            sock.settimeout(0.05)
            try:
                if sock.recv(1) == b"":
                    closed += 1
            except TimeoutError:
                pass
            except ConnectionResetError:
                closed += 1
        assert closed >= 150 - 64  # everything past the cap was turned away at once
        # Idle, not spinning on a listener that stays readable: an idle loop wakes for its
        # timers a few times a second, a spinning one a hundred thousand times (counted in
        # loop passes, not CPU seconds, so a slow machine cannot fail it).
        passes_before = _loop_passes(relay)
        time.sleep(1.0)
        assert _loop_passes(relay) - passes_before < 1000
        for sock in flood:
            sock.close()
        pair.still_chatting()
