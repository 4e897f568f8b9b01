"""Password hashing off the loop thread, login throttling and resume tokens.

Invariants:
- scrypt never runs on the event-loop thread: :class:`HashWorker` runs it in a small thread
  pool and hands each result back through a wake-up socket the loop selects on; callbacks
  then run on the loop thread, so everything the loop owns stays single-threaded.
- Password work waits in a bounded FIFO instead of being refused (:meth:`HashWorker.enqueue`):
  at most ``max_pending`` jobs are in the pool at once, at most ``max_waiting`` more wait in
  order, and a finished job starts the next waiting one on the loop thread. A waiting job
  that is no longer wanted (its connection closed) is dropped unrun when its turn comes.
- Passwords exist only in the request being handled; stored hashes are
  ``scrypt$N$r$p$salt$hash`` (base64), compared in constant time.
- Resume tokens are random 32-byte values; only their SHA-256 is stored.
- :class:`LoginThrottle` and :class:`RegistrationLimit` hold a bounded number of entries
  whatever peers do; a login attempt counts against its limits from the moment it starts.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import queue
import socket
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
# A peer address may start this many times as many failing logins (over all accounts) as one
# account at one address before it waits too: room for the users of a shared box, who all
# connect from one address, while an address trying many accounts is slowed down.
ADDRESS_FAILURES_FACTOR = 4
FAILURE_MEMORY_S = 3600.0  # a throttle key with no failed login for this long starts afresh
MAX_BACKOFF_EXPONENT = 20  # 2**20 s is beyond any sensible max_delay; keeps the power finite
REGISTRATION_WINDOW_S = 60.0


def _maxmem(n: int, r: int, p: int) -> int:
    return 128 * r * (n + p + 2) + 1024 * 1024


def hash_password(password: str, n: int) -> str:
    """Salted scrypt hash of ``password`` (slow on purpose: call from a worker thread)."""
    salt = os.urandom(SALT_BYTES)  # what secrets.token_bytes does
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=HASH_BYTES,
        maxmem=_maxmem(n, SCRYPT_R, SCRYPT_P),
    )
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
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=len(expected),
        maxmem=_maxmem(n, r, p),
    )
    return hmac.compare_digest(digest, expected)


def new_token() -> tuple[str, bytes]:
    """A fresh resume token (to give the client) and its hash (to store)."""
    # secrets.token_urlsafe(32), without importing secrets and random (115 KiB of the idle
    # relay's RSS, bench_start).
    token = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode("ascii")
    return token, token_hash(token)


def token_hash(token: str) -> bytes:
    """The stored form of a resume token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


_Waiting = tuple[
    Callable[..., Any],
    tuple[Any, ...],
    Callable[[Any, BaseException | None], None],
    Callable[[], bool],
]


class HashWorker:
    """A thread pool for scrypt whose results come back to the loop thread.

    ``submit(fn, args, callback)`` runs ``fn(*args)`` in a worker; the loop selects on
    :meth:`fileno` and calls :meth:`run_callbacks` when it is readable, which calls
    ``callback(result, error)`` on the loop thread. ``pending`` counts the jobs in the
    pool (running or queued in it, not yet called back); :meth:`enqueue` bounds it and keeps
    the overflow waiting in ``waiting`` (module docstring).
    """

    def __init__(self, workers: int | None = None) -> None:
        if workers is None:
            # Leave a core to the loop thread: with as many hash threads as cores, ping p99
            # during a login burst doubled on 2 cores (bench_login_burst.py).
            workers = max(1, (os.cpu_count() or 2) - 1)
        # Our own small pool, not concurrent.futures (100 KiB of imports in an idle relay,
        # bench_start): threads start on demand, up to ``workers``, and take jobs in order.
        self._workers = workers
        self._threads: list[threading.Thread] = []
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._idle = 0  # threads done with their jobs and not yet handed a new one
        self._lock = threading.Lock()
        self._done: queue.SimpleQueue[
            tuple[Callable[[Any, BaseException | None], None], Any, BaseException | None]
        ] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.pending = 0
        self.computations = 0
        self.max_pending = 0  # the bound of the latest enqueue: waiting jobs start below it
        # fn, args, callback, wanted: jobs beyond ``max_pending``, oldest first
        self.waiting: deque[_Waiting] = deque()

    def fileno(self) -> int:
        return self._wake_r.fileno()

    @property
    def wake_socket(self) -> socket.socket:
        """The write end: also used as the signal wake-up fd."""
        return self._wake_w

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        callback: Callable[[Any, BaseException | None], None],
    ) -> None:
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

        with self._lock:  # as ThreadPoolExecutor: an idle thread takes it, else a new one
            start = self._idle == 0 and len(self._threads) < self._workers
            if self._idle:
                self._idle -= 1
        if start:
            thread = threading.Thread(
                target=self._work, name=f"scrypt_{len(self._threads)}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        self._jobs.put(job)

    def _work(self) -> None:
        """A pool thread: run jobs until the ``None`` that :meth:`close` sends."""
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None:
                return
            job()
            with self._lock:
                self._idle += 1

    def enqueue(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        callback: Callable[[Any, BaseException | None], None],
        wanted: Callable[[], bool],
        *,
        max_pending: int,
        max_waiting: int,
    ) -> bool:
        """Submit now if fewer than ``max_pending`` jobs are in the pool and none waits,
        else wait in line; False (nothing queued) when ``max_waiting`` jobs already wait.
        ``wanted()`` is asked when a waiting job's turn comes: False drops it unrun."""
        self.max_pending = max_pending
        if self.pending < max_pending and not self.waiting:
            self.submit(fn, args, callback)
            return True
        if len(self.waiting) >= max_waiting:
            return False
        self.waiting.append((fn, args, callback, wanted))
        return True

    def _start_waiting(self) -> None:
        """Move waiting jobs into the pool while it holds fewer than ``max_pending``."""
        waiting = self.waiting
        while waiting and self.pending < self.max_pending:
            fn, args, callback, wanted = waiting.popleft()
            if wanted():
                self.submit(fn, args, callback)

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
                self._start_waiting()
                return count
            self.pending -= 1
            count += 1
            try:
                callback(result, error)
            except Exception:  # one failing callback must not stop the others or the loop
                logging.getLogger("parley.relay").exception("a password-check callback failed")

    def close(self) -> None:
        self.waiting.clear()
        with contextlib.suppress(queue.Empty):  # jobs not started are dropped
            while True:
                self._jobs.get_nowait()
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        self._wake_r.close()
        self._wake_w.close()


def address_key(host: str) -> str:
    """The unit of the per-address limits for a peer's ``host``: an IPv4 address, an IPv6 /64
    (one host or one customer usually holds a whole /64), an IPv4-mapped address as IPv4."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


_Key = TypeVar("_Key", bound=Hashable)


class _Backoff(Generic[_Key]):
    """Failure counts per key with exponential back-off (see :class:`LoginThrottle`)."""

    def __init__(self, free_failures: int, max_delay: float, max_entries: int) -> None:
        self.free_failures = free_failures
        self.max_delay = max_delay
        self.max_entries = max_entries
        # key -> (failures, time of the latest), least recently failed first
        self._entries: OrderedDict[_Key, tuple[int, float]] = OrderedDict()

    def retry_after(self, key: _Key, now: float) -> float:
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        failures, latest = entry
        if failures < self.free_failures or now - latest >= FAILURE_MEMORY_S:
            return 0.0
        exponent = min(failures - self.free_failures, MAX_BACKOFF_EXPONENT)
        return max(0.0, latest + min(self.max_delay, 2.0**exponent) - now)

    def fail(self, key: _Key, now: float) -> None:
        failures, latest = self._entries.pop(key, (0, now))
        if now - latest >= FAILURE_MEMORY_S:
            failures = 0
        self._entries[key] = (failures + 1, now)
        entries = self._entries
        while entries:
            oldest, (_, oldest_latest) = next(iter(entries.items()))
            if len(entries) <= self.max_entries and now - oldest_latest < FAILURE_MEMORY_S:
                break
            del entries[oldest]

    def forget(self, key: _Key) -> None:
        self._entries.pop(key, None)


class LoginThrottle:
    """Slows password guessing without letting anyone lock an account's owner out.

    Two ledgers of failed logins with exponential back-off: per account *at one peer address*
    (``free_failures`` attempts, then each further one waits 1 s after the latest, doubling up
    to ``max_delay``) and per peer address over all accounts (``ADDRESS_FAILURES_FACTOR``
    times as many free attempts). Guessing from other addresses never delays the owner's
    address, and a valid resume token is accepted before the throttle is asked. An attempt
    on an account counts as failed from the moment its check starts (:meth:`attempt`), so
    checks still running count toward the account's limit; :meth:`succeeded` takes it back.
    The address ledger counts only checks that failed (:meth:`failed`) and logins to unknown
    accounts: many users behind one address (a shared box on 127.0.0.1, a NAT) logging in at
    once are not a guessing attack, and the global hash budget bounds their concurrent
    work. A key with no failure for
    FAILURE_MEMORY_S starts afresh; each ledger holds at most ``max_entries`` keys (the least
    recently failed dropped first), so memory stays bounded whatever peers do.
    """

    def __init__(
        self, free_failures: int = 5, max_delay: float = 300.0, max_entries: int = 100_000
    ) -> None:
        self._accounts: _Backoff[tuple[int, str]] = _Backoff(free_failures, max_delay, max_entries)
        self._addresses: _Backoff[str] = _Backoff(
            free_failures * ADDRESS_FAILURES_FACTOR, max_delay, max_entries
        )

    def retry_after(self, uid: int | None, address: str, now: float) -> float:
        """Seconds until a login to ``uid`` (None: no such user) from ``address`` may be
        checked (0 = now)."""
        wait = self._addresses.retry_after(address, now)
        if uid is not None:
            wait = max(wait, self._accounts.retry_after((uid, address), now))
        return wait

    def attempt(self, uid: int | None, address: str, now: float) -> None:
        """A login to ``uid`` from ``address`` starts its check: it counts as failed for the
        account until :meth:`succeeded`. ``uid`` None (no such account, or an invalid token
        alone) fails at once, and for the address."""
        if uid is None:
            self._addresses.fail(address, now)
        else:
            self._accounts.fail((uid, address), now)

    def failed(self, address: str, now: float) -> None:
        """The check of an :meth:`attempt` found the password wrong: the address fails too."""
        self._addresses.fail(address, now)

    def succeeded(self, uid: int, address: str) -> None:
        """The attempt's password was right: the account starts afresh at this address."""
        self._accounts.forget((uid, address))


class RegistrationLimit:
    """At most ``per_minute`` registrations per peer address in any REGISTRATION_WINDOW_S.

    Remembers the times of the recent registrations of at most ``max_addresses`` addresses
    (at most ``per_minute`` times each; the address that registered least recently is
    dropped first, and starts afresh), so memory stays bounded whatever peers do.
    """

    def __init__(self, per_minute: int, max_addresses: int = 10_000) -> None:
        self.per_minute = per_minute
        self.max_addresses = max_addresses
        # address -> its registration times in the window, least recently registering first
        self._recent: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, address: str, now: float) -> bool:
        """Record a registration from ``address`` and return True, or return False when it
        already had ``per_minute`` in the window."""
        recent = self._recent
        while recent and now - next(iter(recent.values()))[-1] >= REGISTRATION_WINDOW_S:
            recent.popitem(last=False)
        times = recent.get(address)
        if times is not None:
            while now - times[0] >= REGISTRATION_WINDOW_S:
                times.popleft()
            if len(times) >= self.per_minute:
                return False
            recent.move_to_end(address)
        elif self.per_minute < 1:
            return False
        else:
            times = recent[address] = deque(maxlen=self.per_minute)
            if len(recent) > self.max_addresses:
                recent.popitem(last=False)
        times.append(now)
        return True
