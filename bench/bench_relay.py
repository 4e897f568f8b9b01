"""Relay CPU time per relayed 32-byte message (TLS by default), v1 or v2 sessions.

Usage: python -m bench.bench_relay [--mode v1|v2] [--messages 200000] [--plaintext]

Set-up: ``--pairs`` sender/receiver pairs of users (register + login on one connection each,
then mutual buddies). Each sender keeps ``--window`` messages in flight, where "in flight"
means sent but not yet received by its receiver: whenever the bench's receiver side reads k
messages, the paired sender sends k more. The payload of every Message is exactly 32 bytes
(uid = receiver, type MESSAGE, text padded; in v2 also a unique ``id``).

- ``--mode v1``: v1 sessions; the relay deletes each stored row once it is written to the
  receiver's socket; no acks.
- ``--mode v2``: v2 sessions (LoginRequest.protocol_version = 2); the relay Acks each
  message to its sender after commit, receivers send ``Ack{seq}`` every ``--ack-every``
  messages, and the relay sends the senders delivery receipts.

After ``--warmup`` seconds of traffic the relay process's own CPU time (utime + stime from
/proc/<pid>/stat) is sampled, and again once ``--messages`` more messages have been
delivered. Figures: messages delivered, wall time, msgs/s, relay CPU µs per message and
the relay's CPU utilisation (near 100 % = the relay is the bottleneck), and the bench
client's own CPU. ``--profile FILE`` runs the relay under cProfile (slower) and prints its
top functions.

The client is one thread, one selector, non-blocking sockets, frames pre-encoded with
``protocol.encode_frame`` and decoded with ``protocol.FrameDecoder``; it competes with the
relay for the machine's cores, so keep it lean.
"""

from __future__ import annotations

import argparse
import pstats
import selectors
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.benchlib import (
    BenchError,
    Endpoint,
    RelayProcess,
    WireClient,
    machine_description,
    make_buddies,
    peak_rss_bytes,
)
from protocol import chat_pb2 as pb
from protocol import encode_frame
from protocol.types import FrameType

PAYLOAD_SIZE = 32
ID_BASE = 1 << 35  # every id in [2**35, 2**42) is a 6-byte varint: constant payload size
POOL_BLOCK = 4096
_MESSAGE = int(FrameType.MESSAGE)
_ACK = int(FrameType.ACK)
_RESET = int(FrameType.RESET)


class MessageSource:
    """Pre-encoded MESSAGE frames for one sender, 32-byte payloads, unique ids in v2."""

    def __init__(self, recipient: int, v2: bool, pregenerate: int) -> None:
        self.recipient = recipient
        self.v2 = v2
        self.next_id = ID_BASE
        probe = pb.Message(uid=recipient, type=pb.Message.MESSAGE, id=ID_BASE if v2 else 0)
        self.text_len = PAYLOAD_SIZE - probe.ByteSize() - 2  # tag + 1-byte length
        self._single = self._frame(ID_BASE if v2 else 0)
        self.frame_size = len(self._single)
        self._pool = b""
        self._pos = 0
        if v2:
            self._refill(pregenerate)

    def _frame(self, message_id: int) -> bytes:
        message = pb.Message(
            uid=self.recipient, type=pb.Message.MESSAGE, msg="x" * self.text_len, id=message_id
        )
        frame = encode_frame(FrameType.MESSAGE, message)
        assert len(frame) == PAYLOAD_SIZE + 5, f"payload is {len(frame) - 5} bytes"
        return frame

    def _refill(self, count: int) -> None:
        start = self.next_id
        self.next_id += count
        fresh = b"".join([self._frame(i) for i in range(start, start + count)])
        self._pool = self._pool[self._pos :] + fresh
        self._pos = 0

    def take(self, count: int) -> bytes:
        """The next ``count`` frames, concatenated."""
        if not self.v2:
            return self._single * count
        size = count * self.frame_size
        if len(self._pool) - self._pos < size:
            self._refill(max(count, POOL_BLOCK))
        chunk = self._pool[self._pos : self._pos + size]
        self._pos += size
        return chunk


@dataclass(eq=False)
class Pair:
    """One sender/receiver pair and its counters."""

    sender: Endpoint
    receiver: Endpoint
    source: MessageSource
    sent: int = 0
    received: int = 0
    unacked: int = 0
    sender_acks: int = 0


class ProfiledRelay(RelayProcess):
    """The relay under ``python -m cProfile -o FILE`` (stats are written when it exits)."""

    def __init__(self, data_dir: Path, profile_path: Path, *, plaintext: bool) -> None:
        super().__init__(data_dir, plaintext=plaintext)
        self.profile_path = profile_path

    def command(self) -> list[str]:
        cmd = super().command()
        return [cmd[0], "-m", "cProfile", "-o", str(self.profile_path), *cmd[1:]]


def start_relay(args: argparse.Namespace, data_dir: Path) -> RelayProcess:
    """Start the relay the traffic options ask for (under cProfile with ``--profile``)."""
    relay = (
        ProfiledRelay(data_dir, args.profile.resolve(), plaintext=args.plaintext)
        if args.profile
        else RelayProcess(data_dir, plaintext=args.plaintext)
    )
    relay.start()
    return relay


def set_up_pairs(relay: RelayProcess, pairs: int, v2: bool, pregenerate: int) -> list[Pair]:
    """Register, log in and befriend ``pairs`` sender/receiver users; return live endpoints."""
    version = 2 if v2 else 1
    result = []
    for i in range(pairs):
        clients = []
        for name in (f"sender{i}", f"receiver{i}"):
            client = WireClient(
                relay.host, relay.port, tls=not relay.plaintext, fingerprint=relay.fingerprint
            )
            registered = client.register(name, "benchmark-pw")
            assert registered.code == pb.RegisterResponse.SUCCESS, registered
            login = client.login(name, "benchmark-pw", version=version)
            assert login.code == pb.LoginResponse.SUCCESS, login
            clients.append(client)
        sender, receiver = clients
        make_buddies(sender, receiver)
        source = MessageSource(receiver.uid, v2, pregenerate)
        result.append(
            Pair(
                Endpoint.from_wire(f"sender{i}", sender),
                Endpoint.from_wire(f"receiver{i}", receiver),
                source,
            )
        )
    return result


class Bench:
    """The client's event loop: receivers count deliveries and top up their senders."""

    def __init__(self, pairs: list[Pair], window: int, v2: bool, ack_every: int) -> None:
        self.pairs = pairs
        self.window = window
        self.v2 = v2
        self.ack_every = ack_every
        self.delivered = 0
        self.selector = selectors.DefaultSelector()
        self.dirty: set[Endpoint] = set()
        self.roles: dict[Endpoint, tuple[Pair, bool]] = {}
        for pair in pairs:
            for endpoint, is_receiver in ((pair.sender, False), (pair.receiver, True)):
                self.roles[endpoint] = (pair, is_receiver)
                self.selector.register(endpoint.sock, selectors.EVENT_READ, endpoint)

    def warmed_up(self) -> None:
        """Called when the warm-up ends (subclasses snapshot their counters here)."""

    def start(self) -> None:
        for pair in self.pairs:
            self._send(pair, self.window)
            # Drain what arrived during set-up (buddy lists, Sync), including bytes that
            # OpenSSL already holds and the selector would never report.
            self._on_receiver(pair, pair.receiver.read_frames())
            self._on_sender(pair, pair.sender.read_frames())
        self._flush_dirty()

    def _send(self, pair: Pair, count: int) -> None:
        pair.sender.out += pair.source.take(count)
        pair.sent += count
        self.dirty.add(pair.sender)

    def _deliveries(self, pair: Pair, frames: list[tuple[int, bytes]]) -> tuple[int, bytes]:
        """Messages among a receiver's frames (counted) and the last one's payload."""
        count = 0
        last_payload = b""
        for frame_type, payload in frames:
            if frame_type == _MESSAGE:
                count += 1
                last_payload = payload
            elif frame_type == _RESET:
                raise BenchError(f"{pair.receiver.name}: Reset {pb.Reset.FromString(payload)}")
        pair.received += count
        self.delivered += count
        return count, last_payload

    def _ack_deliveries(self, pair: Pair, count: int, last_payload: bytes) -> bool:
        """v2 receiver: Ack{seq} after every ``ack_every`` messages; True if one was sent."""
        pair.unacked += count
        if pair.unacked < self.ack_every:
            return False
        pair.unacked = 0
        seq = pb.Message.FromString(last_payload).seq
        pair.receiver.out += encode_frame(FrameType.ACK, pb.Ack(seq=seq))
        self.dirty.add(pair.receiver)
        return True

    def _on_receiver(self, pair: Pair, frames: list[tuple[int, bytes]]) -> None:
        count, last_payload = self._deliveries(pair, frames)
        if not count:
            return
        self._send(pair, count)
        if self.v2:
            self._ack_deliveries(pair, count, last_payload)

    def _on_sender(self, pair: Pair, frames: list[tuple[int, bytes]]) -> None:
        for frame_type, payload in frames:
            if frame_type == _ACK:
                pair.sender_acks += 1
            elif frame_type == _RESET:
                raise BenchError(f"{pair.sender.name}: Reset {pb.Reset.FromString(payload)}")

    def _flush_dirty(self) -> None:
        dirty, self.dirty = self.dirty, set()
        for endpoint in dirty:
            done = endpoint.flush()
            mask = selectors.EVENT_READ if done else selectors.EVENT_READ | selectors.EVENT_WRITE
            if mask != endpoint.mask:
                endpoint.mask = mask
                self.selector.modify(endpoint.sock, mask, endpoint)

    def run(self, stop_at_delivered: int, deadline: float) -> None:
        """Pump until ``delivered`` reaches ``stop_at_delivered`` or ``deadline`` passes."""
        select = self.selector.select
        roles = self.roles
        while self.delivered < stop_at_delivered:
            if time.monotonic() >= deadline:
                return
            events = select(1.0)
            if not events and not self.dirty:
                raise BenchError("no traffic for 1 s: the relay stalled")
            for key, mask in events:
                endpoint: Endpoint = key.data
                if mask & selectors.EVENT_READ:
                    pair, is_receiver = roles[endpoint]
                    frames = endpoint.read_frames()
                    if is_receiver:
                        self._on_receiver(pair, frames)
                    else:
                        self._on_sender(pair, frames)
                if mask & selectors.EVENT_WRITE:
                    self.dirty.add(endpoint)
            if self.dirty:
                self._flush_dirty()

    def close(self) -> None:
        self.selector.close()
        for pair in self.pairs:
            for endpoint in (pair.sender, pair.receiver):
                endpoint.sock.close()


@dataclass(frozen=True)
class MeasuredRun:
    """What the measured phase (after the warm-up) cost."""

    warm_delivered: int
    delivered: int
    wall: float
    relay_cpu: float
    client_cpu: float
    rss_before: int
    rss_after: int
    rss_peak: int


def measure(relay: RelayProcess, bench: Bench, args: argparse.Namespace) -> MeasuredRun:
    """Start the traffic, warm up for ``--warmup`` seconds, then deliver ``--messages`` more
    (at most ``--max-seconds``) while the relay's and this process's CPU time are sampled."""
    rss_before = relay.rss_bytes()
    bench.start()
    bench.run(sys.maxsize, time.monotonic() + args.warmup)
    warm_delivered = bench.delivered
    bench.warmed_up()
    cpu0, client0, wall0 = relay.cpu_seconds(), time.process_time(), time.perf_counter()
    bench.run(warm_delivered + args.messages, time.monotonic() + args.max_seconds)
    cpu1, client1, wall1 = relay.cpu_seconds(), time.process_time(), time.perf_counter()
    return MeasuredRun(
        warm_delivered,
        bench.delivered - warm_delivered,
        wall1 - wall0,
        cpu1 - cpu0,
        client1 - client0,
        rss_before,
        relay.rss_bytes(),
        peak_rss_bytes(relay.pid),
    )


def print_costs(run: MeasuredRun, target_us: float | None = None) -> None:
    """Wall time, throughput, relay and client CPU per message, relay RSS."""
    per_message = run.relay_cpu / run.delivered * 1e6
    verdict = (
        ""
        if target_us is None
        else f"; target <= {target_us:g} us: {'met' if per_message <= target_us else 'NOT met'}"
    )
    print(f"wall time: {run.wall:.2f} s")
    print(f"throughput: {run.delivered / run.wall:,.0f} msgs/s")
    print(
        f"relay CPU: {run.relay_cpu:.2f} s = {per_message:.1f} us/message "
        f"({run.relay_cpu / run.wall * 100:.0f} % of one core){verdict}"
    )
    print(
        f"client CPU: {run.client_cpu:.2f} s = {run.client_cpu / run.delivered * 1e6:.1f} "
        f"us/message ({run.client_cpu / run.wall * 100:.0f} % of one core)"
    )
    print(
        f"relay RSS: {run.rss_before / 2**20:.1f} MiB after set-up, "
        f"{run.rss_after / 2**20:.1f} MiB at the end, peak {run.rss_peak / 2**20:.1f} MiB"
    )


def print_profile(path: Path, limit: int) -> None:
    stats = pstats.Stats(str(path), stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(limit)


def add_traffic_options(
    parser: argparse.ArgumentParser, *, window_help: str, ack_help: str
) -> None:
    """The options bench_relay.py and bench_durable.py share."""
    parser.add_argument(
        "--messages",
        type=int,
        default=200_000,
        help="messages to deliver in the measured phase (all pairs together)",
    )
    parser.add_argument("--pairs", type=int, default=10, help="sender/receiver pairs")
    parser.add_argument("--window", type=int, default=64, help=window_help)
    parser.add_argument("--ack-every", type=int, default=64, help=ack_help)
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of traffic first")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=120.0,
        help="stop the measured phase after this long even if short of "
        "--messages (the figures are then over what was delivered)",
    )
    parser.add_argument(
        "--plaintext", action="store_true", help="run the relay with --plaintext (no TLS)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="run the relay under cProfile, write its stats to FILE and print "
        "the top functions (profiling slows the relay down)",
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--mode",
        choices=["v1", "v2"],
        default="v1",
        help="session protocol version of every bench user",
    )
    add_traffic_options(
        parser,
        window_help="messages each sender keeps in flight (sent, not yet received)",
        ack_help="v2: a receiver sends Ack{seq} after this many messages",
    )
    args = parser.parse_args()
    v2 = args.mode == "v2"

    print(machine_description())
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        relay = start_relay(args, Path(tmp) / "relay")
        bench: Bench | None = None
        try:
            pregenerate = (args.messages // args.pairs) + args.window + 20_000 // args.pairs
            pairs = set_up_pairs(relay, args.pairs, v2, pregenerate)
            bench = Bench(pairs, args.window, v2, args.ack_every)
            run = measure(relay, bench, args)
        finally:
            if bench is not None:
                bench.close()
            relay.stop()
    if run.delivered == 0:
        print("no message was delivered in the measured phase")
        return 1
    transport = "plaintext TCP" if args.plaintext else "TLS"
    sent = sum(p.sent for p in pairs)
    acks = sum(p.sender_acks for p in pairs)
    print(
        f"mode {args.mode}, {transport}, {args.pairs} pairs x window {args.window}, "
        f"{PAYLOAD_SIZE}-byte Message payloads"
        + (f", receiver Ack every {args.ack_every}" if v2 else "")
    )
    print(f"warm-up: {run.warm_delivered:,} messages in {args.warmup:g} s")
    print(f"messages delivered: {run.delivered:,}")
    print_costs(run)
    if v2:
        print(
            f"sender-side Ack frames (accept Acks + delivery receipts), whole run: "
            f"{acks / max(sent, 1):.2f} per message sent"
        )
    if args.profile:
        print(f"\ncProfile of the relay (whole run, set-up included): {args.profile}")
        print_profile(args.profile, 30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
