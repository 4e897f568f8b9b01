"""Relay memory and a bystander's ping latency under hostile load (issue 11's figures).

Usage: python -m bench.bench_hostile [--scenario a b c] [--seconds 10] [--users 500]

Each scenario gets a fresh relay (TLS, the harness's fast scrypt n=1024, the limit of
unauthenticated connections per address back at its production default so it applies as
deployed), ``--users`` accounts registered over the wire and one bystander logged in as a v2
session. After ``--settle`` seconds the relay's RSS (VmRSS) is its idle figure. Then, while
the load runs:

- a sampler reads the relay's VmRSS every 50 ms; the peak is the highest sample from the
  start of the load until the last ping is answered;
- the bystander sends Ping{nonce} every 20 ms and times each echo (matched by nonce); pings
  still unanswered when the load ends are waited for up to ``--drain`` seconds, then count
  as lost. Only pings sent while the load runs are counted.

Scenarios (the load runs in its own process, so the bystander never waits for it; its CPU
time is printed: it must not be the bottleneck):

a. right after the TLS handshake, an unauthenticated client declares 4 MiB LOGIN frames and
   keeps writing their payload, reconnecting whenever the relay closes it, for ``--seconds``;
b. a logged-in v2 client that never reads sends 30,000 LIST_USER requests (150 KB), then
   stays connected, still not reading, until ``--seconds`` have passed;
c. 2,000 TLS connections from 127.0.0.2 .. 127.0.0.40 (``sock.bind``), handshakes driven
   non-blocking from one selector, held open without logging in until ``--seconds`` have
   passed (``--hold-bytes N``: each also sends an incomplete 4 MiB LOGIN frame of N bytes).

Targets (issue 11): peak RSS under idle + 128 MiB and the bystander's ping p99 under 100 ms
in each scenario. "cut off" says what the relay did to the flooder. A scenario stops early
if the relay's RSS passes ``--rss-abort`` MiB: the machine's memory is everyone's. All
traffic goes to 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import select
import selectors
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

from bench.benchlib import (
    BENCH_PASSWORD,
    BenchError,
    Endpoint,
    RelayProcess,
    WireClient,
    client_tls_context,
    machine_description,
    percentile,
    raise_nofile_limit,
    register_all,
)
from protocol import chat_pb2 as pb
from protocol import encode_frame
from protocol.types import FrameType
from relay.config import RelayConfig
from relay.forwarding import encode_varint

PING_INTERVAL = 0.020
RSS_INTERVAL = 0.050
FRAME_LENGTH = 4 * 2**20
LIST_USER_REQUESTS = 30_000
PRELOGIN_CONNECTIONS = 2_000
SOURCES = tuple(f"127.0.0.{i}" for i in range(2, 41))
CONNECT_TIMEOUT = 5.0
SEND_CHUNK = 1024 * 1024
MIB = 2**20
SCENARIOS = {
    "a": "4 MiB frames before login",
    "b": "30,000 unread LIST_USER",
    "c": "2,000 pre-login TLS conns",
}
# The harness lifts this limit for tests that crowd 127.0.0.1; scenario c spreads its
# connections over 39 addresses so the production default applies as it would when deployed.
PRODUCTION_ADMISSION = (
    "--max-unauthenticated-per-address",
    str(RelayConfig().max_unauthenticated_per_address),
)


# -- the load (runs in its own process) -----------------------------------------------------


@dataclass
class LoadReport:
    """What the load process did; ``started`` and ``ended`` are perf_counter times
    (CLOCK_MONOTONIC, comparable with the parent's), ``cpu`` its CPU seconds in between."""

    started: float = 0.0
    ended: float = 0.0
    cpu: float = 0.0
    cut_off: str = "no"
    detail: str = ""
    error: str = ""


def _tls_connect(host: str, port: int) -> ssl.SSLSocket:
    raw = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return client_tls_context().wrap_socket(raw, server_hostname=host)


def _count_resets(frames: list[tuple[int, bytes]], seen: dict[str, int]) -> None:
    for frame_type, payload in frames:
        if frame_type == FrameType.RESET:
            name = pb.Reset.Code.Name(pb.Reset.FromString(payload).code)
            seen[name] = seen.get(name, 0) + 1


def _resets_text(seen: dict[str, int]) -> str:
    return ", ".join(f"Reset {name} x{count}" for name, count in sorted(seen.items()))


def _send_all(sock: ssl.SSLSocket, data: memoryview, stop: Event, deadline: float) -> bool:
    """Write ``data`` on a non-blocking TLS socket (after WANT_WRITE the same bytes are
    retried, as OpenSSL requires); False if stopped first. Raises OSError once closed."""
    pos = 0
    while pos < len(data):
        if stop.is_set() or time.perf_counter() >= deadline:
            return False
        try:
            pos += sock.send(data[pos : pos + SEND_CHUNK])
        except (ssl.SSLWantWriteError, BlockingIOError):
            select.select([], [sock], [], 0.1)  # never readable-wait: nothing here is read
        except ssl.SSLWantReadError:
            select.select([sock], [], [], 0.1)
    return True


def flood_unauthenticated(
    host: str, port: int, stop: Event, deadline: float, _hold_bytes: int
) -> LoadReport:
    """Scenario a: 4 MiB LOGIN frames right after the handshake, back to back; reconnect
    when closed. The payload decodes (one unknown field), so a relay that takes the frames
    answers USER_NOT_FOUND and keeps the connection: the flood goes on as long as it reads."""
    padding = FRAME_LENGTH - 5  # 1 byte of tag (field 15, bytes), 4 of length, then these
    payload = bytes([15 << 3 | 2]) + encode_varint(padding) + bytes(padding)
    frame = memoryview(encode_frame(FrameType.LOGIN, payload))
    connections = closed = refused = frames_written = 0
    while not stop.is_set() and time.perf_counter() < deadline:
        try:
            sock = _tls_connect(host, port)
        except OSError:
            refused += 1
            stop.wait(0.05)
            continue
        connections += 1
        sock.setblocking(False)
        try:
            while _send_all(sock, frame, stop, deadline):
                frames_written += 1
        except OSError:  # ssl.SSLError included: the relay closed the connection
            closed += 1
        finally:
            sock.close()
    detail = (
        f"{connections:,} connection(s), {closed:,} closed by the relay, {refused} "
        f"refused; {frames_written:,} whole 4 MiB frames handed to TLS"
    )
    return LoadReport(cut_off=f"yes, {closed:,} time(s)" if closed else "no", detail=detail)


def flood_list_user(
    host: str, port: int, stop: Event, deadline: float, _hold_bytes: int
) -> LoadReport:
    """Scenario b: 30,000 LIST_USER requests from a logged-in client that never reads; what
    the relay left on the connection is read only once the window is over."""
    client = WireClient(host, port, timeout=CONNECT_TIMEOUT)
    login = client.login("flooder", BENCH_PASSWORD, version=2)
    if login.code != pb.LoginResponse.SUCCESS:
        raise BenchError(f"flooder login: {pb.LoginResponse.Code.Name(login.code)}")
    endpoint = Endpoint.from_wire("flooder", client)
    requests = encode_frame(FrameType.LIST_USER, pb.ListUserRequest()) * LIST_USER_REQUESTS
    endpoint.out += requests
    started = time.perf_counter()
    written_in = 0.0
    write_error = ""
    while not stop.is_set() and time.perf_counter() < deadline:
        if written_in:
            stop.wait(min(0.1, max(0.0, deadline - time.perf_counter())))
            continue
        try:
            if endpoint.flush():
                written_in = time.perf_counter() - started
                continue
        except OSError as exc:
            write_error = f"{type(exc).__name__}"
            break
        select.select([], [endpoint.sock], [], 0.1)
    window_end = time.perf_counter()  # reading what the relay left is not part of the load
    unwritten = len(endpoint.out) + len(endpoint.inflight or b"")
    resets: dict[str, int] = {}
    responses = 0
    closed = bool(write_error)
    read_until = time.perf_counter() + 5.0
    while not closed and time.perf_counter() < read_until:
        if not select.select([endpoint.sock], [], [], 0.5)[0]:
            break  # nothing more within 0.5 s: the relay still holds the connection open
        try:
            frames = endpoint.read_frames()
        except (BenchError, OSError):
            closed = True
            break
        responses += sum(1 for frame_type, _ in frames if frame_type == FrameType.LIST_USER)
        _count_resets(frames, resets)
    endpoint.sock.close()
    written = (
        f"all {len(requests) // 1000} KB of requests written in {written_in:.2f} s"
        if written_in
        else f"{len(requests) - unwritten:,} of {len(requests):,} request bytes written"
        f"{' (' + write_error + ')' if write_error else ''}"
    )
    detail = (
        f"{written}; after the window, {responses:,} LIST_USER responses had arrived"
        f"{', ' + _resets_text(resets) if resets else ''}"
        f"{', then the relay closed the connection' if closed else ''}"
    )
    cut_off = (
        ("yes, " + (_resets_text(resets) or "closed"))
        if closed or resets
        else f"no, {responses:,} answers"
    )
    return LoadReport(ended=window_end, cut_off=cut_off, detail=detail)


@dataclass(eq=False)
class _Held:
    """One scenario-c connection: ``connecting`` -> ``handshake`` -> ``open``."""

    sock: socket.socket
    state: str = "connecting"


def hold_prelogin(
    host: str, port: int, stop: Event, deadline: float, hold_bytes: int
) -> LoadReport:
    """Scenario c: 2,000 TLS connections spread over SOURCES, never logging in."""
    context = client_tls_context()
    selector = selectors.DefaultSelector()
    partial = (
        struct.pack(">IB", FRAME_LENGTH, FrameType.LOGIN) + bytes(hold_bytes) if hold_bytes else b""
    )
    failures: dict[str, int] = {}
    handshakes = closed_by_relay = 0
    started = time.perf_counter()
    all_done_in = 0.0

    def fail(held: _Held, reason: str) -> None:
        failures[reason] = failures.get(reason, 0) + 1
        selector.unregister(held.sock)
        held.sock.close()

    def step_handshake(held: _Held) -> None:
        nonlocal handshakes
        tls = held.sock
        assert isinstance(tls, ssl.SSLSocket)
        try:
            tls.do_handshake()
        except ssl.SSLWantReadError:
            selector.modify(tls, selectors.EVENT_READ, held)
            return
        except ssl.SSLWantWriteError:
            selector.modify(tls, selectors.EVENT_WRITE, held)
            return
        except OSError as exc:
            fail(held, f"handshake: {type(exc).__name__}")
            return
        held.state = "open"
        handshakes += 1
        if partial:
            # What the socket takes at once; the rest is not retried (--hold-bytes 0: none).
            with contextlib.suppress(ssl.SSLWantWriteError, BlockingIOError):
                tls.send(partial)
        selector.modify(tls, selectors.EVENT_READ, held)

    for index in range(PRELOGIN_CONNECTIONS):
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setblocking(False)
        raw.bind((SOURCES[index % len(SOURCES)], 0))
        raw.connect_ex((host, port))
        selector.register(raw, selectors.EVENT_WRITE, _Held(raw))
    while not stop.is_set() and (now := time.perf_counter()) < deadline:
        for key, _mask in selector.select(min(0.1, deadline - now)):
            held: _Held = key.data
            if held.state == "connecting":
                error = held.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    fail(held, f"connect: errno {error}")
                    continue
                selector.unregister(held.sock)
                held.sock = context.wrap_socket(
                    held.sock, server_hostname=host, do_handshake_on_connect=False
                )
                held.state = "handshake"
                selector.register(held.sock, selectors.EVENT_WRITE, held)
                step_handshake(held)
            elif held.state == "handshake":
                step_handshake(held)
            else:
                try:
                    data = held.sock.recv(65536)  # the greeting, a Reset, or the close
                except (ssl.SSLWantReadError, BlockingIOError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    closed_by_relay += 1
                    fail(held, "closed by the relay after the handshake")
        settled = handshakes + sum(
            n for reason, n in failures.items() if not reason.startswith("closed")
        )
        if not all_done_in and settled >= PRELOGIN_CONNECTIONS:
            all_done_in = time.perf_counter() - started
    still_open = sum(1 for key in selector.get_map().values() if key.data.state == "open")
    for key in list(selector.get_map().values()):
        key.data.sock.close()
    selector.close()
    other = {reason: n for reason, n in failures.items() if not reason.startswith("closed")}
    detail = (
        f"{handshakes:,} of {PRELOGIN_CONNECTIONS:,} handshakes done"
        f"{f' (all settled in {all_done_in:.1f} s)' if all_done_in else ''}"
        f"{'; failed: ' + ', '.join(f'{n} x {r}' for r, n in other.items()) if other else ''}"
        f"; {closed_by_relay:,} closed by the relay, {still_open:,} still open at the end"
        f"{f'; each sent {hold_bytes:,} bytes of a 4 MiB LOGIN frame' if hold_bytes else ''}"
    )
    return LoadReport(
        cut_off=f"yes, {closed_by_relay:,} closed" if closed_by_relay else "no", detail=detail
    )


LOADS = {"a": flood_unauthenticated, "b": flood_list_user, "c": hold_prelogin}


def run_load(
    key: str,
    host: str,
    port: int,
    seconds: float,
    hold_bytes: int,
    stop: Event,
    results: Queue[LoadReport],
) -> None:
    """The load process's entry point: run one scenario, put its report on ``results``."""
    started, cpu = time.perf_counter(), time.process_time()
    try:
        report = LOADS[key](host, port, stop, started + seconds, hold_bytes)
    except (BenchError, OSError, AssertionError) as exc:
        report = LoadReport(error=f"{type(exc).__name__}: {exc}")
    report.started, report.ended = started, report.ended or time.perf_counter()
    report.cpu = time.process_time() - cpu
    results.put(report)


# -- the measuring side (this process) -------------------------------------------------------


class PingProbe:
    """The bystander: a logged-in v2 session sending Ping every PING_INTERVAL from its own
    thread and timing each echo."""

    def __init__(self, client: WireClient) -> None:
        self.sock = client.sock
        self.decoder = client.decoder
        self.sent: dict[int, float] = {}  # nonce -> perf_counter when sent, until echoed
        self.answered: list[tuple[float, float]] = []  # (sent at, round trip)
        self.problem = ""
        self._sending = True
        self._drain_until = 0.0
        self._thread = threading.Thread(target=self._run, name="ping-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self, drain: float) -> None:
        """Stop sending; wait up to ``drain`` seconds for the echoes still owed."""
        self._drain_until = time.perf_counter() + drain
        self._sending = False
        self._thread.join(drain + 5.0)

    def _run(self) -> None:
        nonce = 0
        next_ping = time.perf_counter()
        while True:
            now = time.perf_counter()
            if self._sending:
                if now >= next_ping:
                    nonce += 1
                    self.sent[nonce] = now
                    self.sock.settimeout(10.0)
                    try:
                        self.sock.sendall(encode_frame(FrameType.PING, pb.Ping(nonce=nonce)))
                    except OSError as exc:
                        self.problem = f"bystander could not send: {exc!r}"
                        return
                    next_ping = max(next_ping + PING_INTERVAL, now)  # no catch-up burst
                wait = next_ping - time.perf_counter()
            elif not self.sent or now >= self._drain_until:
                return
            else:
                wait = min(0.1, self._drain_until - now)
            self.sock.settimeout(max(0.001, wait))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError as exc:
                self.problem = f"bystander connection failed: {exc!r}"
                return
            if not data:
                self.problem = "the relay closed the bystander's connection"
                return
            received = time.perf_counter()
            for frame_type, payload in self.decoder.feed(data):
                if frame_type == FrameType.PING:
                    sent = self.sent.pop(pb.Ping.FromString(payload).nonce, None)
                    if sent is not None:
                        self.answered.append((sent, received - sent))


class RssSampler:
    """Reads the relay's VmRSS every RSS_INTERVAL; sets ``stop_load`` past ``abort_bytes``."""

    def __init__(self, relay: RelayProcess, abort_bytes: int, stop_load: Event) -> None:
        self.relay = relay
        self.abort_bytes = abort_bytes
        self.stop_load = stop_load
        self.samples: list[tuple[float, int]] = []
        self.aborted = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(RSS_INTERVAL):
            try:
                rss = self.relay.rss_bytes()
            except OSError:  # the relay died: nothing more to sample
                return
            self.samples.append((time.perf_counter(), rss))
            if rss > self.abort_bytes and not self.aborted:
                self.aborted = True
                self.stop_load.set()


@dataclass
class Row:
    """One scenario's figures."""

    key: str
    idle: int
    peak: int
    rtts: list[float]
    lost: int
    report: LoadReport
    relay_cpu: float
    aborted: bool
    problems: list[str] = field(default_factory=list)


def run_scenario(key: str, args: argparse.Namespace) -> Row:
    context = multiprocessing.get_context("spawn")  # no fork with the harness's threads
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        relay = RelayProcess(Path(tmp) / "relay", extra_args=PRODUCTION_ADMISSION)
        relay.start()
        try:
            names = ["bystander", "flooder", *(f"user{i}" for i in range(args.users))]
            asyncio.run(register_all(relay, names, args.register_concurrency))
            bystander = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
            login = bystander.login("bystander", BENCH_PASSWORD, version=2)
            if login.code != pb.LoginResponse.SUCCESS:
                raise BenchError(f"bystander login: {login}")
            time.sleep(args.settle)
            idle = relay.rss_bytes()
            stop = context.Event()
            results: Queue[LoadReport] = context.Queue()
            load = context.Process(
                target=run_load,
                name=f"load-{key}",
                daemon=True,
                args=(key, relay.host, relay.port, args.seconds, args.hold_bytes, stop, results),
            )
            probe = PingProbe(bystander)
            sampler = RssSampler(relay, args.rss_abort * MIB, stop)
            cpu_before = relay.cpu_seconds()
            probe.start()
            sampler.start()
            load.start()
            report = results.get(timeout=args.seconds + 120.0)
            load.join(10.0)
            probe.finish(args.drain)
            sampler.stop()
            alive = relay.process is not None and relay.process.poll() is None
            relay_cpu = relay.cpu_seconds() - cpu_before if alive else float("nan")
            bystander.close()
        finally:
            relay.stop()
    window = [(sent, rtt) for sent, rtt in probe.answered if report.started <= sent <= report.ended]
    lost = sum(1 for sent in probe.sent.values() if report.started <= sent <= report.ended)
    peak = max((rss for when, rss in sampler.samples if when >= report.started), default=0)
    problems = [
        p for p in (report.error, probe.problem, "" if alive else "the relay process died") if p
    ]
    return Row(
        key,
        idle,
        peak,
        sorted(rtt for _, rtt in window),
        lost,
        report,
        relay_cpu,
        sampler.aborted,
        problems,
    )


def print_rows(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"{'scenario':<29} {'idle RSS':>9} {'peak RSS':>9} {'ping p50':>9} {'p99':>9} "
        f"{'max':>9} {'lost':>5}  {'flooder cut off':<22} {'load CPU':>9} {'relay CPU':>9}"
    )
    for row in rows:
        rtts = row.rtts
        p50, p99, worst = (
            (percentile(rtts, 0.5), percentile(rtts, 0.99), rtts[-1])
            if rtts
            else (float("nan"),) * 3
        )
        length = row.report.ended - row.report.started
        print(
            f"{row.key} {SCENARIOS[row.key]:<27} {row.idle / MIB:>5.0f} MiB "
            f"{row.peak / MIB:>5.0f} MiB {p50 * 1e3:>6.1f} ms {p99 * 1e3:>6.1f} ms "
            f"{worst * 1e3:>6.0f} ms {row.lost:>5}  {row.report.cut_off:<22} "
            f"{row.report.cpu:>5.1f} s   {row.relay_cpu:>5.1f} s  "
            f"(load ran {length:.1f} s)"
        )
    print()
    for row in rows:
        grown = (row.peak - row.idle) / MIB
        p99 = percentile(row.rtts, 0.99) if row.rtts else float("inf")
        rss_ok = grown < 128 and not row.aborted
        ping_ok = p99 < 0.100 and not row.lost
        print(
            f"{row.key}: RSS +{grown:,.0f} MiB (target < 128: {'met' if rss_ok else 'NOT met'}"
            f"{f'; stopped at --rss-abort {args.rss_abort} MiB' if row.aborted else ''}), "
            f"ping p99 {p99 * 1e3:,.1f} ms over {len(row.rtts)} pings"
            f"{f', {row.lost} unanswered after --drain {args.drain:g} s' if row.lost else ''}"
            f" (target < 100: {'met' if ping_ok else 'NOT met'})"
        )
        print(f"   load: {row.report.detail}")
        for problem in row.problems:
            print(f"   problem: {problem}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--scenario",
        nargs="+",
        choices=sorted(SCENARIOS),
        default=sorted(SCENARIOS),
        help="which scenarios to run",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=10.0,
        help="how long each load runs (b: at most; c: connections held)",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=500,
        help="accounts registered first (LIST_USER answers list up to 500)",
    )
    parser.add_argument(
        "--hold-bytes",
        type=int,
        default=0,
        help="c: bytes of an incomplete 4 MiB LOGIN frame each connection "
        "sends after its handshake (0 = none)",
    )
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds between set-up and the idle RSS sample"
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=60.0,
        help="seconds to wait after the load for pings still unanswered",
    )
    parser.add_argument(
        "--rss-abort",
        type=int,
        default=1536,
        metavar="MIB",
        help="stop a scenario's load once the relay's RSS passes this",
    )
    parser.add_argument(
        "--register-concurrency", type=int, default=32, help="registrations in flight during set-up"
    )
    args = parser.parse_args()

    soft, _hard = raise_nofile_limit()  # the load process and the relay inherit it
    print(machine_description())
    print(
        f"open-file limit {soft}; ping every {PING_INTERVAL * 1e3:g} ms, RSS sampled every "
        f"{RSS_INTERVAL * 1e3:g} ms; {args.users} users; command: "
        f"python {' '.join(sys.argv)}"
    )
    rows = [run_scenario(key, args) for key in args.scenario]
    print()
    print_rows(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
