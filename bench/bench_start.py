"""Relay start time and idle memory: exec to "listening", and RSS once it is idle.

Usage: python -m bench.bench_start [--runs 7] [--settle 1.0]

A data dir is prepared first by one relay start that generates the certificate (not
measured: a relay creates its certificate once in its life). Then the relay is started
``--runs`` times on that data dir (TLS, the production defaults: no flags beyond host, port,
data dir and ``--no-unix-socket``); each run measures the wall-clock time from ``exec`` to
the log line that says it listens, then waits ``--settle`` seconds and reads its VmRSS from
/proc/<pid>/status, then stops it (SIGTERM). Printed: min, median and max of both, and the
relay's own CPU time until it listened (utime + stime from /proc/<pid>/stat, read at the
"listening" line): on a shared host the wall-clock time includes waiting for a core, the
CPU time does not.

Nothing else runs in the relay: no client connects.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.benchlib import machine_description


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_once(data_dir: Path, settle: float) -> tuple[float, float, int]:
    """(seconds from exec to the 'listening' line, CPU seconds by then, VmRSS in KiB after
    ``settle`` s)."""
    command = [
        sys.executable,
        "-m",
        "relay",
        *("--host", "127.0.0.1", "--port", "0"),
        *("--data-dir", str(data_dir), "--no-unix-socket"),
    ]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    try:
        for line in process.stderr:
            if "listening on" in line:
                break
        else:
            raise RuntimeError(f"the relay exited with {process.wait()} before listening")
        elapsed = time.perf_counter() - started
        cpu = _cpu_seconds(process.pid)
        time.sleep(settle)
        return elapsed, cpu, _rss_kib(process.pid)
    finally:
        process.terminate()
        process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="measured starts")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds after 'listening' before RSS is read"
    )
    args = parser.parse_args()
    print(machine_description())
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        data_dir = Path(tmp) / "relay"
        start_once(data_dir, 0.0)  # generates the certificate: once in a relay's life
        runs = [start_once(data_dir, args.settle) for _ in range(args.runs)]
    times = sorted(elapsed for elapsed, _, _ in runs)
    cpu = sorted(seconds for _, seconds, _ in runs)
    rss = sorted(kib / 1024 for _, _, kib in runs)
    print(
        f"start to listening over {args.runs} starts: min {times[0]:.3f} s, "
        f"median {statistics.median(times):.3f} s, max {times[-1]:.3f} s; relay CPU by then "
        f"min {cpu[0]:.2f} s, median {statistics.median(cpu):.2f} s"
    )
    print(
        f"idle RSS {args.settle:g} s after listening: min {rss[0]:.1f} MiB, "
        f"median {statistics.median(rss):.1f} MiB, max {rss[-1]:.1f} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
