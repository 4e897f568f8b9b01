"""Run mosquitto as a subprocess for same-run comparisons: TLS listener on a loopback port.

:class:`MosquittoProcess` writes a config into its own directory: one TLS 1.3 listener on
127.0.0.1 (a fresh ECDSA P-256 self-signed certificate from ``certs``, the same kind the
relay generates), ``persistence false``, anonymous clients allowed, no limit on in-flight
or queued QoS 1 messages (so the broker never throttles a subscriber the relay would not),
TCP_NODELAY on. Nothing is installed here; :func:`mosquitto_binary` finds the program.

Invariant: a started process is always stopped by :meth:`MosquittoProcess.stop` (also as
a context manager); its CPU time is read from /proc like the relay's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from certs import ensure_certificate

INSTALL_HINT = "apt-get install -y mosquitto"
_SBIN_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def mosquitto_binary() -> str | None:
    """Path of the mosquitto broker (PATH, then the usual sbin directories)."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in _SBIN_PATHS:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def mosquitto_version(binary: str) -> str:
    """``mosquitto version 2.0.11`` or similar (first line of ``mosquitto -h``)."""
    result = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False)
    lines = (result.stdout or result.stderr).splitlines()
    return lines[0].strip() if lines else "mosquitto (unknown version)"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class MosquittoProcess:
    """A mosquitto broker with one TLS listener; ``port`` and ``pid`` once started."""

    def __init__(self, directory: Path, binary: str) -> None:
        self.directory = directory
        self.binary = binary
        self.host = "127.0.0.1"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        pair, _ = ensure_certificate(self.directory)
        lines = [
            f"listener {self.port} {self.host}",
            f"certfile {pair.cert_path}",
            f"keyfile {pair.key_path}",
            "tls_version tlsv1.3",
            "allow_anonymous true",
            "persistence false",
            "max_inflight_messages 0",
            "max_queued_messages 0",
            "set_tcp_nodelay true",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to "mosquitto", who cannot read the key
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 10.0) -> None:
        self.port = _free_port()
        config = self._write_config()
        log = (self.directory / "mosquitto.log").open("wb")
        self.process = subprocess.Popen(
            [self.binary, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        log_text = (self.directory / "mosquitto.log").read_text(errors="replace")
        raise RuntimeError(f"mosquitto did not start:\n{log_text}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> MosquittoProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
