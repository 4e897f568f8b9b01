"""The relay's loop under hostile input (issue 11 items 1-3, 7, 10): one connection's bad
frame, flood or stall costs that connection, never the process or the other users.

Real relay subprocess, real TLS, real SQLite file; memory is read from /proc (VmHWM, the
peak RSS), never inferred from timing.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from protocol import encode_frame
from protocol.types import FrameType
from protocol.validation import username_key
from relay.auth import hash_password
from relay.cli import _open_store
from relay.config import RelayConfig
from tests.harness import FAST_SCRYPT_N, RelayProcess
from tests.wire import WireClient, make_buddies

MIB = 1024 * 1024
RSS_GROWTH_LIMIT = 128 * MIB


def connect(relay: RelayProcess, **kwargs: object) -> WireClient:
    return WireClient(relay.host, relay.port, fingerprint=relay.fingerprint, **kwargs)  # type: ignore[arg-type]


def logged_in(relay: RelayProcess, name: str, version: int = 1) -> WireClient:
    client = connect(relay)
    assert client.register(name).code == pb.RegisterResponse.SUCCESS
    assert client.login(name, version=version).code == pb.LoginResponse.SUCCESS
    return client


class Bystanders:
    """Two logged-in buddies; :meth:`still_chatting` proves the relay still serves them."""

    def __init__(self, relay: RelayProcess, tag: str) -> None:
        self.a = logged_in(relay, f"{tag}a")
        self.b = logged_in(relay, f"{tag}b")
        make_buddies(self.a, self.b)
        self.count = 0

    def still_chatting(self, timeout: float = 60.0) -> None:
        self.count += 1
        self.a.send_text(self.b.uid, f"ping {self.count}")
        assert self.b.next_message(timeout).msg == f"ping {self.count}"
        self.b.send_text(self.a.uid, f"pong {self.count}")
        assert self.a.next_message(timeout).msg == f"pong {self.count}"


def peak_rss(relay: RelayProcess) -> int:
    """The relay's peak resident set so far (VmHWM)."""
    for line in Path(f"/proc/{relay.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


def closed_at_once(sock: socket.socket, timeout: float = 30.0) -> bool:
    """Whether the relay closes ``sock`` (which sends nothing) within ``timeout``."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    process = RelayProcess(
        tmp_path_factory.mktemp("relay"),
        extra_args=["--frame-timeout", "2", "--login-timeout", "60"],
    )
    process.start()
    yield process
    process.stop()


_tags = iter(range(1000))


@pytest.fixture
def bystanders(relay: RelayProcess) -> Bystanders:
    return Bystanders(relay, f"by{next(_tags)}")


# -- item 1: no frame ends the process ------------------------------------------------------


def test_sync_with_the_largest_seq_leaves_the_relay_serving_everyone_else(
    relay: RelayProcess, bystanders: Bystanders
) -> None:
    client = logged_in(relay, "maxsync")
    client.send_raw(bytes.fromhex("0000000b0808ffffffffffffffffff01"))  # since_seq 2**64-1
    # Fixed at its cause it is answered; at worst only this connection is reset.
    frame_type, message = client.recv()
    if frame_type == FrameType.RESET:
        assert message.code in (pb.Reset.UNKNOWN_ERROR, pb.Reset.PROTOCOL_MISMATCH)
    else:
        assert frame_type == FrameType.SYNC
    assert relay.process is not None and relay.process.poll() is None
    bystanders.still_chatting()


# -- item 2: bounded input, even before login ------------------------------------------------


def test_a_frame_above_the_pre_login_limit_is_refused_at_its_header(
    relay: RelayProcess, bystanders: Bystanders
) -> None:
    stranger = connect(relay)
    stranger.send_raw(struct.pack(">IB", 4097, FrameType.LOGIN))  # no payload follows
    reset = stranger.expect_closed()
    assert reset is not None and reset.code == pb.Reset.FRAME_TOO_LARGE
    # After login the relay's max_frame applies: a 60 KB text goes through.
    friend = Bystanders(relay, f"big{next(_tags)}")
    friend.a.send_text(friend.b.uid, "x" * 60_000)
    assert friend.b.next_message().msg == "x" * 60_000
    bystanders.still_chatting()


def test_an_incomplete_frame_that_stops_arriving_is_reset_with_timeout(
    relay: RelayProcess, bystanders: Bystanders
) -> None:
    staller = logged_in(relay, f"staller{next(_tags)}")  # v1: no idle timeout of its own
    staller.send_raw(struct.pack(">IB", 1000, FrameType.MESSAGE) + b"\x08" * 10)
    reset = staller.expect_closed(timeout=30)
    assert reset is not None and reset.code == pb.Reset.TIMEOUT
    assert "incomplete" in reset.msg
    bystanders.still_chatting()


def test_the_input_budget_resets_the_largest_holder_and_others_keep_talking(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay", extra_args=["--input-budget", str(MIB)]) as relay:
        pair = Bystanders(relay, "budget")
        big, small = logged_in(relay, "bigholder"), logged_in(relay, "smallholder")
        small_head, small_padding = _padded_ping_head(7, 900_000)
        small.send_raw(small_head)  # it holds a few bytes, the rest comes later
        big_head, _ = _padded_ping_head(8, 2_000_000)
        big.send_raw(big_head + b"\0" * 1_200_000)  # more than the budget, incomplete
        pair.still_chatting()  # small frames still flow while the budget is spent
        relay.wait_for_log(
            r"uid=\d+ closed: reset RATE_LIMITED: the relay's input buffers "
            r"are full and this connection held the most",
            timeout=30,
        )
        # Its unread input makes the close a TCP reset, which may overtake the Reset frame.
        reset = big.expect_closed(timeout=30)
        assert reset is None or reset.code == pb.Reset.RATE_LIMITED
        small.send_raw(b"\0" * small_padding)  # with room again, its frame completes
        assert small.expect(FrameType.PING, pb.Ping, timeout=30).nonce == 7
        pair.still_chatting()


def _padded_ping_head(nonce: int, padding: int) -> tuple[bytes, int]:
    """Header and first bytes of a PING whose unknown field 100 carries ``padding`` bytes
    (the relay accepts it once complete); the caller sends the padding."""
    length, varint = padding, bytearray()
    while length >= 0x80:
        varint.append(length & 0x7F | 0x80)
        length >>= 7
    varint.append(length)
    body = pb.Ping(nonce=nonce).SerializeToString() + b"\xa2\x06" + bytes(varint)
    return struct.pack(">IB", len(body) + padding, FrameType.PING) + body, padding


# -- item 3: backpressure on reads -----------------------------------------------------------


def _add_members(data_dir: Path, count: int) -> None:
    """Users straight into the relay's store (before it starts), so LIST_USER answers big."""
    data_dir.mkdir(mode=0o700)
    store = _open_store(RelayConfig(data_dir=data_dir))
    password_hash = hash_password("pw", int(FAST_SCRYPT_N))
    for index in range(count):
        name = f"member{index:04d}"
        store.add_user(name, username_key(name), password_hash, 0)
    store.close()


def test_unread_list_user_requests_stop_being_read_and_memory_stays_bounded(tmp_path: Path) -> None:
    _add_members(tmp_path / "relay", 500)
    with RelayProcess(tmp_path / "relay") as relay:
        pair = Bystanders(relay, "lister")
        flooder = logged_in(relay, "flooder")
        pair.still_chatting()
        baseline = relay.rss_bytes()
        # 30,000 requests (150 KB) whose ~8 KB answers the flooder never reads.
        flooder.send_raw(encode_frame(FrameType.LIST_USER, b"") * 30_000)
        for _ in range(20):
            pair.still_chatting()
        assert peak_rss(relay) - baseline < RSS_GROWTH_LIMIT
        # Throttled, not dropped: once it reads, its answers come, in order, whole.
        for _ in range(200):
            response = flooder.expect(FrameType.LIST_USER, pb.ListUserResponse, timeout=60)
            assert len(response.users) == 500 and response.truncated
        pair.still_chatting()


def test_a_ping_flood_from_a_client_that_never_reads_is_throttled(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay", extra_args=["--login-timeout", "600"]) as relay:
        pair = Bystanders(relay, "pinger")
        flooder = PingFlooder(connect(relay), count=2_000_000, per_write=50_000)
        pair.still_chatting()
        baseline = relay.rss_bytes()
        flooder.start()
        for _ in range(20):
            pair.still_chatting()
        assert peak_rss(relay) - baseline < RSS_GROWTH_LIMIT
        flooder.drain.set()  # it was only made to wait: reading, it gets every answer
        flooder.join(600)
        assert flooder.error is None and flooder.answers == flooder.count
        pair.still_chatting()


class PingFlooder(threading.Thread):
    """Sends ``count`` PINGs (not logged in: PING is allowed before login) in big writes and
    reads nothing until :attr:`drain` is set, then reads every answer. The thread owns the
    socket: a TLS connection must not be used by two threads at once."""

    def __init__(self, client: WireClient, count: int, per_write: int) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.count = count
        self.per_write = per_write
        self.drain = threading.Event()
        self.answers = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._flood_then_drain()
        except BaseException as exc:  # reported to the test
            self.error = exc

    def _flood_then_drain(self) -> None:
        sock = self.client.sock
        sock.setblocking(False)
        ping = encode_frame(FrameType.PING, pb.Ping(nonce=1))
        chunk = memoryview(ping * self.per_write)
        writes, offset = self.count // self.per_write, 0
        decoder = self.client.decoder
        while self.answers < self.count:
            if writes:
                try:
                    offset += sock.send(chunk[offset:])  # the same bytes again after a WANT
                except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    pass
                else:
                    if offset == len(chunk):
                        writes, offset = writes - 1, 0
                    continue
            if self.drain.is_set():
                try:
                    data = sock.recv(1 << 20)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    data = None
                if data == b"":
                    raise ConnectionError("the relay closed the flooder")
                if data:
                    for frame in decoder.feed(data):
                        assert frame == (FrameType.PING, ping[5:])
                        self.answers += 1
                    continue
            select.select([sock] if self.drain.is_set() else [], [sock] if writes else [], [], 0.05)


# -- item 10: a v1 slow consumer gets its Reset, and everything later ------------------------


def test_a_slow_v1_reader_gets_slow_consumer_promptly_and_loses_nothing(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay") as relay:  # high water: the default 4 MiB
        sender = logged_in(relay, "talker")
        reader = logged_in(relay, "slowpoke")
        make_buddies(sender, reader)
        text = "y" * 60_000
        total = 300  # 18 MB: well past the high-water mark plus the kernel's buffers
        received: list[int] = []
        resets: list[pb.Reset] = []

        def read_slowly() -> None:
            """At most 16 KiB per 20 ms (800 KiB/s): the high-water mark's 4 MiB queued
            ahead of the Reset would take this reader over 5 s to get through."""
            frames: Sequence[tuple[int, bytes]] = reader.frames  # read past its last answer
            reader.sock.settimeout(60)
            while True:
                for frame_type, payload in frames:
                    if frame_type == FrameType.MESSAGE:
                        received.append(int(pb.Message.FromString(payload).msg[:6]))
                    elif frame_type == FrameType.RESET:
                        resets.append(pb.Reset.FromString(payload))
                try:
                    data = reader.sock.recv(16384)
                except OSError:
                    return
                if not data:
                    return
                frames = reader.decoder.feed(data)
                time.sleep(0.02)

        slow = threading.Thread(target=read_slowly, daemon=True)
        slow.start()
        for index in range(total):
            sender.send_text(reader.uid, f"{index:06d}{text}")
            if index % 4 == 3:
                # A few at a time: the kernel's buffers toward the reader fill up first,
                # then the relay's queue passes high water with the socket already full.
                sender.round_trip()
        sender.round_trip()  # everything is stored
        slow.join(120)
        assert not slow.is_alive()
        assert [r.code for r in resets] == [pb.Reset.SLOW_CONSUMER]
        assert received == list(range(len(received))) and len(received) < total
        again = connect(relay)
        assert again.login("slowpoke").code == pb.LoginResponse.SUCCESS
        rest = [int(again.next_message(timeout=60).msg[:6]) for _ in range(total - len(received))]
        assert received + rest == list(range(total))  # in order, none lost, none twice


# -- item 7: connection floods --------------------------------------------------------------


def test_pre_login_connections_per_address_are_capped_and_refusals_logged(tmp_path: Path) -> None:
    extra = [
        "--max-unauthenticated-per-address",
        "8",
        "--handshake-timeout",
        "120",
        "--login-timeout",
        "120",
    ]
    with RelayProcess(tmp_path / "relay", extra_args=extra) as relay:
        waiting = [connect(relay) for _ in range(8)]  # each finished TLS: greeted
        refused = [
            socket.create_connection((relay.host, relay.port), timeout=30) for _ in range(12)
        ]
        assert all(closed_at_once(sock) for sock in refused)
        relay.wait_for_log(r"refused \d+ connections? from 127\.0\.0\.1: 8 connections")
        lines = [
            line
            for line in relay.logs().splitlines()
            if "refused" in line and "from 127.0.0.1" in line
        ]
        assert 1 <= len(lines) < len(refused)  # logged, rate-limited
        # Another address is not affected; a login frees a place for this one.
        other = connect(relay, source_address="127.0.0.2")
        assert other.register("elsewhere").code == pb.RegisterResponse.SUCCESS
        assert waiting[0].register("settler").code == pb.RegisterResponse.SUCCESS
        assert waiting[0].login("settler").code == pb.LoginResponse.SUCCESS
        assert connect(relay).greeting  # the ninth from 127.0.0.1 is admitted now


@pytest.mark.parametrize("limit", [["--max-unauthenticated", "16"], "open files"])
def test_a_flood_of_idle_connections_cannot_lock_new_users_out(
    tmp_path: Path, limit: list[str] | str
) -> None:
    """The oldest connection not logged in is closed to make room for a new one."""
    open_files = 128 if limit == "open files" else None  # 64 connections
    extra = ["--handshake-timeout", "120"] + (limit if isinstance(limit, list) else [])
    with RelayProcess(tmp_path / "relay", extra_args=extra, open_files=open_files) as relay:
        idle = [socket.create_connection((relay.host, relay.port), timeout=30) for _ in range(100)]
        fresh = connect(relay)
        assert fresh.register("latecomer").code == pb.RegisterResponse.SUCCESS
        assert fresh.login("latecomer").code == pb.LoginResponse.SUCCESS
        assert closed_at_once(idle[0])  # the oldest went first
        relay.wait_for_log(r"closed: evicted to make room for a new connection")
        for sock in idle:
            sock.close()
