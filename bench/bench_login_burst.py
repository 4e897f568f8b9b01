"""Event-loop latency under a login burst: ping RTTs while 200 password logins arrive at once.

Usage: python -m bench.bench_login_burst [--logins 200] [--ping-interval 0.005]
       python -m bench.bench_login_burst --logins 10000 --preload --timeout 1800  (storm)

The relay runs with the production scrypt cost (``--scrypt-n 16384``, appended after the
harness's fast default, so it wins). ``--logins`` users plus one "pinger" are registered
over the wire first (concurrently, before anything is measured); with ``--preload`` they are
written to the store before the relay starts instead, all with one password hash of the
same cost (computed once: checking it costs each login a full scrypt all the same), which
makes a 10,000-login storm's set-up take seconds instead of minutes. Then:

1. the pinger logs in as a v2 session and the ``--logins`` burst connections are opened
   (TLS handshake and greeting done, not logged in);
2. the pinger sends ``Ping{nonce}`` every ``--ping-interval`` seconds for the whole run and
   each RTT is recorded (several pings may be outstanding: RTTs are matched by nonce);
3. after ``--baseline`` seconds every burst connection sends its LoginRequest (v2, with its
   password) in the same instant; the burst lasts until the last LoginResponse arrives;
4. pinging goes on for ``--tail`` seconds more.

Printed: the burst's duration and login latencies, and ping RTT p50/p99/max for pings sent
before, during and after the burst. Every scrypt runs in the relay's hash worker threads;
a ping only waits for the event-loop thread, so its RTT during the burst shows how much the
hashing delays everything else the relay does.

The client is one thread with one selector, so the pinger is never starved by the client;
its own CPU time is printed next to the relay's. The relay runs with the default
``max_pending_hashes`` (password checks in its hash threads at once): the rest of a storm
waits in its login queue (``max_waiting_logins``) and every login gets exactly one
LoginResponse; no client retries. The relay's login, idle and unauthenticated-connection
limits are raised so that the set-up (opening ``--logins`` connections one by one) and the
storm itself do not run into them; the soft open-file limit is raised to the hard one.
"""

from __future__ import annotations

import argparse
import asyncio
import selectors
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.benchlib import (
    BENCH_PASSWORD,
    BenchError,
    Endpoint,
    RelayProcess,
    WireClient,
    machine_description,
    raise_nofile_limit,
    register_all,
    summarize_ms,
)
from protocol import chat_pb2 as pb
from protocol import encode_frame
from protocol.types import FrameType
from protocol.validation import username_key
from relay.auth import hash_password
from relay.store import Store

PRODUCTION_SCRYPT_N = "16384"
PASSWORD = BENCH_PASSWORD
_PING = int(FrameType.PING)
_LOGIN = int(FrameType.LOGIN)
_RESET = int(FrameType.RESET)


@dataclass
class Results:
    """Timestamps (perf_counter seconds) of everything the measurement loop saw."""

    pings: list[tuple[float, float]] = field(default_factory=list)  # (sent, rtt)
    login_sent: float = 0.0
    login_done: list[float] = field(default_factory=list)
    login_codes: dict[str, int] = field(default_factory=dict)
    lost_pings: int = 0


def measure(
    pinger: Endpoint,
    burst: list[Endpoint],
    interval: float,
    baseline: float,
    tail: float,
    timeout: float,
) -> Results:
    """The single-threaded measurement loop (see the module docstring)."""
    selector = selectors.DefaultSelector()
    selector.register(pinger.sock, selectors.EVENT_READ, pinger)
    for endpoint in burst:
        selector.register(endpoint.sock, selectors.EVENT_READ, endpoint)
    results = Results()
    outstanding: dict[int, float] = {}
    login_frames = {
        endpoint: encode_frame(
            FrameType.LOGIN,
            pb.LoginRequest(username=endpoint.name, password=PASSWORD, protocol_version=2),
        )
        for endpoint in burst
    }
    waiting = set(burst)
    nonce = 0
    start = time.perf_counter()
    burst_at = start + baseline
    stop_at = float("inf")
    hard_stop = burst_at + timeout
    next_ping = start
    clock = time.perf_counter
    while True:
        now = clock()
        if now >= stop_at or now >= hard_stop:
            break
        if not results.login_sent and now >= burst_at:
            results.login_sent = now
            for endpoint in burst:
                endpoint.out += login_frames[endpoint]
                if not endpoint.flush():
                    raise BenchError(f"{endpoint.name}: socket buffer full")
        if now >= next_ping:
            nonce += 1
            outstanding[nonce] = clock()
            pinger.out += encode_frame(FrameType.PING, pb.Ping(nonce=nonce))
            if not pinger.flush():
                raise BenchError("pinger: socket buffer full")
            next_ping += interval
            if next_ping < now:  # the client itself was late: do not send a catch-up burst
                next_ping = now + interval
        for key, _mask in selector.select(max(0.0, next_ping - clock())):
            endpoint = key.data
            frames = endpoint.read_frames()
            received = clock()
            if endpoint is pinger:
                for frame_type, payload in frames:
                    if frame_type == _PING:
                        sent = outstanding.pop(pb.Ping.FromString(payload).nonce, None)
                        if sent is not None:
                            results.pings.append((sent, received - sent))
                    elif frame_type == _RESET:
                        raise BenchError(f"pinger: Reset {pb.Reset.FromString(payload)}")
                continue
            for frame_type, payload in frames:
                if frame_type == _LOGIN and endpoint in waiting:
                    waiting.discard(endpoint)
                    code = pb.LoginResponse.FromString(payload).code
                    name = pb.LoginResponse.Code.Name(code)
                    results.login_codes[name] = results.login_codes.get(name, 0) + 1
                    results.login_done.append(received)
                    if not waiting:
                        stop_at = received + tail
                elif frame_type == _RESET:
                    raise BenchError(f"{endpoint.name}: Reset {pb.Reset.FromString(payload)}")
    results.lost_pings = len(outstanding)
    selector.close()
    return results


def preload_users(data_dir: Path, names: list[str], scrypt_n: int) -> None:
    """Create the users in a fresh store before the relay starts (one shared hash)."""
    data_dir.mkdir(mode=0o700, parents=True)
    password_hash = hash_password(PASSWORD, scrypt_n)
    with Store(data_dir / "parley.db", dedup_bucket_seconds=86400) as store:
        now = int(time.time())
        for name in names:
            if store.add_user(name, username_key(name), password_hash, now) is None:
                raise BenchError(f"preload: {name} exists")
        store.commit()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--logins",
        type=int,
        default=200,
        help="connections that log in (with a password) at the same time",
    )
    parser.add_argument(
        "--ping-interval", type=float, default=0.005, help="seconds between the pinger's pings"
    )
    parser.add_argument(
        "--baseline", type=float, default=1.0, help="seconds of pinging before the burst"
    )
    parser.add_argument(
        "--tail", type=float, default=0.5, help="seconds of pinging after the last LoginResponse"
    )
    parser.add_argument(
        "--scrypt-n",
        default=PRODUCTION_SCRYPT_N,
        help="scrypt cost the relay is started with (production default)",
    )
    parser.add_argument(
        "--register-concurrency", type=int, default=32, help="registrations in flight during set-up"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="give up on the burst after this many seconds"
    )
    parser.add_argument(
        "--plaintext", action="store_true", help="run the relay with --plaintext (no TLS)"
    )
    parser.add_argument(
        "--preload",
        action="store_true",
        help="write the users into the store before the relay starts (module docstring)",
    )
    args = parser.parse_args()

    print(machine_description())
    soft, _hard = raise_nofile_limit()
    if soft < args.logins + 64:
        print(f"warning: {args.logins} connections need more than {soft} fds in the client")
    names = [f"burst{i}" for i in range(args.logins)]
    patient = str(max(3600, int(args.timeout) * 2))
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        started = time.perf_counter()
        if args.preload:
            preload_users(Path(tmp) / "relay", [*names, "pinger"], int(args.scrypt_n))
        relay = RelayProcess(
            Path(tmp) / "relay",
            plaintext=args.plaintext,
            extra_args=[
                *("--scrypt-n", str(args.scrypt_n)),
                *("--login-timeout", patient, "--idle-timeout", patient),
                *("--max-unauthenticated", str(args.logins + 64)),
            ],
        )
        relay.start()
        clients: list[WireClient] = []
        try:
            if not args.preload:
                asyncio.run(register_all(relay, [*names, "pinger"], args.register_concurrency))
            registered_in = time.perf_counter() - started
            tls = not relay.plaintext
            pinger_client = WireClient(
                relay.host, relay.port, tls=tls, fingerprint=relay.fingerprint
            )
            clients.append(pinger_client)
            login = pinger_client.login("pinger", PASSWORD, version=2)
            assert login.code == pb.LoginResponse.SUCCESS, login
            pinger = Endpoint.from_wire("pinger", pinger_client)
            burst = []
            for name in names:
                client = WireClient(relay.host, relay.port, tls=tls, fingerprint=relay.fingerprint)
                clients.append(client)
                burst.append(Endpoint.from_wire(name, client))
            cpu0 = relay.cpu_seconds()
            own0 = time.process_time()
            results = measure(
                pinger, burst, args.ping_interval, args.baseline, args.tail, args.timeout
            )
            own = time.process_time() - own0
            cpu1 = relay.cpu_seconds()
            rss = relay.rss_bytes()
        finally:
            for client in clients:
                client.close()
            relay.stop()

    transport = "plaintext TCP" if args.plaintext else "TLS"
    how = (
        "written to the store before the start (one shared hash)"
        if args.preload
        else f"registered over the wire ({args.register_concurrency} at a time)"
    )
    print(
        f"relay: {transport}, scrypt n={args.scrypt_n}; set-up: {args.logins + 1} users "
        f"{how} in {registered_in:.1f} s"
    )
    if not results.login_done:
        print("no LoginResponse arrived")
        return 1
    done = sorted(results.login_done)
    burst_end = done[-1]
    duration = burst_end - results.login_sent
    codes = ", ".join(f"{name} {count}" for name, count in sorted(results.login_codes.items()))
    print(
        f"burst: {len(done)} of {args.logins} password logins answered ({codes}) in "
        f"{duration:.2f} s = {duration / len(done) * 1000:.1f} ms per login; "
        f"relay CPU {cpu1 - cpu0:.1f} s over the measurement (hash threads included), "
        f"client CPU {own:.1f} s; relay RSS at the end {rss / 2**20:.0f} MiB"
    )
    latencies = [t - results.login_sent for t in done]
    print(
        f"login latency: first {latencies[0] * 1000:.0f} ms, "
        f"median {latencies[len(latencies) // 2] * 1000:.0f} ms, "
        f"last {latencies[-1] * 1000:.0f} ms"
    )
    before = [rtt for sent, rtt in results.pings if sent < results.login_sent]
    during = [rtt for sent, rtt in results.pings if results.login_sent <= sent <= burst_end]
    after = [rtt for sent, rtt in results.pings if sent > burst_end]
    print(
        f"ping every {args.ping_interval * 1000:g} ms from one v2 session "
        f"({results.lost_pings} unanswered at the end):"
    )
    print(f"  before the burst: {summarize_ms(before)}")
    print(f"  during the burst: {summarize_ms(during)}")
    print(f"  after the burst:  {summarize_ms(after)}")
    return 0 if len(done) == args.logins else 1


if __name__ == "__main__":
    sys.exit(main())
