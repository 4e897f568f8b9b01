"""The connection supervisor of a :class:`~tui.client.session.ClientSession`.

Owns the live connection and everything about keeping one: the supervisor task, the
backoff between attempts, the wake-up that skips a wait, the first login's outcome, the
keepalive clock (last byte in, last frame out) and why the current connection will end.
What a connection carries (logins, messages, acknowledgements) is the session's: it is
the :class:`SupervisorHost` this module calls back.

Invariants:
- One supervisor task owns (re)connection: exponential backoff with jitter between
  attempts. It stops only on :meth:`Supervisor.stop` or a fatal error (untrusted relay,
  refused login, kicked by another login), reported as OFFLINE.
- While connected something is sent at least every ``ping_interval`` seconds (a Ping when
  idle), and a connection silent for ``dead_after`` seconds is dropped and re-established.
- Frames go out only through :meth:`Supervisor.send`, on the live connection, so the
  keepalive sees every one; without a live connection it raises :class:`NotConnected`.
- All of it runs on one asyncio loop; nothing here is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from typing import Protocol

from google.protobuf.message import Message as ProtoMessage

from protocol import FrameType, ProtocolError
from protocol import chat_pb2 as pb
from tui.client.aio import wait_event
from tui.client.backoff import Backoff
from tui.client.connection import Endpoint, FrameConnection
from tui.client.events import ConnectionState
from tui.client.login import (
    CLIENT_RESET_LEAVING,
    LoginFailed,
    LoginResult,
    RelayReset,
    SessionError,
)
from tui.client.trust import TrustError

# The supervisor logs as the session it keeps up: one logger name for one session's story.
log = logging.getLogger("tui.client.session")


class NotConnected(SessionError):
    """The call needs a live connection and there is none right now."""


class SupervisorHost(Protocol):
    """What the supervisor needs from the session it keeps connected."""

    async def log_in(self) -> LoginResult:
        """One connect-and-login attempt with the session's credentials and cursor."""
        ...

    def connection_begins(self, result: LoginResult) -> None:
        """A fresh login: reset the per-connection state (before CONNECTED is reported)."""
        ...

    def connection_ready(self) -> None:
        """CONNECTED was reported: resume what waits for a connection (sync, outbox)."""
        ...

    def dispatch(self, frame_type: FrameType, message: ProtoMessage | str) -> None: ...

    async def retry_loop(self) -> None:
        """Re-send what is due while the connection lasts (cancelled when it ends)."""
        ...

    def connection_lost(self, reason: str) -> None:
        """The connection ended (before it is closed): fail what needed it."""
        ...

    def save_cursor(self) -> None:
        """Persist what was received (after the connection is closed)."""
        ...

    def set_state(
        self,
        state: ConnectionState,
        *,
        retry_in: float | None = None,
        reason: str = "",
        error: BaseException | None = None,
    ) -> None: ...


def is_fatal(exc: BaseException) -> bool:
    """True when retrying cannot help and the user must act."""
    if isinstance(exc, TrustError | LoginFailed):
        return True
    if isinstance(exc, RelayReset):
        return exc.code == pb.Reset.KICKED
    return not isinstance(exc, OSError | TimeoutError | SessionError | ProtocolError)


class Supervisor:
    """Keeps ``host`` connected to ``endpoint``; see the module docstring."""

    def __init__(
        self,
        host: SupervisorHost,
        endpoint: Endpoint,
        backoff: Backoff,
        *,
        ping_interval: float,
        dead_after: float,
    ) -> None:
        self.host = host
        self.endpoint = endpoint
        self.backoff = backoff
        self.ping_interval = ping_interval
        self.dead_after = dead_after
        self.last_error: BaseException | None = None
        self.connected = asyncio.Event()
        self._conn: FrameConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._started: asyncio.Future[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._stop_error: BaseException | None = None
        self._drop_reason: str | None = None
        self._nonce = itertools.count(1)
        self._last_rx = self._last_tx = 0.0

    # --- the connection -----------------------------------------------------------------

    @property
    def connection(self) -> FrameConnection | None:
        return self._conn

    @property
    def is_open(self) -> bool:
        """There is a connection and it is not closed."""
        return self._conn is not None and not self._conn.closed

    def send(self, frame_type: FrameType, message: ProtoMessage) -> None:
        conn = self._conn
        if conn is None or conn.closed:
            raise NotConnected("not connected to the relay")
        conn.send(frame_type, message)
        self._last_tx = time.monotonic()

    def will_drop(self, reason: str, *, fatal: BaseException | None = None) -> None:
        """The relay is ending this connection (a Reset): say ``reason`` when it does, and
        stop for good afterwards if ``fatal`` is given."""
        if fatal is not None:
            self._stop_error = fatal
        self._drop_reason = reason

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, retry_first: bool) -> asyncio.Future[None]:
        """Start supervising; the future resolves at the first login (or its failure)."""
        self._closing = False
        self._stop_error = None
        return self._launch(retry_first)

    def reconnect_now(self) -> None:
        """Skip the current backoff wait (or restart after a fatal error) and try now."""
        self.backoff.reset()
        if self._closing:
            return
        if self.running:
            self._wake.set()
        else:
            self._stop_error = None
            self._launch(True)

    async def stop(self, goodbye: Callable[[], None]) -> None:
        """Call ``goodbye`` (last words on the live connection), say goodbye (Reset) and
        stop reconnecting; returns once the supervisor task has ended."""
        self._closing = True
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                goodbye()
            await conn.close(CLIENT_RESET_LEAVING)
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
            except Exception:
                log.exception("session supervisor failed")

    def _launch(self, retry_first: bool) -> asyncio.Future[None]:
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        started.add_done_callback(_consume_exception)
        self._started = started
        self._task = asyncio.create_task(self._supervise(retry_first))
        return started

    def _resolve_started(self, error: BaseException | None) -> None:
        if self._started is not None and not self._started.done():
            if error is None:
                self._started.set_result(None)
            else:
                self._started.set_exception(error)

    async def _supervise(self, retry_first: bool) -> None:
        ever_connected = False
        while not self._closing:
            self.host.set_state(ConnectionState.CONNECTING)
            try:
                result = await self.host.log_in()
            except Exception as exc:
                if self._closing:
                    break
                if is_fatal(exc) or not (ever_connected or retry_first):
                    self._stop(exc)
                    return
                await self._wait_before_retry(
                    str(exc) or type(exc).__name__, getattr(exc, "retry_after", 0.0)
                )
                continue
            ever_connected = True
            self.backoff.reset()
            reason = await self._serve(result)
            if self._closing:
                break
            if self._stop_error is not None:
                self._stop(self._stop_error)
                return
            log.info("connection to %s lost: %s", self.endpoint, reason)
            await self._wait_before_retry(reason, 0.0)
        self._resolve_started(NotConnected("session closed"))

    def _stop(self, error: BaseException) -> None:
        self.last_error = error
        log.warning("session for %s stopped: %s", self.endpoint, error)
        self.host.set_state(ConnectionState.OFFLINE, reason=str(error), error=error)
        self._resolve_started(error)

    async def _wait_before_retry(self, reason: str, at_least: float) -> None:
        delay = max(self.backoff.next_delay(), at_least)
        self._wake.clear()  # before the event: a listener may call reconnect_now() at once
        self.host.set_state(ConnectionState.RECONNECTING, retry_in=delay, reason=reason)
        await wait_event(self._wake, delay)

    async def _serve(self, result: LoginResult) -> str:
        """Run one logged-in connection until it ends; returns why it ended."""
        conn = result.connection
        self._conn = conn
        helpers: list[asyncio.Task[None]] = []
        reason = "connection lost"
        try:
            self._drop_reason = None
            self._last_rx = self._last_tx = time.monotonic()
            self.host.connection_begins(result)
            self.connected.set()
            self.host.set_state(ConnectionState.CONNECTED)
            self._resolve_started(None)
            self.host.connection_ready()
            helpers = [
                asyncio.create_task(self._keepalive(conn)),
                asyncio.create_task(self.host.retry_loop()),
            ]
            while True:
                frame_type, message = await conn.receive()
                self._last_rx = time.monotonic()
                self.host.dispatch(frame_type, message)
        except ProtocolError as exc:
            reason = f"relay broke the protocol: {exc.reason}"
        except (ConnectionError, OSError) as exc:
            reason = self._drop_reason or str(exc) or type(exc).__name__
        except Exception as exc:  # a bug or a broken local store: retrying will not help
            log.exception("client session failed")
            self._stop_error = exc
            reason = f"client error: {exc!r}"
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self._conn = None
            self.connected.clear()
            self.host.connection_lost(reason)
            await conn.close()
            self.host.save_cursor()
        return reason

    async def _keepalive(self, conn: FrameConnection) -> None:
        ping_interval, dead_after = self.ping_interval, self.dead_after
        while True:
            now = time.monotonic()
            if now - self._last_rx >= dead_after:
                self._drop_reason = f"nothing received from the relay for {dead_after:g} s"
                await conn.close(abort=True)
                return
            if now - self._last_tx >= ping_interval:
                self.send(FrameType.PING, pb.Ping(nonce=next(self._nonce)))
            wake_at = min(self._last_tx + ping_interval, self._last_rx + dead_after)
            await asyncio.sleep(max(wake_at - time.monotonic(), 0.01))


def _consume_exception(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
