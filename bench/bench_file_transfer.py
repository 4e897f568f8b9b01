"""File-transfer throughput through the real relay (TLS by default) and relay CPU per MB.

Usage: python -m bench.bench_file_transfer [--size-mib 200] [--runs 3]
                                           [--receiver process|inline] [--plaintext]

Set-up: a relay subprocess (``tests.harness.RelayProcess``), two users who are buddies, a
file of ``--size-mib`` random bytes. The sender is a :class:`tui.client.ClientSession` with a
:class:`tui.client.transfer.TransferManager` in this process; the receiver is either a second
process (``--receiver process``, default: ``python -m tests.e2e.transfer_peer``, which
accepts every offer into a temporary downloads directory) or a second session in this
process (``--receiver inline``: both clients then share one core's worth of Python).

Each run offers the file (hashing it first, timed separately) and measures from the moment
the sender learns the offer was accepted to the moment it gets the receiver's final
FILE_PROGRESS, i.e. after the receiver wrote, fsync'ed, verified (SHA-256) and moved the file
into place. Figures per run: MB/s (10^6 bytes), relay CPU seconds (utime + stime from
/proc) per MB moved, relay RSS growth (sampled every 10 ms), and bytes the sender put on the
wire beyond the file size (retransmissions after losses; 0 when nothing was dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.benchlib import ROOT, RelayProcess, machine_description
from tests.files import random_file, sha256_of
from tests.tui.client.sessions import buddies, make_session
from tui.client.transfer import TransferManager, TransferState
from tui.client.transfer.events import (
    TransferCompleted,
    TransferEvent,
    TransferFailed,
    TransferOffered,
    TransferUpdated,
)

MB = 1_000_000
MIB = 1024 * 1024


class RssSampler:
    """Peak VmRSS of the relay, sampled every 10 ms in a thread."""

    def __init__(self, relay: RelayProcess) -> None:
        self.relay = relay
        self.baseline = self.peak = relay.rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.relay.rss_bytes())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.baseline


async def discard_lines(stream: asyncio.StreamReader) -> None:
    """Read the receiver's progress lines so that its pipe never fills up."""
    while await stream.readline():
        pass


async def run(args: argparse.Namespace, work: Path) -> list[dict[str, float]]:
    relay = RelayProcess(work / "relay", plaintext=args.plaintext)
    relay.start()
    results: list[dict[str, float]] = []
    proc: asyncio.subprocess.Process | None = None
    drain: asyncio.Future[None] | None = None
    try:
        alice = make_session(relay, work, "alice")
        bob = make_session(relay, work, "bob")
        sender = TransferManager(alice, data_dir=work / "alice")
        events: asyncio.Queue[TransferEvent] = asyncio.Queue()
        sender.add_listener(events.put_nowait)
        for session in (alice, bob):
            await session.register()
        await alice.start()
        await bob.start()
        await buddies(alice, bob)
        downloads = work / "downloads"
        downloads.mkdir()
        receiver: TransferManager | None = None
        if args.receiver == "inline":
            receiver = TransferManager(bob, data_dir=work / "bob", downloads_dir=downloads)

            accepting: set[asyncio.Future[object]] = set()

            def accept(event: TransferEvent) -> None:
                if isinstance(event, TransferOffered) and receiver is not None:
                    accepting.add(asyncio.ensure_future(receiver.accept(event.transfer.id)))

            receiver.add_listener(accept)
        else:
            await bob.close()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.e2e.transfer_peer", relay.host, str(relay.port),
                str(relay.fingerprint), "bob", "pw-bob", str(work / "bob"), str(downloads),
                cwd=ROOT, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert proc.stdout is not None
            if await asyncio.wait_for(proc.stdout.readline(), 60) != b"READY\n":
                raise RuntimeError("the receiver process did not log in")
            drain = asyncio.ensure_future(discard_lines(proc.stdout))
        await alice.list_buddies()
        source = work / "payload.bin"
        digest = random_file(source, args.size_mib * MIB)
        size = args.size_mib * MIB
        for number in range(1, args.runs + 1):
            hash_start = time.perf_counter()
            transfer = await sender.offer(bob.uid or 0, source)
            hashed = time.perf_counter() - hash_start
            while True:
                event = await asyncio.wait_for(events.get(), 120)
                if isinstance(event, TransferUpdated) and (
                    event.transfer.state is TransferState.ACTIVE
                ):
                    break
            started, cpu0 = time.perf_counter(), relay.cpu_seconds()
            client0 = resource.getrusage(resource.RUSAGE_SELF)
            sampler = RssSampler(relay)
            while True:
                event = await asyncio.wait_for(events.get(), 600)
                if isinstance(event, TransferFailed):
                    raise RuntimeError(f"transfer failed: {event.reason}")
                if isinstance(event, TransferCompleted) and event.transfer.id == transfer.id:
                    break
            wall = time.perf_counter() - started
            cpu = relay.cpu_seconds() - cpu0
            client1 = resource.getrusage(resource.RUSAGE_SELF)
            rss_growth = sampler.stop()
            client_cpu = (client1.ru_utime - client0.ru_utime) + (
                client1.ru_stime - client0.ru_stime
            )
            arrived = sorted(downloads.iterdir(), key=lambda p: p.stat().st_mtime)[-1]
            ok = sha256_of(arrived) == digest
            arrived.unlink()
            results.append(
                {
                    "mbps": size / MB / wall,
                    "wall": wall,
                    "hash": hashed,
                    "cpu_per_mb": cpu / (size / MB),
                    "relay_cpu": cpu,
                    "client_cpu": client_cpu,
                    "rss_mib": rss_growth / MIB,
                    "extra": event.transfer.sent_bytes - size,
                    "ok": float(ok),
                }
            )
            print(
                f"run {number}: {size / MB:.1f} MB in {wall:.2f} s = {size / MB / wall:.1f} MB/s;"
                f" relay CPU {cpu:.2f} s = {cpu / (size / MB) * 1e3:.2f} ms/MB; "
                f"relay RSS +{rss_growth / MIB:.1f} MiB; sender process CPU {client_cpu:.2f} s; "
                f"retransmitted {event.transfer.sent_bytes - size:,} B; "
                f"offer hashing {hashed:.2f} s; bit-identical: {ok}"
            )
        await sender.close()
        if receiver is not None:
            await receiver.close()
        await alice.close()
        await bob.close()
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        if drain is not None:
            drain.cancel()
        relay.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--size-mib", type=int, default=200, help="file size in MiB")
    parser.add_argument("--runs", type=int, default=3, help="transfers of the file, one by one")
    parser.add_argument("--receiver", choices=["process", "inline"], default="process")
    parser.add_argument("--plaintext", action="store_true", help="relay without TLS")
    args = parser.parse_args()
    print(machine_description())
    transport = "plaintext" if args.plaintext else "TLS"
    print(f"{args.size_mib} MiB file, {transport}, receiver {args.receiver}, {args.runs} runs")
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    if not all(r["ok"] for r in results):
        print("ERROR: a received file differs from the source")
        return 1
    rates = [r["mbps"] for r in results]
    print(
        f"throughput: median {statistics.median(rates):.1f} MB/s "
        f"(min {min(rates):.1f}, max {max(rates):.1f})"
    )
    print(
        f"relay CPU per MB: median {statistics.median(r['cpu_per_mb'] for r in results) * 1e3:.2f}"
        f" ms/MB; relay RSS growth: max {max(r['rss_mib'] for r in results):.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
