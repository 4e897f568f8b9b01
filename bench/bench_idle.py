"""Relay memory per idle logged-in TLS session: RSS with N concurrent v1 sessions.

Usage: python -m bench.bench_idle [--sessions 10000] [--concurrency 200] [--plaintext]

Starts the relay (TLS, the harness's fast scrypt n=1024; under TLS a first start that
generates the certificate is not measured), samples its RSS (VmRSS from
/proc/<pid>/status), then opens ``--sessions`` connections, at most ``--concurrency`` in
set-up at a time; each registers a fresh user and logs in on the same connection (v1
sessions, which the relay never times out for being idle) and then stays open, silent.
Once every session is logged in (plus ``--settle`` seconds) the RSS is sampled again; the
difference divided by the number of sessions is one figure, the whole RSS divided by the
number of sessions (issue 16's measure, which counts the idle relay too) the other. The
RSS after closing every connection is printed too: what stays is memory the sessions did
not own (SQLite page cache, allocator arenas, Python's free lists) or memory freed but not
given back.

The client's own CPU time is printed next to the relay's: set-up is bound by the relay
(a TLS handshake and two scrypt hashes per session), not by this one-process client. The
soft open-file limit is raised to the hard limit (the client needs one fd per session,
the relay one per session plus a few; the relay inherits the limit).
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.benchlib import (
    RelayProcess,
    client_tls_context,
    machine_description,
    raise_nofile_limit,
    read_until,
)
from protocol import chat_pb2 as pb
from protocol import encode_frame
from protocol.types import FrameType

PASSWORD = "benchmark-pw"


@dataclass
class Outcome:
    """What the set-up of all sessions produced."""

    sessions: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.errors[reason] = self.errors.get(reason, 0) + 1


async def open_session(
    index: int,
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    semaphore: asyncio.Semaphore,
    outcome: Outcome,
    timeout: float,
) -> None:
    name = f"idle{index}"
    async with semaphore:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=context, server_hostname=host if context else None
                )
                await read_until(reader, FrameType.RAW)
                writer.write(
                    encode_frame(
                        FrameType.REGISTER, pb.RegisterRequest(username=name, password=PASSWORD)
                    )
                )
                registered = pb.RegisterResponse.FromString(
                    await read_until(reader, FrameType.REGISTER)
                )
                if registered.code != pb.RegisterResponse.SUCCESS:
                    raise ConnectionError(
                        f"register {pb.RegisterResponse.Code.Name(registered.code)}"
                    )
                writer.write(
                    encode_frame(
                        FrameType.LOGIN,
                        pb.LoginRequest(username=name, password=PASSWORD, protocol_version=1),
                    )
                )
                login = pb.LoginResponse.FromString(await read_until(reader, FrameType.LOGIN))
                if login.code != pb.LoginResponse.SUCCESS:
                    raise ConnectionError(f"login {pb.LoginResponse.Code.Name(login.code)}")
                await read_until(reader, FrameType.LIST_BUDDY)  # pushed after every login
        except (OSError, EOFError, TimeoutError, ssl.SSLError) as exc:
            outcome.fail(f"{type(exc).__name__}: {exc}"[:120])
            return
        outcome.sessions.append((reader, writer))


async def open_all(
    relay: RelayProcess, count: int, concurrency: int, timeout: float
) -> tuple[Outcome, float]:
    context = None if relay.plaintext else client_tls_context()
    semaphore = asyncio.Semaphore(concurrency)
    outcome = Outcome()
    start = time.perf_counter()
    await asyncio.gather(
        *(
            open_session(i, relay.host, relay.port, context, semaphore, outcome, timeout)
            for i in range(count)
        )
    )
    return outcome, time.perf_counter() - start


async def close_all(outcome: Outcome) -> None:
    for _, writer in outcome.sessions:
        writer.transport.abort()
    await asyncio.sleep(0)


def wait_for_connections_gone(relay: RelayProcess, expected_closed: int, timeout: float) -> None:
    """Wait until the relay logged ``expected_closed`` closed connections (best effort)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if relay.logs().count(" closed: ") >= expected_closed:
            return
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--sessions", type=int, default=10_000, help="concurrent idle logged-in sessions"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=200,
        help="connections in set-up (handshake/register/login) at once",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds to wait after the last login before sampling RSS",
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="per-session set-up timeout in seconds"
    )
    parser.add_argument(
        "--plaintext", action="store_true", help="run the relay with --plaintext (no TLS)"
    )
    args = parser.parse_args()

    soft, hard = raise_nofile_limit()
    print(machine_description())
    print(f"open-file limit: soft {soft}, hard {hard}")
    if soft < args.sessions + 64:
        print(f"warning: {args.sessions} sessions need more than {soft} fds in the client")
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        relay = RelayProcess(Path(tmp) / "relay", plaintext=args.plaintext)
        if not args.plaintext:  # the certificate is generated once in a relay's life:
            relay.start()  # not in the measured start (it loads a crypto library for it)
            relay.stop()
        relay.start()
        try:
            time.sleep(0.5)
            rss_before = relay.rss_bytes()
            cpu_before = relay.cpu_seconds()
            own_before = time.process_time()
            loop = asyncio.new_event_loop()
            try:
                outcome, elapsed = loop.run_until_complete(
                    open_all(relay, args.sessions, args.concurrency, args.timeout)
                )
                time.sleep(args.settle)
                rss_after = relay.rss_bytes()
                cpu_after = relay.cpu_seconds()
                own = time.process_time() - own_before
                alive = relay.process is not None and relay.process.poll() is None
                loop.run_until_complete(close_all(outcome))
                wait_for_connections_gone(relay, len(outcome.sessions), 30.0)
                time.sleep(1.0)
                rss_closed = relay.rss_bytes()
            finally:
                loop.close()
            accept_errors = [line for line in relay.log_lines if "accept failed" in line]
        finally:
            relay.stop()

    opened = len(outcome.sessions)
    transport = "plaintext TCP" if args.plaintext else "TLS"
    print(
        f"{transport} v1 sessions, each registered + logged in on its own connection, "
        f"{args.concurrency} in set-up at a time"
    )
    print(
        f"sessions logged in: {opened:,} of {args.sessions:,} in {elapsed:.1f} s "
        f"({opened / elapsed:,.0f}/s; relay CPU {cpu_after - cpu_before:.1f} s, "
        f"two scrypt n=1024 hashes per session; this client's CPU {own:.1f} s)"
    )
    if outcome.errors:
        print("set-up failures:")
        for reason, count in sorted(outcome.errors.items(), key=lambda item: -item[1]):
            print(f"  {count:6d} x {reason}")
    if accept_errors:
        print(f"relay logged {len(accept_errors)} accept failures, first: {accept_errors[0]}")
    if not alive:
        print("the relay process died during the run")
    mib = 1024 * 1024
    print(f"relay RSS before: {rss_before / mib:.1f} MiB")
    print(f"relay RSS with {opened:,} idle sessions: {rss_after / mib:.1f} MiB")
    print(
        f"relay RSS after closing them all: {rss_closed / mib:.1f} MiB "
        f"(freed memory mostly stays with the allocators)"
    )
    if opened:
        print(
            f"RSS per idle session: {(rss_after - rss_before) / opened / 1024:.1f} KiB "
            f"(growth / sessions); total RSS / sessions {rss_after / opened / 1000:.1f} kB "
            f"(issue 16's measure, mosquitto ~17 kB)"
        )
    return 0 if opened == args.sessions else 1


if __name__ == "__main__":
    sys.exit(main())
