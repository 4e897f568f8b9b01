"""Time for a reconnecting client to receive a 100,000-message backlog (target ≤ 5 s).

Usage: python -m bench.bench_backlog [--messages 100000] [--plaintext] [--no-session]

Set-up (not measured as the result): a sender and a recipient are registered, logged in
with protocol v2 and made mutual buddies; the recipient then disconnects. The sender fills
the recipient's inbox with ``--messages`` durable 32-byte messages (unique ids, up to
``--fill-window`` un-acked by the relay at a time); every one must be accepted (Ack OK).
The fill rate is printed for information.

Measured, each from the moment the client starts to reconnect until the relay's
``Sync{head_seq}`` has arrived and every backlog message has been received:

1. **raw client**: one blocking TLS socket, ``protocol.FrameDecoder``; TCP connect + TLS
   handshake, then a v2 LoginRequest with the resume token from the first login and
   ``since_seq = 0``; frames are only counted (the last Message and the Sync are decoded
   to check the seqs). It does not acknowledge, so the backlog is still there for (2).
2. **ClientSession** (``tui.client``; skip with ``--no-session``): a fresh data dir (inbox
   cursor 0, so the session logs in with ``since_seq = 0`` and its password), measured from
   ``start()`` until its SyncCompleted event with every message reported by MessageReceived;
   this includes the session's SQLite writes (each message stored before it is
   acknowledged) and its batched ``Ack{seq}`` to the relay. The time until the session has
   also committed and closed is printed too.

Each line gives wall time, messages/s, the relay's CPU time over the same interval and the
bench process's own CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import selectors
import socket
import sys
import tempfile
import time
from pathlib import Path

from bench.bench_relay import MessageSource
from bench.benchlib import (
    BenchError,
    Endpoint,
    RelayProcess,
    WireClient,
    client_tls_context,
    machine_description,
    make_buddies,
)
from protocol import FrameDecoder, encode_frame
from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tui.client import (
    ClientSession,
    LocalStore,
    MessageReceived,
    SessionOptions,
    SyncCompleted,
    TrustPolicy,
    history_path,
)
from tui.client import Endpoint as SessionEndpoint

TARGET_S = 5.0
PASSWORD = "benchmark-pw"
READ_SIZE = 256 * 1024
_MESSAGE = int(FrameType.MESSAGE)
_ACK = int(FrameType.ACK)
_SYNC = int(FrameType.SYNC)
_LOGIN = int(FrameType.LOGIN)
_RESET = int(FrameType.RESET)


def set_up(relay: RelayProcess) -> tuple[WireClient, str, int]:
    """Register and befriend sender + recipient; returns (sender, recipient token, uid)."""
    clients = []
    for name in ("sender", "recipient"):
        client = WireClient(
            relay.host, relay.port, tls=not relay.plaintext, fingerprint=relay.fingerprint
        )
        assert client.register(name, PASSWORD).code == pb.RegisterResponse.SUCCESS
        assert client.login(name, PASSWORD, version=2).code == pb.LoginResponse.SUCCESS
        clients.append(client)
    sender, recipient = clients
    make_buddies(sender, recipient)
    token, uid = recipient.token, recipient.uid
    recipient.close()  # the recipient is offline from now on
    return sender, token, uid


def fill(sender: WireClient, recipient_uid: int, messages: int, window: int) -> float:
    """Send ``messages`` durable messages, at most ``window`` un-acked; returns seconds."""
    source = MessageSource(recipient_uid, True, messages)
    endpoint = Endpoint.from_wire("sender", sender)
    selector = selectors.DefaultSelector()
    selector.register(endpoint.sock, selectors.EVENT_READ)
    sent = accepted = 0
    started = time.perf_counter()
    frames = endpoint.read_frames()
    while accepted < messages:
        for frame_type, payload in frames:
            if frame_type == _ACK:
                ack = pb.Ack.FromString(payload)
                if ack.delivered:
                    continue
                if ack.code != pb.Ack.OK:
                    raise BenchError(f"fill: message refused: {pb.Ack.Code.Name(ack.code)}")
                accepted += 1
            elif frame_type == _RESET:
                raise BenchError(f"fill: Reset {pb.Reset.FromString(payload)}")
        more = min(window - (sent - accepted), messages - sent)
        if more > 0:
            endpoint.out += source.take(more)
            sent += more
        while not endpoint.flush():
            selector.select(1.0)  # TLS write in progress; the read side waits meanwhile
        if accepted < messages:
            if not selector.select(10.0):
                raise BenchError("fill: no Ack from the relay for 10 s")
            frames = endpoint.read_frames()
    elapsed = time.perf_counter() - started
    selector.close()
    return elapsed


def raw_reconnect(relay: RelayProcess, token: str, messages: int) -> dict[str, float]:
    """Connect, log in by token with since_seq=0, read until Sync and every message."""
    marks: dict[str, float] = {}
    cpu0, client0 = relay.cpu_seconds(), time.process_time()
    t0 = time.perf_counter()
    raw = socket.create_connection((relay.host, relay.port), timeout=30)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock: socket.socket = raw
    if not relay.plaintext:
        sock = client_tls_context().wrap_socket(raw, server_hostname=relay.host)
    marks["connected"] = time.perf_counter() - t0
    sock.sendall(
        encode_frame(
            FrameType.LOGIN,
            pb.LoginRequest(username="recipient", token=token, protocol_version=2, since_seq=0),
        )
    )
    decoder = FrameDecoder(64 * 1024 * 1024)
    feed, recv = decoder.feed, sock.recv
    received = 0
    last_message = b""
    head_seq = -1
    while head_seq < 0 or received < messages:
        data = recv(READ_SIZE)
        if not data:
            raise BenchError("raw: relay closed the connection")
        for frame_type, payload in feed(data):
            if frame_type == _MESSAGE:
                received += 1
                last_message = payload
            elif frame_type == _SYNC:
                head_seq = pb.Sync.FromString(payload).head_seq
                marks["sync"] = time.perf_counter() - t0
                marks["received_at_sync"] = received
            elif frame_type == _LOGIN:
                response = pb.LoginResponse.FromString(payload)
                if response.code != pb.LoginResponse.SUCCESS:
                    raise BenchError(f"raw: login refused: {response}")
                marks["logged_in"] = time.perf_counter() - t0
            elif frame_type == _RESET:
                raise BenchError(f"raw: Reset {pb.Reset.FromString(payload)}")
    marks["total"] = time.perf_counter() - t0
    marks["relay_cpu"] = relay.cpu_seconds() - cpu0
    marks["client_cpu"] = time.process_time() - client0
    last_seq = pb.Message.FromString(last_message).seq
    if received != messages or last_seq != head_seq or head_seq != messages:
        raise BenchError(
            f"raw: got {received} messages, last seq {last_seq}, "
            f"head_seq {head_seq}; expected {messages}"
        )
    sock.close()
    return marks


async def session_reconnect(relay: RelayProcess, data_dir: Path, messages: int) -> dict[str, float]:
    """A fresh ClientSession (cursor 0) logs in and takes the whole backlog."""
    trust = (
        TrustPolicy.plaintext()
        if relay.fingerprint is None
        else TrustPolicy.pinned(relay.fingerprint)
    )
    session = ClientSession(
        SessionEndpoint(relay.host, relay.port),
        "recipient",
        PASSWORD,
        trust=trust,
        data_dir=data_dir,
        options=SessionOptions(event_queue=messages + 1_000),
    )
    received = 0
    synced = asyncio.Event()
    head_seq = -1
    marks: dict[str, float] = {}
    t0 = 0.0

    def on_event(event: object) -> None:
        nonlocal received, head_seq
        if isinstance(event, MessageReceived):
            received += 1
            if received == messages:
                marks["all_received"] = time.perf_counter() - t0
        elif isinstance(event, SyncCompleted):
            head_seq = event.head_seq
            marks.setdefault("sync", time.perf_counter() - t0)
            synced.set()

    session.add_listener(on_event)
    cpu0, client0 = relay.cpu_seconds(), time.process_time()
    t0 = time.perf_counter()
    await session.start()
    marks["logged_in"] = time.perf_counter() - t0
    deadline = time.monotonic() + 300
    while received < messages or not synced.is_set():
        if time.monotonic() > deadline:
            raise BenchError(f"session: {received} of {messages} messages after 300 s")
        await asyncio.sleep(0.005)
    marks["total"] = time.perf_counter() - t0
    marks["relay_cpu"] = relay.cpu_seconds() - cpu0
    marks["client_cpu"] = time.process_time() - client0
    await session.close()  # final Ack and commit
    marks["closed"] = time.perf_counter() - t0
    store = LocalStore.open(history_path(data_dir, relay.host, relay.port, "recipient"))
    cursor = store.last_seq
    store.close()
    if received != messages or head_seq != messages or cursor != messages:
        raise BenchError(
            f"session: {received} messages, head_seq {head_seq}, stored cursor {cursor}"
        )
    return marks


def report(name: str, marks: dict[str, float], messages: int, steps: str) -> None:
    total = marks["total"]
    verdict = "met" if total <= TARGET_S else "NOT met"
    print(
        f"{name}: {messages:,} messages in {total:.2f} s = {messages / total:,.0f} msgs/s; "
        f"target <= {TARGET_S:g} s: {verdict}"
    )
    print(f"  {steps}")
    print(
        f"  relay CPU {marks['relay_cpu']:.2f} s "
        f"({marks['relay_cpu'] / messages * 1e6:.1f} us/message), "
        f"bench process CPU {marks['client_cpu']:.2f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--messages",
        type=int,
        default=100_000,
        help="backlog size (the relay's inbox quota is raised if needed)",
    )
    parser.add_argument(
        "--fill-window",
        type=int,
        default=1_000,
        help="messages the filling sender keeps un-acked by the relay",
    )
    parser.add_argument(
        "--plaintext", action="store_true", help="run the relay with --plaintext (no TLS)"
    )
    parser.add_argument(
        "--no-session",
        action="store_true",
        help="measure the raw client only, not the ClientSession",
    )
    args = parser.parse_args()

    print(machine_description())
    extra = ["--inbox-quota", str(args.messages)] if args.messages > 100_000 else []
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        relay = RelayProcess(Path(tmp) / "relay", plaintext=args.plaintext, extra_args=extra)
        relay.start()
        try:
            sender, token, uid = set_up(relay)
            fill_s = fill(sender, uid, args.messages, args.fill_window)
            sender.close()
            raw = raw_reconnect(relay, token, args.messages)
            session = (
                None
                if args.no_session
                else asyncio.run(session_reconnect(relay, Path(tmp) / "client", args.messages))
            )
        finally:
            relay.stop()
    transport = "plaintext TCP" if args.plaintext else "TLS"
    print(f"{transport}, {args.messages:,}-message backlog of 32-byte payloads")
    print(
        f"fill (recipient offline): {fill_s:.2f} s = {args.messages / fill_s:,.0f} msgs/s "
        f"stored and acked, window {args.fill_window}"
    )
    report(
        "raw client",
        raw,
        args.messages,
        f"connect+TLS {raw['connected'] * 1e3:.1f} ms, LoginResponse at "
        f"{raw['logged_in'] * 1e3:.1f} ms, Sync at {raw['sync']:.2f} s (after "
        f"{raw['received_at_sync']:,.0f} messages)",
    )
    if session is not None:
        report(
            "ClientSession",
            session,
            args.messages,
            f"logged in at {session['logged_in'] * 1e3:.1f} ms, all messages at "
            f"{session['all_received']:.2f} s, SyncCompleted at {session['sync']:.2f} s, "
            f"closed (committed) at {session['closed']:.2f} s",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
