"""The original design's capture replayed byte for byte; durability across SIGKILL."""

from __future__ import annotations

import socket
from pathlib import Path

from protocol import FrameDecoder
from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tests.harness import RelayProcess
from tests.wire import WireClient, make_buddies

# Client -> server bytes of ../shared/seeds/003_78ac6cf6ae74daef.txt (section 未加密).
SEED_LOGIN = bytes.fromhex("0000000e000a04747764321206313233343536")
SEED_LIST_BUDDY = bytes.fromhex("0000000003")
SEED_HELLO = bytes.fromhex("000000090608021a0568656c6c6f")
SEED_SECRET = bytes.fromhex("0000001d0608021a19") + b"This is a secret message."


class RawClient:
    def __init__(self, relay: RelayProcess) -> None:
        self.sock = socket.create_connection((relay.host, relay.port), timeout=10)
        self.decoder = FrameDecoder()
        self.frames: list[tuple[int, bytes]] = []
        self.raw = b""

    def next_frame(self) -> tuple[int, bytes]:
        while not self.frames:
            data = self.sock.recv(65536)
            assert data, "relay closed"
            self.raw += data
            self.frames.extend(self.decoder.feed(data))
        frame_type, payload = self.frames.pop(0)
        return frame_type, payload


def test_seed_capture_replayed_byte_for_byte(tmp_path: Path) -> None:
    with RelayProcess(tmp_path, plaintext=True) as relay:
        twd2 = WireClient(relay.host, relay.port, tls=False)
        assert twd2.register("twd2", "123456").uid == 1
        twd3 = WireClient(relay.host, relay.port, tls=False)
        assert twd3.register("twd3", "abc").uid == 2
        twd2.login("twd2", "123456")
        twd3.login("twd3", "abc")
        make_buddies(twd2, twd3)
        twd2.close()
        twd3.close()

        original = RawClient(relay)
        greeting = b"This is a chat server. Hello, 127.0.0.1!"
        assert original.next_frame() == (FrameType.RAW, greeting)
        original.sock.sendall(SEED_LOGIN)
        # The capture's LoginResponse, byte for byte: 00000002 00 1001 (SUCCESS, uid 1).
        assert original.next_frame() == (FrameType.LOGIN, bytes.fromhex("1001"))
        # Then the buddy list is pushed, as in the capture (one more response than requests).
        # The capture listed twd2 itself as well; buddies here are mutual consent, so the
        # list holds twd3 (uid 2, offline) with the same field layout.
        twd3_offline = bytes.fromhex("0a080802120474776433")
        assert original.next_frame() == (FrameType.LIST_BUDDY, twd3_offline)
        original.sock.sendall(SEED_LIST_BUDDY)
        assert original.next_frame() == (FrameType.LIST_BUDDY, twd3_offline)
        original.sock.sendall(SEED_HELLO + SEED_LIST_BUDDY + SEED_SECRET + SEED_LIST_BUDDY)
        assert original.next_frame() == (FrameType.LIST_BUDDY, twd3_offline)
        assert original.next_frame() == (FrameType.LIST_BUDDY, twd3_offline)

        # twd3 comes online and gets both messages from uid 1, the client's bytes intact.
        reader = WireClient(relay.host, relay.port, tls=False)
        reader.login("twd3", "abc")
        first, second = reader.recv_frame(), reader.recv_frame()
        assert first[0] == second[0] == FrameType.MESSAGE
        assert first[1].startswith(bytes.fromhex("08021a0568656c6c6f"))
        assert second[1].startswith(bytes.fromhex("08021a19") + b"This is a secret message.")
        hello = pb.Message.FromString(first[1])
        assert hello.uid == 1 and hello.timestamp > 0
        # The original's client is told its buddy came online.
        pushed = pb.ListBuddyResponse.FromString(original.next_frame()[1])
        assert [(u.uid, u.online) for u in pushed.users] == [(2, True)]


def test_sigkill_loses_no_account_relation_or_queued_message(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path)
    relay.start()
    try:
        alice = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        bob = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        alice.register("alice")
        bob.register("bob")
        alice.login("alice")
        bob.login("bob")
        make_buddies(alice, bob)
        carol = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        carol.register("carol")
        carol.login("carol")
        carol.add_buddy(alice.uid)  # a pending request must survive too
        bob.close()
        for i in range(200):
            alice.send_text(bob.uid, f"queued {i}")
        alice.round_trip()  # processed (and committed) before this response was written
        fingerprint = relay.fingerprint

        relay.kill()
        relay.start()
        assert relay.fingerprint == fingerprint  # same certificate after the restart

        bob2 = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        assert bob2.login("bob").code == pb.LoginResponse.SUCCESS
        assert [(u.username, u.relation) for u in bob2.login_buddies.users] == [
            ("alice", pb.User.BUDDY)
        ]
        assert [bob2.next_message().msg for _ in range(200)] == [f"queued {i}" for i in range(200)]
        alice2 = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        assert alice2.login("alice", version=2).code == pb.LoginResponse.SUCCESS
        assert sorted((u.username, u.relation) for u in alice2.login_buddies.users) == [
            ("bob", pb.User.BUDDY),
            ("carol", pb.User.REQUEST_RECEIVED),
        ]
    finally:
        relay.stop()


def test_sigterm_sends_server_shutdown_and_exits_zero(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path)
    relay.start()
    c = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
    c.register("alice")
    c.login("alice")
    assert relay.stop() == 0
    reset = c.expect_closed()
    assert reset is not None and reset.code == pb.Reset.SERVER_SHUTDOWN
