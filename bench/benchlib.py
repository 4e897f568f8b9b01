"""Shared helpers for the relay benchmarks in ``bench/``.

Benches run as modules from the repository root (``python -m bench.bench_relay``), so they
import the packages and the test helpers without touching ``sys.path``. This re-exports the
test harness's :class:`RelayProcess`, which runs the real relay (``python -m relay``) as a
subprocess on a loopback port.

Nothing here runs at import time: no sockets, no subprocesses.
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import selectors
import socket
import ssl
import statistics
import struct
from dataclasses import dataclass, field
from pathlib import Path

from protocol import FrameDecoder, encode_frame
from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tests.harness import RelayProcess
from tests.wire import WireClient, make_buddies

ROOT = Path(__file__).resolve().parents[1]

__all__ = [
    "BENCH_PASSWORD",
    "ROOT",
    "BenchError",
    "Endpoint",
    "RelayProcess",
    "WireClient",
    "client_tls_context",
    "cpu_model",
    "machine_description",
    "make_buddies",
    "peak_rss_bytes",
    "percentile",
    "raise_nofile_limit",
    "read_until",
    "register_all",
    "summarize_ms",
]

BENCH_PASSWORD = "benchmark-pw"
READ_SIZE = 256 * 1024
MAX_WRITE = 256 * 1024
_HEADER = struct.Struct(">IB")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (falls back to ``platform``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """One line: CPU model, usable cores, Python version and implementation, OpenSSL."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"machine: {cpu_model()} ({platform.machine()}), {cores} cores, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{ssl.OPENSSL_VERSION}, Linux {platform.release()}"
    )


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (inherited by the relay subprocess).

    Returns the new (soft, hard) pair.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set size (VmHWM) of a process, in bytes; 0 if unavailable."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def client_tls_context() -> ssl.SSLContext:
    """A client context for the relay's self-signed certificate (no CA, no host check).

    Benchmarks talk to a relay they just started on 127.0.0.1; the tests cover pinning.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def summarize_ms(values_s: list[float]) -> str:
    """``n=…, p50 … ms, p99 … ms, max … ms`` for a list of durations in seconds."""
    if not values_s:
        return "n=0"
    ordered = sorted(values_s)
    return (
        f"n={len(ordered)}, p50 {percentile(ordered, 0.50) * 1e3:.2f} ms, "
        f"p99 {percentile(ordered, 0.99) * 1e3:.2f} ms, "
        f"max {ordered[-1] * 1e3:.2f} ms, mean {statistics.fmean(ordered) * 1e3:.2f} ms"
    )


class BenchError(RuntimeError):
    """The relay closed a connection or sent a Reset: the figures would be meaningless."""


@dataclass(eq=False)
class Endpoint:
    """One non-blocking client connection (TLS or plain) with its own output buffer.

    Made from a set-up :class:`tests.wire.WireClient` by :meth:`from_wire`, which keeps the
    frames and partial bytes that client had already read.
    """

    name: str
    sock: socket.socket
    decoder: FrameDecoder
    pending: list[tuple[int, bytes]]
    out: bytearray = field(default_factory=bytearray)
    inflight: bytes | None = None
    mask: int = selectors.EVENT_READ

    @classmethod
    def from_wire(cls, name: str, client: WireClient) -> Endpoint:
        client.sock.setblocking(False)
        return cls(name, client.sock, client.decoder, list(client.frames))

    def read_frames(self) -> list[tuple[int, bytes]]:
        """Read until the socket would block (draining OpenSSL too); return the frames."""
        frames = self.pending
        self.pending = []
        sock = self.sock
        feed = self.decoder.feed
        while True:
            try:
                data = sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return frames
            if not data:
                raise BenchError(f"{self.name}: relay closed the connection")
            frames.extend(feed(data))

    def flush(self) -> bool:
        """Write what the socket takes; True when nothing is left (TLS retries same bytes)."""
        while True:
            data = self.inflight
            if data is None:
                if not self.out:
                    return True
                data = bytes(self.out[:MAX_WRITE])
                del self.out[:MAX_WRITE]
                self.inflight = data
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return False
            self.inflight = data[sent:] if sent < len(data) else None


async def read_until(reader: asyncio.StreamReader, wanted: int) -> bytes:
    """Payload of the next frame of type ``wanted``; other frames (pushes) are skipped."""
    while True:
        length, frame_type = _HEADER.unpack(await reader.readexactly(5))
        payload = await reader.readexactly(length) if length else b""
        if frame_type == wanted:
            return payload
        if frame_type == FrameType.RESET:
            reset = pb.Reset.FromString(payload)
            raise ConnectionError(f"Reset {pb.Reset.Code.Name(reset.code)}: {reset.msg}")


async def _register(
    host: str, port: int, tls: bool, name: str, password: str, semaphore: asyncio.Semaphore
) -> None:
    async with semaphore:
        reader, writer = await asyncio.open_connection(
            host,
            port,
            ssl=client_tls_context() if tls else None,
            server_hostname=host if tls else None,
        )
        try:
            await read_until(reader, FrameType.RAW)
            writer.write(
                encode_frame(
                    FrameType.REGISTER, pb.RegisterRequest(username=name, password=password)
                )
            )
            response = pb.RegisterResponse.FromString(await read_until(reader, FrameType.REGISTER))
            if response.code != pb.RegisterResponse.SUCCESS:
                raise BenchError(f"register {name}: {pb.RegisterResponse.Code.Name(response.code)}")
        finally:
            writer.close()


async def register_all(
    relay: RelayProcess, names: list[str], concurrency: int, password: str = BENCH_PASSWORD
) -> None:
    """Register ``names`` over the wire, ``concurrency`` at a time (set-up, not measured)."""
    semaphore = asyncio.Semaphore(concurrency)
    await asyncio.gather(
        *(
            _register(relay.host, relay.port, not relay.plaintext, name, password, semaphore)
            for name in names
        )
    )
