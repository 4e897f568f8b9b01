"""Password hashing off the loop thread, login throttling and resume tokens.

Invariants:
- scrypt never runs on the event-loop thread: :class:`HashWorker` runs it in a small thread
  pool and hands each result back through a wake-up socket the loop selects on; callbacks
  then run on the loop thread, so everything the loop owns stays single-threaded.
- Passwords exist only in the request being handled; stored hashes are
  ``scrypt$N$r$p$salt$hash`` (base64), compared in constant time.
- Resume tokens are random 32-byte values; only their SHA-256 is stored.
- :class:`LoginThrottle` holds a bounded number of entries whatever peers do.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import queue
import secrets
import socket
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32


def _maxmem(n: int, r: int, p: int) -> int:
    return 128 * r * (n + p + 2) + 1024 * 1024


def hash_password(password: str, n: int) -> str:
    """Salted scrypt hash of ``password`` (slow on purpose: call from a worker thread)."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n,
                            r=SCRYPT_R, p=SCRYPT_P, dklen=HASH_BYTES,
                            maxmem=_maxmem(n, SCRYPT_R, SCRYPT_P))
    b64 = base64.b64encode
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True if ``password`` matches ``stored`` (slow on purpose: call from a worker thread)."""
    try:
        scheme, n_text, r_text, p_text, salt_b64, hash_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(hash_b64)
    except ValueError:
        return False
    digest = hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r,
                            p=p, dklen=len(expected), maxmem=_maxmem(n, r, p))
    return hmac.compare_digest(digest, expected)


def new_token() -> tuple[str, bytes]:
    """A fresh resume token (to give the client) and its hash (to store)."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> bytes:
    """The stored form of a resume token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


class HashWorker:
    """A thread pool for scrypt whose results come back to the loop thread.

    ``submit(fn, args, callback)`` runs ``fn(*args)`` in a worker; the loop selects on
    :meth:`fileno` and calls :meth:`run_callbacks` when it is readable, which calls
    ``callback(result, error)`` on the loop thread. ``pending`` bounds the backlog.
    """

    def __init__(self, workers: int | None = None) -> None:
        if workers is None:
            # Leave a core to the loop thread: with as many hash threads as cores, ping p99
            # during a login burst doubled on 2 cores (bench_login_burst.py).
            workers = max(1, (os.cpu_count() or 2) - 1)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scrypt")
        self._done: queue.SimpleQueue[tuple[Callable[[Any, BaseException | None], None], Any,
                                            BaseException | None]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._lock = threading.Lock()
        self.pending = 0
        self.computations = 0

    def fileno(self) -> int:
        return self._wake_r.fileno()

    @property
    def wake_socket(self) -> socket.socket:
        """The write end: also used as the signal wake-up fd."""
        return self._wake_w

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...],
               callback: Callable[[Any, BaseException | None], None]) -> None:
        self.pending += 1
        self.computations += 1

        def job() -> None:
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # handed to the loop, which logs it
                result, error = None, exc
            self._done.put((callback, result, error))
            # A full wake-up socket means a wake-up is pending; the loop drains the whole queue.
            with contextlib.suppress(BlockingIOError, InterruptedError):
                self._wake_w.send(b"\0")

        self._pool.submit(job)

    def run_callbacks(self) -> int:
        """Drain the wake-up socket and run every finished job's callback; return the count."""
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        count = 0
        while True:
            try:
                callback, result, error = self._done.get_nowait()
            except queue.Empty:
                return count
            self.pending -= 1
            count += 1
            callback(result, error)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._wake_r.close()
        self._wake_w.close()


class LoginThrottle:
    """Exponential lock-out after repeated failures, per key (username, peer address).

    After ``free_failures`` failures a key is locked for 1 s, doubling per further failure up
    to ``max_delay``. At most ``max_entries`` keys are remembered (oldest evicted).
    """

    def __init__(self, free_failures: int = 5, max_delay: float = 300.0,
                 max_entries: int = 100_000) -> None:
        self.free_failures = free_failures
        self.max_delay = max_delay
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0 = now)."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry[1] - now)

    def failure(self, key: str, now: float) -> None:
        failures, _ = self._entries.pop(key, (0, 0.0))
        failures += 1
        locked_until = now
        if failures > self.free_failures:
            locked_until = now + min(self.max_delay, 2.0 ** (failures - self.free_failures - 1))
        self._entries[key] = (failures, locked_until)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def success(self, key: str) -> None:
        self._entries.pop(key, None)
