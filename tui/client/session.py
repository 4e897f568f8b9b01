"""``ClientSession``: one user's protocol-v2 session with a relay, kept alive across drops.

The facade. It owns the user's credentials and token, what the last login said (uid,
fingerprint, greeting), the buddy list and the connection state it reports; everything
else belongs to one part it routes to: :class:`~tui.client.supervisor.Supervisor` (the
connection, reconnects, keepalive), :class:`~tui.client.receiver.Receiver` (inbox cursor,
Acks, Syncs, intercepted types), :mod:`~tui.client.requests` (answers and outcomes waited
for), :class:`~tui.client.outbox.Outbox` (retry), :class:`~tui.client.store.LocalStore`
(history) and the event hub.

Invariants:
- Durable messages go through the :class:`~tui.client.outbox.Outbox` (persisted before they
  are sent, re-sent until acknowledged); ephemeral ones are written directly or not at all.
- Incoming messages: see :mod:`tui.client.receiver` (stored before acknowledged, each seq
  reported at most once). Every ListBuddyResponse, asked for or pushed, is also a
  :class:`~tui.client.events.BuddyListChanged` event.
- Requests of one type are answered in order: see :mod:`tui.client.requests`.
- Every (re)login resumes by token and ``since_seq``; keepalive and backoff: see
  :mod:`tui.client.supervisor`.
- The session is one ``device`` of its user (PROTOCOL.md section 9; "" = the plain v2
  login), fixed for its life: its inbox cursor is that device's, and what the user sends
  from other devices arrives as ``outgoing`` entries in MessageReceived. A ``send_only``
  session is no device: it sends and gets answers, receives and acknowledges nothing.
- All of it runs on one asyncio loop; nothing here is thread-safe.

Rooms (:mod:`tui.client.rooms`): the session routes RoomResponses to its
:class:`~tui.client.rooms.RoomTable` (:attr:`ClientSession.rooms`) and asks for the list on
every login of a receiving device; a room's messages are the conversation of its negative
id, so sending, the outbox and the inbox treat them as any other.

(About 620 lines: one method per request of the protocol, each short, is the facade's
public API; the state machines behind them live in the modules named above.)
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import Message as ProtoMessage

from protocol import FrameType, is_durable
from protocol import chat_pb2 as pb
from protocol.validation import normalize_username, username_key
from tui.client.aio import wait_event
from tui.client.backoff import Backoff, RetryPolicy
from tui.client.connection import CLIENT_MAX_FRAME, Endpoint
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
    OutgoingStateChanged,
    ResetReceived,
    UserInfo,
)
from tui.client.history import ANSWERED, HistoryEntry, MessageState
from tui.client.inbox import AckBatcher, InboxTracker
from tui.client.login import LoginResult, RelayReset, check_device, login, register_account
from tui.client.outbox import Outbox
from tui.client.receiver import Receiver
from tui.client.requests import OutcomeWaiters, PendingRequests
from tui.client.rooms import Op as RoomOp
from tui.client.rooms import RoomResult, RoomTable
from tui.client.store import LocalStore, default_data_dir, history_path
from tui.client.supervisor import NotConnected, Supervisor
from tui.client.trust import TrustPolicy

log = logging.getLogger(__name__)


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
        device: str = "",
        send_only: bool = False,
    ) -> None:
        """``device``: this session's device name (see :mod:`tui.client.device` for the
        names Parley's own clients use); ``ValueError`` if it is not a valid one."""
        self.endpoint = endpoint
        self.username = username
        self.device = check_device(device)
        self.send_only = send_only
        self.trust = trust
        self.options = options or SessionOptions()
        self._password = password
        self._token: str | None = None
        self._owns_store = store is None
        self._created: Path | None = None  # the history file this session created
        if store is None:
            base = data_dir if data_dir is not None else default_data_dir()
            path = history_path(base, endpoint.host, endpoint.port, username)
            self._created = None if path.exists() else path
            store = LocalStore.open(path)
        self.store = store
        self.outbox = Outbox(store, self.options.retry)
        self.backoff = Backoff(self.options.backoff_base, cap=self.options.backoff_cap, rng=rng)
        self.supervisor = Supervisor(
            self,
            endpoint,
            self.backoff,
            ping_interval=self.options.ping_interval,
            dead_after=self.options.dead_after,
        )
        self.receiver = Receiver(
            store,
            device=device,
            send_only=send_only,
            emit=self._emit,
            send=self._send,
            is_open=lambda: self.supervisor.is_open,
            ack_delay=self.options.ack_delay,
            ack_batch=self.options.ack_batch,
        )
        self.state = ConnectionState.OFFLINE
        self.uid: int | None = None
        self.greeting: str | None = None
        self.fingerprint: str | None = None
        self.resumed_by_token = False  # the current connection logged in with the token
        self.buddies: dict[int, Buddy] = {}
        self._hub = EventHub()
        self.rooms = RoomTable(store, self._emit)  # rooms: see tui.client.rooms
        self._requests = PendingRequests()
        self._outcomes = OutcomeWaiters()
        self._retry_wake = asyncio.Event()
        self._closed = False
        self._resync = False  # this login found the relay's inbox reset: replay it when ready

    @property
    def inbox(self) -> InboxTracker:
        """The inbox cursor (owned by :attr:`receiver`)."""
        return self.receiver.inbox

    @property
    def acks(self) -> AckBatcher:
        """The Ack batching (owned by :attr:`receiver`)."""
        return self.receiver.acks

    @property
    def head_seq(self) -> int:
        """The relay's inbox head as last reported (owned by :attr:`receiver`)."""
        return self.receiver.head_seq

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
        return self.receiver.intercept(message_type, handler)

    def _emit(self, event: Event) -> None:
        self._hub.emit(event)

    def set_state(
        self,
        state: ConnectionState,
        *,
        retry_in: float | None = None,
        reason: str = "",
        error: BaseException | None = None,
    ) -> None:
        """Record the connection state and report it (the supervisor's host callback)."""
        self.state = state
        self._emit(ConnectionStateChanged(state, retry_in, reason, error))

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.supervisor.connection is not None

    @property
    def last_error(self) -> BaseException | None:
        """The fatal error that stopped the session, if one did."""
        return self.supervisor.last_error

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
        if self.supervisor.running:
            raise RuntimeError("session already started")
        started = self.supervisor.start(retry_first)
        try:
            await asyncio.shield(started)
        except asyncio.CancelledError:
            await self.close()
            raise

    def reconnect_now(self) -> None:
        """Skip the current backoff wait (or restart after a fatal error) and try now."""
        self.supervisor.reconnect_now()

    async def close(self) -> None:
        """Acknowledge what we have, say goodbye (Reset), stop reconnecting. Idempotent."""
        if self._closed:
            return
        await self.supervisor.stop(self.receiver.flush_acks)
        self._closed = True
        self.receiver.save_cursor()
        if self._owns_store:
            store = self.store
            unused = self.uid is None and not (store.conversations() or store.pending())
            unused = unused and store.cursor(self.device) == 0
            store.close()
            if unused and self._created is not None:
                for suffix in ("", "-wal", "-shm", "-journal"):  # never logged in: no trace
                    Path(f"{self._created}{suffix}").unlink(missing_ok=True)
        self._outcomes.fail_all(NotConnected("session closed"))
        self.set_state(ConnectionState.OFFLINE, reason="closed")
        self._hub.close()

    async def __aenter__(self) -> ClientSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.supervisor.connected.wait(), timeout)

    async def wait_synced(self, timeout: float | None = None) -> None:
        """Wait until the backlog of the current connection has been replayed (Sync)."""
        await asyncio.wait_for(self.receiver.synced.wait(), timeout)

    # --- what the supervisor calls (SupervisorHost) ----------------------------------------

    async def log_in(self) -> LoginResult:
        """One connect-and-login attempt: the token if we have one, resuming at our cursor."""
        return await login(
            self.endpoint,
            self.trust,
            self.username,
            password=self._password,
            token=self._token,
            since_seq=self.inbox.cursor,
            device=self.device,
            send_only=self.send_only,
            connect_timeout=self.options.connect_timeout,
            login_timeout=self.options.login_timeout,
            max_frame=self.options.max_frame,
        )

    def connection_lost(self, reason: str) -> None:
        self.receiver.connection_lost()
        self.outbox.on_disconnect()
        self._requests.fail_all(NotConnected(reason))
        self.rooms.fail_all(NotConnected(reason))

    def save_cursor(self) -> None:
        self.receiver.save_cursor()

    def connection_begins(self, result: LoginResult) -> None:
        """A fresh login: reset per-connection state and announce the greeting."""
        self.uid, self._token = result.uid, result.token or self._token
        self.fingerprint = result.connection.fingerprint
        self.resumed_by_token = result.used_token
        self._resync = self.receiver.begin(result.head_seq)
        if result.greeting is not None:
            self.greeting = result.greeting
            self._emit(GreetingReceived(result.greeting))

    def connection_ready(self) -> None:
        """CONNECTED was reported: replay a reset relay's inbox, re-send the outbox."""
        if self._resync:
            self.request_sync()
        if self.device and not self.send_only and self.supervisor.is_open:  # v2.1: rooms
            request = self.rooms.request(RoomOp.LIST)
            self._send(FrameType.ROOM, request)
            self.rooms.expect_silently(request)
        to_send, failed = self.outbox.on_connect()
        for entry in failed:
            self._emit_outgoing(entry)
        for entry in to_send:
            self._transmit(entry, count_attempt=False)

    async def retry_loop(self) -> None:
        """Re-send the outbox entries whose retry is due (until cancelled)."""
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
        self.supervisor.send(frame_type, message)

    def _transmit(self, entry: HistoryEntry, *, count_attempt: bool = True) -> None:
        if not self.supervisor.is_open:
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
        if not self.supervisor.is_open:
            return False
        message = pb.Message(
            uid=max(peer, 0),
            room=max(-peer, 0),  # a room's conversation key is its negative id
            type=pb.Message.Type.ValueType(message_type),
            msg=text,
            data=data,
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
        conn = self.supervisor.connection
        if conn is not None:
            await conn.drain()

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
        return await self._outcomes.wait(msg_id, wanted, timeout)

    def _emit_outgoing(self, entry: HistoryEntry) -> None:
        self._emit(OutgoingStateChanged(entry))
        self._outcomes.notify(entry)

    def request_sync(self) -> None:
        """Ask the relay to replay everything after our cursor (then SyncCompleted)."""
        self.receiver.request_sync()

    # --- requests -----------------------------------------------------------------------

    async def _request(
        self, frame_type: FrameType, message: ProtoMessage, timeout: float | None
    ) -> Any:
        if self.supervisor.connection is None:
            raise NotConnected("not connected to the relay")
        self._send(frame_type, message)  # first: if it raises, no waiter is left behind
        future = self._requests.expect(frame_type)
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

    # --- rooms (PROTOCOL.md section 10) and blocking (section 12): v2.1 sessions only ------
    # A room is the conversation ``-room_id``: send(-room_id, ...), store.page(-room_id).

    def send_room_text(self, room: int, text: str) -> HistoryEntry:
        return self.send(-room, pb.Message.MESSAGE, text=text)

    async def _room_call(
        self, op: int, room: int = 0, *, name: str = "", uid: int = 0, timeout: float | None
    ) -> RoomResult:
        self._require_v21("rooms")
        if self.supervisor.connection is None:
            raise NotConnected("not connected to the relay")
        request = self.rooms.request(op, room, name=name, uid=uid)
        self._send(FrameType.ROOM, request)  # first: if it raises, no waiter is left behind
        future = self.rooms.expect(request)
        return await asyncio.wait_for(future, timeout or self.options.request_timeout)

    def _require_v21(self, what: str) -> None:
        if not (self.device or self.send_only):
            raise RuntimeError(f"{what} need a v2.1 session (a device, or send_only)")

    async def create_room(self, name: str, timeout: float | None = None) -> RoomResult:
        return await self._room_call(RoomOp.CREATE, name=name, timeout=timeout)

    async def invite(self, room: int, uid: int, timeout: float | None = None) -> RoomResult:
        return await self._room_call(RoomOp.INVITE, room, uid=uid, timeout=timeout)

    async def join(self, room: int, timeout: float | None = None) -> RoomResult:
        return await self._room_call(RoomOp.JOIN, room, timeout=timeout)

    async def decline(self, room: int, timeout: float | None = None) -> RoomResult:
        return await self._room_call(RoomOp.DECLINE, room, timeout=timeout)

    async def leave(self, room: int, timeout: float | None = None) -> RoomResult:
        return await self._room_call(RoomOp.LEAVE, room, timeout=timeout)

    async def kick(self, room: int, uid: int, timeout: float | None = None) -> RoomResult:
        return await self._room_call(RoomOp.KICK, room, uid=uid, timeout=timeout)

    async def rename(self, room: int, name: str, timeout: float | None = None) -> RoomResult:
        return await self._room_call(RoomOp.RENAME, room, name=name, timeout=timeout)

    async def list_rooms(self, timeout: float | None = None) -> RoomResult:
        """Every room this user is in or invited to (also refreshes :attr:`rooms`)."""
        return await self._room_call(RoomOp.LIST, timeout=timeout)

    async def members(self, room: int, timeout: float | None = None) -> RoomResult:
        """``room`` with its members and their presence now."""
        return await self._room_call(RoomOp.MEMBERS, room, timeout=timeout)

    async def block(self, uid: int, timeout: float | None = None) -> int:
        """BlockResponse code; the relay then pushes a buddy list with ``uid`` BLOCKED."""
        self._require_v21("blocking")
        request = pb.BlockRequest(uid=uid, blocked=True)
        reply = await self._request(FrameType.BLOCK, request, timeout)
        return int(reply.code)

    async def unblock(self, uid: int, timeout: float | None = None) -> int:
        self._require_v21("blocking")
        reply = await self._request(FrameType.BLOCK, pb.BlockRequest(uid=uid), timeout)
        return int(reply.code)

    def is_blocked(self, uid: int) -> bool:
        """This user blocked ``uid``: hide its room messages (the relay still sends them)."""
        buddy = self.buddies.get(uid)
        return buddy is not None and buddy.blocked

    # --- receiving ----------------------------------------------------------------------

    def dispatch(self, frame_type: FrameType, message: ProtoMessage | str) -> None:
        """Route one frame from the relay."""
        if isinstance(message, pb.Message):
            self.receiver.on_message(message)
        elif isinstance(message, pb.Ack):
            self._emit(AckReceived(message))
            entry = self.outbox.on_ack(message)
            if entry is None and message.id:
                # Another process sharing the store (a device of this user: it got the
                # receipt too) may have moved the row first: report where it stands.
                entry = self.store.find_outgoing(message.id)
                if entry is not None and entry.state not in ANSWERED:
                    entry = None
            if entry is not None:
                self._emit_outgoing(entry)
        elif isinstance(message, pb.Sync):
            self.receiver.on_sync(message)
        elif isinstance(message, pb.ListBuddyResponse):
            buddies = tuple(Buddy.from_pb(user) for user in message.users)
            self.buddies = {buddy.uid: buddy for buddy in buddies}
            self.store.set_peer_names((b.uid, b.username) for b in buddies)
            self._emit(BuddyListChanged(buddies))
            self._requests.resolve(frame_type, message)
        elif isinstance(message, pb.RoomResponse):
            self.rooms.on_response(message)
        elif isinstance(
            message,
            pb.ListUserResponse | pb.AddBuddyResponse | pb.RemoveBuddyResponse | pb.BlockResponse,
        ):
            if not self._requests.resolve(frame_type, message):
                log.warning("unexpected %s from relay ignored", frame_type.name)
        elif isinstance(message, pb.Reset):
            reset = RelayReset(message.code, message.msg)
            self.supervisor.will_drop(
                str(reset), fatal=reset if message.code == pb.Reset.KICKED else None
            )
            self._emit(ResetReceived(message.code, message.msg))
        elif isinstance(message, str):
            self.greeting = message
            self._emit(GreetingReceived(message))
        elif frame_type is not FrameType.PING:
            log.warning("unexpected %s from relay ignored", frame_type.name)
