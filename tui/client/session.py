"""``ClientSession``: one user's protocol-v2 session with a relay, kept alive across drops.

Invariants:
- Durable messages go through the :class:`~tui.client.outbox.Outbox` (persisted before they
  are sent, re-sent until acknowledged); ephemeral ones are written directly or not at all.
- Incoming durable messages are stored before they are acknowledged; each inbox seq is
  reported (:class:`~tui.client.events.MessageReceived`) at most once, ever. Ephemeral ones
  are reported as they come, except the types a handler intercepts (:meth:`intercept`).
- Requests of one type are answered in order (the protocol has no request ids): each
  response resolves the oldest waiting call of its type; a call that timed out still
  consumes its response. Every ListBuddyResponse, asked for or pushed, is also a
  :class:`~tui.client.events.BuddyListChanged` event.
- While connected something is sent at least every ``ping_interval`` seconds (a Ping when
  idle), and a connection silent for ``dead_after`` seconds is dropped and re-established.
- One supervisor task owns (re)connection: exponential backoff with jitter, resume by token
  and ``since_seq``. It stops only on :meth:`ClientSession.close` or a fatal error
  (untrusted relay, refused login, kicked by another login), reported as OFFLINE.
- All of it runs on one asyncio loop; nothing here is thread-safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import Message as ProtoMessage

from protocol import FrameType, ProtocolError, is_durable
from protocol import chat_pb2 as pb
from protocol.validation import normalize_username, username_key
from tui.client.aio import wait_event
from tui.client.backoff import Backoff, RetryPolicy
from tui.client.connection import CLIENT_MAX_FRAME, Endpoint, FrameConnection
from tui.client.events import (
    AckReceived,
    Buddy,
    BuddyListChanged,
    ConnectionState,
    ConnectionStateChanged,
    Event,
    EventHub,
    EventStream,
    GreetingReceived,
    Listener,
    MessageReceived,
    OutgoingStateChanged,
    ResetReceived,
    SyncCompleted,
    UserInfo,
)
from tui.client.inbox import AckBatcher, InboxTracker, Verdict
from tui.client.login import (
    CLIENT_RESET_LEAVING,
    LoginFailed,
    LoginResult,
    RelayReset,
    SessionError,
    login,
    register_account,
)
from tui.client.outbox import Outbox
from tui.client.store import (
    HistoryEntry,
    LocalStore,
    MessageState,
    default_data_dir,
    history_path,
)
from tui.client.trust import TrustError, TrustPolicy

log = logging.getLogger(__name__)

# States in which the relay has answered for an outgoing message.
ANSWERED = frozenset({MessageState.SENT, MessageState.DELIVERED, MessageState.FAILED})


class NotConnected(SessionError):
    """The call needs a live connection and there is none right now."""


@dataclass(frozen=True)
class SessionOptions:
    """Tunables; the defaults follow PROTOCOL.md (relay drops v2 sessions silent for 90 s)."""

    ping_interval: float = 25.0
    dead_after: float = 70.0
    connect_timeout: float = 15.0
    login_timeout: float = 30.0
    request_timeout: float = 30.0
    ack_delay: float = 0.1
    ack_batch: int = 64
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    event_queue: int = 10_000
    max_frame: int = CLIENT_MAX_FRAME


@dataclass(frozen=True)
class UserList:
    users: tuple[UserInfo, ...]
    truncated: bool


def _is_fatal(exc: BaseException) -> bool:
    """True when retrying cannot help and the user must act."""
    if isinstance(exc, TrustError | LoginFailed):
        return True
    if isinstance(exc, RelayReset):
        return exc.code == pb.Reset.KICKED
    return not isinstance(exc, OSError | TimeoutError | SessionError | ProtocolError)


class ClientSession:
    """A user's session; see the module docstring. Typical use::

    session = ClientSession(Endpoint(host, port), "alice", password, trust=policy)
    session.add_listener(on_event)          # or: async for ev in session.events()
    await session.start()                   # raises on a refused first login
    entry = session.send_text(bob_uid, "hi")
    await session.wait_outcome(entry.msg_id)
    await session.close()
    """

    def __init__(
        self,
        endpoint: Endpoint,
        username: str,
        password: str | None = None,
        *,
        trust: TrustPolicy,
        store: LocalStore | None = None,
        data_dir: Path | None = None,
        options: SessionOptions | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.endpoint = endpoint
        self.username = username
        self.trust = trust
        self.options = options or SessionOptions()
        self._password = password
        self._token: str | None = None
        self._owns_store = store is None
        if store is None:
            base = data_dir if data_dir is not None else default_data_dir()
            store = LocalStore.open(history_path(base, endpoint.host, endpoint.port, username))
        self.store = store
        self.outbox = Outbox(store, self.options.retry)
        self.inbox = InboxTracker(store.last_seq)
        self.acks = AckBatcher(self.options.ack_delay, self.options.ack_batch)
        self.backoff = Backoff(self.options.backoff_base, cap=self.options.backoff_cap, rng=rng)
        self.state = ConnectionState.OFFLINE
        self.uid: int | None = None
        self.head_seq = 0
        self.greeting: str | None = None
        self.fingerprint: str | None = None
        self.resumed_by_token = False  # the current connection logged in with the token
        self.buddies: dict[int, Buddy] = {}
        self.last_error: BaseException | None = None
        self._hub = EventHub()
        self._conn: FrameConnection | None = None
        self._waiters: dict[FrameType, deque[asyncio.Future[Any]]] = {}
        self._outcome_waiters: dict[
            int, list[tuple[frozenset[MessageState], asyncio.Future[HistoryEntry]]]
        ] = {}
        self._connected = asyncio.Event()
        self._synced = asyncio.Event()
        self._wake = asyncio.Event()
        self._retry_wake = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._started: asyncio.Future[None] | None = None
        self._ack_timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._closed = False
        self._stop_error: BaseException | None = None
        self._drop_reason: str | None = None
        self._nonce = itertools.count(1)
        self._syncs_pending = 0
        self._last_rx = self._last_tx = 0.0
        self._interceptors: dict[int, Callable[[pb.Message], None]] = {}

    # --- events -------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every event; returns an unsubscribe function."""
        return self._hub.add_listener(listener)

    def events(self, maxsize: int | None = None) -> EventStream:
        """A new async iterator over every event from now on (bounded; see events.py)."""
        return self._hub.stream(maxsize or self.options.event_queue)

    def intercept(
        self, message_type: int, handler: Callable[[pb.Message], None]
    ) -> Callable[[], None]:
        """Hand incoming *ephemeral* messages of ``message_type`` (FILE_CHUNK, FILE_PROGRESS)
        to ``handler`` instead of reporting them as MessageReceived events: bulk traffic
        must not flood every listener and event stream. One handler per type (a new one
        replaces the old); it runs on the loop and must not block. Returns a remover."""
        if is_durable(message_type):
            raise ValueError("only ephemeral message types can be intercepted")
        self._interceptors[message_type] = handler

        def remove() -> None:
            if self._interceptors.get(message_type) is handler:
                del self._interceptors[message_type]

        return remove

    def _emit(self, event: Event) -> None:
        self._hub.emit(event)

    def _set_state(
        self,
        state: ConnectionState,
        *,
        retry_in: float | None = None,
        reason: str = "",
        error: BaseException | None = None,
    ) -> None:
        self.state = state
        self._emit(ConnectionStateChanged(state, retry_in, reason, error))

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def register(self) -> int:
        """Create this session's account (username + password) on the relay; returns uid."""
        if self._password is None:
            raise ValueError("registering needs a password")
        return await register_account(
            self.endpoint,
            self.trust,
            self.username,
            self._password,
            timeout=self.options.login_timeout,
        )

    async def start(self, *, retry_first: bool = False) -> None:
        """Connect and log in, then keep the session up in the background.

        Returns once logged in. A fatal error (see module docstring) always raises; other
        errors of the first attempt raise unless ``retry_first``, in which case they are
        retried with backoff (RECONNECTING events) until the login succeeds.
        """
        if self._closed:
            raise RuntimeError("session is closed")
        if self._supervisor is not None and not self._supervisor.done():
            raise RuntimeError("session already started")
        self._closing = False
        self._stop_error = None
        self._started = asyncio.get_running_loop().create_future()
        self._started.add_done_callback(_consume_exception)
        self._supervisor = asyncio.create_task(self._supervise(retry_first))
        try:
            await asyncio.shield(self._started)
        except asyncio.CancelledError:
            await self.close()
            raise

    def reconnect_now(self) -> None:
        """Skip the current backoff wait (or restart after a fatal error) and try now."""
        self.backoff.reset()
        if self._closed or self._closing:
            return
        if self._supervisor is not None and not self._supervisor.done():
            self._wake.set()
        else:
            self._stop_error = None
            self._started = asyncio.get_running_loop().create_future()
            self._started.add_done_callback(_consume_exception)
            self._supervisor = asyncio.create_task(self._supervise(True))

    async def close(self) -> None:
        """Acknowledge what we have, say goodbye (Reset), stop reconnecting. Idempotent."""
        if self._closed:
            return
        self._closing = True
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                self._flush_acks()
            await conn.close(CLIENT_RESET_LEAVING)
        self._wake.set()
        if self._supervisor is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._supervisor), 5.0)
            except (TimeoutError, asyncio.CancelledError):
                self._supervisor.cancel()
                with contextlib.suppress(BaseException):
                    await self._supervisor
            except Exception:
                log.exception("session supervisor failed")
        self._closed = True
        self.store.set_last_seq(self.inbox.cursor)
        self.store.commit()
        if self._owns_store:
            self.store.close()
        for waiters in self._outcome_waiters.values():
            for _, future in waiters:
                if not future.done():
                    future.set_exception(NotConnected("session closed"))
        self._set_state(ConnectionState.OFFLINE, reason="closed")
        self._hub.close()

    async def __aenter__(self) -> ClientSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until the backlog of the current connection has been replayed (Sync)."""
        await asyncio.wait_for(self._synced.wait(), timeout)

    # --- supervisor ---------------------------------------------------------------------

    def _resolve_started(self, error: BaseException | None) -> None:
        if self._started is not None and not self._started.done():
            if error is None:
                self._started.set_result(None)
            else:
                self._started.set_exception(error)

    async def _supervise(self, retry_first: bool) -> None:
        ever_connected = False
        while not self._closing:
            self._set_state(ConnectionState.CONNECTING)
            try:
                result = await login(
                    self.endpoint,
                    self.trust,
                    self.username,
                    password=self._password,
                    token=self._token,
                    since_seq=self.inbox.cursor,
                    connect_timeout=self.options.connect_timeout,
                    login_timeout=self.options.login_timeout,
                    max_frame=self.options.max_frame,
                )
            except Exception as exc:
                if self._closing:
                    break
                if _is_fatal(exc) or not (ever_connected or retry_first):
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
        self._set_state(ConnectionState.OFFLINE, reason=str(error), error=error)
        self._resolve_started(error)

    async def _wait_before_retry(self, reason: str, at_least: float) -> None:
        delay = max(self.backoff.next_delay(), at_least)
        self._wake.clear()  # before the event: a listener may call reconnect_now() at once
        self._set_state(ConnectionState.RECONNECTING, retry_in=delay, reason=reason)
        await wait_event(self._wake, delay)

    async def _serve(self, result: LoginResult) -> str:
        """Run one logged-in connection until it ends; returns why it ended."""
        conn = result.connection
        self._conn = conn
        helpers: list[asyncio.Task[None]] = []
        reason = "connection lost"
        try:
            self._begin(result)
            helpers = [
                asyncio.create_task(self._keepalive(conn)),
                asyncio.create_task(self._retry_loop()),
            ]
            while True:
                frame_type, message = await conn.receive()
                self._last_rx = time.monotonic()
                self._dispatch(frame_type, message)
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
            self._connected.clear()
            if self._ack_timer is not None:
                self._ack_timer.cancel()
                self._ack_timer = None
            self.outbox.on_disconnect()
            for queue in self._waiters.values():
                while queue:
                    future = queue.popleft()
                    if not future.done():
                        future.set_exception(NotConnected(reason))
            await conn.close()
            self.store.set_last_seq(self.inbox.cursor)
            self.store.commit()
        return reason

    def _begin(self, result: LoginResult) -> None:
        """A fresh login: reset per-connection state, announce, re-send the outbox."""
        self.uid, self._token = result.uid, result.token or self._token
        self.head_seq, self.fingerprint = result.head_seq, result.connection.fingerprint
        self.resumed_by_token = result.used_token
        self._drop_reason = None
        self._last_rx = self._last_tx = time.monotonic()
        if result.greeting is not None:
            self.greeting = result.greeting
            self._emit(GreetingReceived(result.greeting))
        resync = result.head_seq < self.inbox.cursor
        if resync:
            log.warning(
                "relay inbox head %d is below our cursor %d: relay history was reset",
                result.head_seq,
                self.inbox.cursor,
            )
            self.store.rebase_inbox()
            self.inbox = InboxTracker(0)
        self.inbox.begin_backlog()
        self._syncs_pending = 1  # the login's backlog ends with a Sync
        self.acks.reset(self.inbox.cursor)
        self._schedule_ack()
        self._synced.clear()
        self._connected.set()
        self._set_state(ConnectionState.CONNECTED)
        self._resolve_started(None)
        if resync:
            self.request_sync()
        to_send, failed = self.outbox.on_connect()
        for entry in failed:
            self._emit_outgoing(entry)
        for entry in to_send:
            self._transmit(entry, count_attempt=False)

    async def _keepalive(self, conn: FrameConnection) -> None:
        ping_interval, dead_after = self.options.ping_interval, self.options.dead_after
        while True:
            now = time.monotonic()
            if now - self._last_rx >= dead_after:
                self._drop_reason = f"nothing received from the relay for {dead_after:g} s"
                await conn.close(abort=True)
                return
            if now - self._last_tx >= ping_interval:
                self._send(FrameType.PING, pb.Ping(nonce=next(self._nonce)))
            wake_at = min(self._last_tx + ping_interval, self._last_rx + dead_after)
            await asyncio.sleep(max(wake_at - time.monotonic(), 0.01))

    async def _retry_loop(self) -> None:
        while True:
            due = self.outbox.next_due_at()
            self._retry_wake.clear()
            timeout = None if due is None else max(due - time.monotonic(), 0.0)
            await wait_event(self._retry_wake, timeout)
            to_send, failed = self.outbox.take_due()
            for entry in failed:
                self._emit_outgoing(entry)
            for entry in to_send:
                self._transmit(entry)

    # --- sending ------------------------------------------------------------------------

    def _send(self, frame_type: FrameType, message: ProtoMessage) -> None:
        conn = self._conn
        if conn is None or conn.closed:
            raise NotConnected("not connected to the relay")
        conn.send(frame_type, message)
        self._last_tx = time.monotonic()

    def _transmit(self, entry: HistoryEntry, *, count_attempt: bool = True) -> None:
        if self._conn is None or self._conn.closed:
            return
        self._send(FrameType.MESSAGE, self.outbox.sending(entry, count_attempt=count_attempt))
        self._retry_wake.set()

    def send(
        self,
        peer: int,
        message_type: int,
        *,
        text: str = "",
        data: bytes = b"",
        file: pb.FileInfo | None = None,
    ) -> HistoryEntry:
        """Queue a durable message (persisted first, then sent when connected, retried until
        acknowledged). Returns its PENDING entry; follow it with OutgoingStateChanged events
        or :meth:`wait_outcome`. ``ValueError`` for ephemeral types or a text over 64 KiB."""
        entry = self.outbox.add(peer, message_type, text=text, data=data, file=file)
        self._emit_outgoing(entry)
        self._transmit(entry)
        return entry

    def send_text(self, peer: int, text: str) -> HistoryEntry:
        return self.send(peer, pb.Message.MESSAGE, text=text)

    def send_ephemeral(
        self,
        peer: int,
        message_type: int,
        *,
        text: str = "",
        data: bytes = b"",
        file: pb.FileInfo | None = None,
    ) -> bool:
        """Send an ephemeral message now if connected (True) or drop it (False). Never stored,
        never retried. Bulk senders (file chunks) should ``await drain()`` between sends."""
        if is_durable(message_type):
            raise ValueError("durable messages go through send()")
        if self._conn is None or self._conn.closed:
            return False
        message = pb.Message(
            uid=peer, type=pb.Message.Type.ValueType(message_type), msg=text, data=data
        )
        if file is not None:
            message.file.CopyFrom(file)
        self._send(FrameType.MESSAGE, message)
        return True

    def send_typing(self, peer: int) -> bool:
        return self.send_ephemeral(peer, pb.Message.INPUTING)

    def resend(self, msg_id: int) -> HistoryEntry:
        """Re-send a FAILED message (fresh attempt budget). ``KeyError`` if not FAILED."""
        entry = self.outbox.resend(msg_id)
        self._emit_outgoing(entry)
        self._transmit(entry)
        return entry

    async def drain(self) -> None:
        """Wait until the connection's write buffer is below its high-water mark."""
        if self._conn is not None:
            await self._conn.drain()

    async def wait_outcome(
        self,
        msg_id: int,
        states: Iterable[MessageState] = ANSWERED,
        timeout: float | None = None,
    ) -> HistoryEntry:
        """Wait until outgoing ``msg_id`` is in one of ``states`` (default: the relay
        answered: SENT, DELIVERED or FAILED). ``KeyError`` for an unknown id."""
        wanted = frozenset(states)
        entry = self.store.find_outgoing(msg_id)
        if entry is None:
            raise KeyError(f"no outgoing message {msg_id}")
        if entry.state in wanted:
            return entry
        future: asyncio.Future[HistoryEntry] = asyncio.get_running_loop().create_future()
        waiters = self._outcome_waiters.setdefault(msg_id, [])
        waiters.append((wanted, future))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            waiters.remove((wanted, future))
            if not waiters:
                del self._outcome_waiters[msg_id]

    def _emit_outgoing(self, entry: HistoryEntry) -> None:
        self._emit(OutgoingStateChanged(entry))
        for wanted, future in self._outcome_waiters.get(entry.msg_id, ()):
            if entry.state in wanted and not future.done():
                future.set_result(entry)

    def request_sync(self) -> None:
        """Ask the relay to replay everything after our cursor (then SyncCompleted)."""
        self._send(FrameType.SYNC, pb.Sync(since_seq=self.inbox.cursor))
        self._synced.clear()
        self.inbox.begin_backlog()
        self._syncs_pending += 1

    # --- requests -----------------------------------------------------------------------

    async def _request(
        self, frame_type: FrameType, message: ProtoMessage, timeout: float | None
    ) -> Any:
        if self._conn is None:
            raise NotConnected("not connected to the relay")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._send(frame_type, message)  # first: if it raises, no waiter is left behind
        self._waiters.setdefault(frame_type, deque()).append(future)
        return await asyncio.wait_for(future, timeout or self.options.request_timeout)

    async def list_users(
        self, query: str = "", limit: int = 0, timeout: float | None = None
    ) -> UserList:
        """Users whose name contains ``query`` (relay's limit when ``limit`` is 0)."""
        reply = await self._request(
            FrameType.LIST_USER, pb.ListUserRequest(query=query, limit=limit), timeout
        )
        users = tuple(UserInfo(u.uid, u.username, u.online) for u in reply.users)
        return UserList(users, reply.truncated)

    async def find_user(self, username: str, timeout: float | None = None) -> UserInfo | None:
        """The user with exactly this name (case-insensitively), or None.

        ``ValueError`` if ``username`` is not a valid username at all."""
        key = username_key(normalize_username(username))
        result = await self.list_users(query=username, timeout=timeout)
        for user in result.users:
            if username_key(user.username) == key:
                self.store.set_peer_names([(user.uid, user.username)])
                return user
        return None

    async def list_buddies(self, timeout: float | None = None) -> list[Buddy]:
        """The buddy list (resolved by the next ListBuddyResponse, asked or pushed)."""
        reply = await self._request(FrameType.LIST_BUDDY, pb.ListBuddyRequest(), timeout)
        return [Buddy.from_pb(user) for user in reply.users]

    async def add_buddy(self, uid: int, timeout: float | None = None) -> int:
        """AddBuddyResponse code: SUCCESS (now buddies), PENDING (request sent) or FAILED."""
        reply = await self._request(FrameType.ADD_BUDDY, pb.AddBuddyRequest(uid=uid), timeout)
        return int(reply.code)

    async def remove_buddy(self, uid: int, timeout: float | None = None) -> int:
        """RemoveBuddyResponse code: SUCCESS or FAILED."""
        reply = await self._request(FrameType.REMOVE_BUDDY, pb.RemoveBuddyRequest(uid=uid), timeout)
        return int(reply.code)

    def _resolve(self, frame_type: FrameType, message: ProtoMessage) -> bool:
        queue = self._waiters.get(frame_type)
        if not queue:
            return False
        future = queue.popleft()
        if not future.done():
            future.set_result(message)
        return True

    # --- receiving ----------------------------------------------------------------------

    def _dispatch(self, frame_type: FrameType, message: ProtoMessage | str) -> None:
        if isinstance(message, pb.Message):
            self._on_message(message)
        elif isinstance(message, pb.Ack):
            self._emit(AckReceived(message))
            entry = self.outbox.on_ack(message)
            if entry is not None:
                self._emit_outgoing(entry)
        elif isinstance(message, pb.Sync):
            self._on_sync(message)
        elif isinstance(message, pb.ListBuddyResponse):
            buddies = tuple(Buddy.from_pb(user) for user in message.users)
            self.buddies = {buddy.uid: buddy for buddy in buddies}
            self.store.set_peer_names((b.uid, b.username) for b in buddies)
            self._emit(BuddyListChanged(buddies))
            self._resolve(frame_type, message)
        elif isinstance(
            message, pb.ListUserResponse | pb.AddBuddyResponse | pb.RemoveBuddyResponse
        ):
            if not self._resolve(frame_type, message):
                log.warning("unexpected %s from relay ignored", frame_type.name)
        elif isinstance(message, pb.Reset):
            if message.code == pb.Reset.KICKED:
                self._stop_error = RelayReset(message.code, message.msg)
            self._drop_reason = str(RelayReset(message.code, message.msg))
            self._emit(ResetReceived(message.code, message.msg))
        elif isinstance(message, str):
            self.greeting = message
            self._emit(GreetingReceived(message))
        elif frame_type is not FrameType.PING:
            log.warning("unexpected %s from relay ignored", frame_type.name)

    def _on_message(self, message: pb.Message) -> None:
        if not is_durable(message.type):
            handler = self._interceptors.get(message.type)
            if handler is None:
                self._emit(MessageReceived(HistoryEntry.from_incoming(message), backlog=False))
                return
            try:
                handler(message)
            except Exception:
                log.exception("handler of message type %d failed", message.type)
            return
        seq = message.seq
        if seq == 0:  # not from a v2 relay's store: nothing to deduplicate on
            stored = self.store.add_incoming(message)
            if stored is not None:
                self._emit(MessageReceived(stored, backlog=False))
            return
        verdict = self.inbox.classify(seq)
        if verdict is Verdict.DUPLICATE:
            return
        backlog = self.inbox.backlog
        stored = self.store.add_incoming(message)
        before = self.inbox.cursor
        self.inbox.stored(seq)
        if stored is not None:
            self._emit(MessageReceived(stored, backlog=backlog))
        if verdict is Verdict.NEW_AFTER_GAP:
            log.info("inbox hole after seq %d: asking the relay to replay", self.inbox.cursor)
            self.request_sync()
        if self.inbox.cursor > before:
            self._progress(self.inbox.cursor - before)

    def _on_sync(self, message: pb.Sync) -> None:
        # Only the answer to the last Sync we asked for closes the backlog: an earlier one
        # (e.g. the login's, while a replay from 0 is on its way) must not move the cursor
        # over seqs that are still coming.
        self._syncs_pending = max(self._syncs_pending - 1, 0)
        self.head_seq = max(self.head_seq, message.head_seq)
        if self._syncs_pending:
            return
        before = self.inbox.cursor
        self.inbox.end_backlog(message.head_seq)
        if self.inbox.cursor > before:
            self._progress(self.inbox.cursor - before)
        self._synced.set()
        self._emit(SyncCompleted(message.head_seq))

    def _progress(self, messages: int) -> None:
        if self.acks.advanced(self.inbox.cursor, messages):
            self._flush_acks()
        else:
            self._schedule_ack()

    def _schedule_ack(self) -> None:
        due_at = self.acks.due_at
        if due_at is None or self._ack_timer is not None:
            return
        delay = max(due_at - time.monotonic(), 0.0)
        self._ack_timer = asyncio.get_running_loop().call_later(delay, self._flush_acks)

    def _flush_acks(self) -> None:
        """Commit what we stored, then tell the relay we have everything up to the cursor."""
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        self.store.set_last_seq(self.inbox.cursor)
        self.store.commit()
        if self._conn is None or self._conn.closed:
            return  # owed Acks are sent again on the next connection (AckBatcher.reset)
        seq = self.acks.take()
        if seq is not None:
            self._send(FrameType.ACK, pb.Ack(seq=seq))


def _consume_exception(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
