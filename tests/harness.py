"""Run the real relay as a subprocess on a loopback port, for tests and benchmarks.

Not a fake: ``python -m relay`` with a real data dir (SQLite file, generated certificate),
real TLS unless ``plaintext``. The harness reads the relay's "listening on" log line to learn
the port (the relay is started with ``--port 0`` the first time and the same port on restart).
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from certs import CERT_FILE_NAME, fingerprint_of_pem_file

_LISTENING = re.compile(r"listening on (\S+):(\d+)")
FAST_SCRYPT_N = "1024"  # tests do not need a slow hash; production default is 2**14
# Every test client connects from 127.0.0.1, and many register and log in at once (1,000 in
# the token storm): the per-address defaults would refuse them. Tests of those limits pass
# their own values in ``extra_args``, which come later on the command line and win.
LOOPBACK_CROWD_LIMITS = (
    "--max-unauthenticated-per-address",
    "100000",
    "--registrations-per-minute",
    "100000",
)


class RelayProcess:
    """A relay subprocess. Its stderr is collected in ``log_lines`` for assertions."""

    def __init__(
        self,
        data_dir: Path,
        *,
        plaintext: bool = False,
        extra_args: Sequence[str] = (),
        open_files: int | None = None,
        unix_socket: Path | None = None,
    ) -> None:
        """``unix_socket``: also listen there (PROTOCOL.md section 11); by default the relay
        gets ``--no-unix-socket``, so concurrent test relays never share the default path."""
        self.data_dir = data_dir
        self.plaintext = plaintext
        self.extra_args = list(extra_args)
        self.open_files = open_files  # hard RLIMIT_NOFILE for the relay (resource tests)
        self.unix_socket = unix_socket
        self.host = "127.0.0.1"
        self.port = 0
        self.fingerprint: str | None = None
        self.cert_path = data_dir / CERT_FILE_NAME
        self.process: subprocess.Popen[str] | None = None
        self.log_lines: list[str] = []
        self._lock = threading.Lock()

    def command(self) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "relay",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--scrypt-n",
            FAST_SCRYPT_N,
            *LOOPBACK_CROWD_LIMITS,
        ]
        if self.plaintext:
            cmd.append("--plaintext")
        if self.unix_socket is not None:
            cmd += ["--unix-socket", str(self.unix_socket)]
        else:
            cmd.append("--no-unix-socket")
        return cmd + self.extra_args

    def start(self, timeout: float = 30.0) -> None:
        limit = self.open_files

        def set_limit() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        self.process = subprocess.Popen(
            self.command(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=set_limit,
        )
        ready = threading.Event()
        process = self.process

        def pump() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                with self._lock:
                    self.log_lines.append(line.rstrip("\n"))
                match = _LISTENING.search(line)
                if match and not ready.is_set():
                    self.port = int(match.group(2))
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or process.poll() is not None:
            raise RuntimeError("relay did not start:\n" + "\n".join(self.log_lines))
        if not self.plaintext:
            self.fingerprint = fingerprint_of_pem_file(self.cert_path)

    def admin(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """``parley-relay --data-dir <this relay's> ARGS`` in its own process: an admin
        command beside the running relay, as an operator would run it."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "relay",
                "--data-dir",
                str(self.data_dir),
                "--scrypt-n",
                FAST_SCRYPT_N,
                *args,
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def logs(self) -> str:
        with self._lock:
            return "\n".join(self.log_lines)

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            match = regex.search(self.logs())
            if match:
                return match
            time.sleep(0.02)
        raise AssertionError(f"relay never logged {pattern!r}:\n{self.logs()}")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL: the crash case. Nothing is flushed or committed by the relay."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system CPU time of the relay process so far (from /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> RelayProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
