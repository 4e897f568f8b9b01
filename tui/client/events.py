"""Events a :class:`~tui.client.session.ClientSession` reports, and how they are delivered.

Delivery (both are fed from one place, in the order things happened):
- listeners: ``session.add_listener(callback)``; each callback runs synchronously on the
  event loop for every event, must not block, and its exceptions are logged and swallowed.
  The Textual app's callback is one line: ``lambda ev: app.post_message(ClientEvent(ev))``.
- streams: ``async for event in session.events(): ...``. Each stream has its own bounded
  queue. When it overflows, new events are dropped until the consumer has drained the
  queue, then it yields one :class:`EventsLost` exactly where the gap is (everything durable
  is still in the store: reload from there). A stream ends when the session closes.

Invariant: events are immutable values; nothing in them refers back into the session.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from protocol import chat_pb2 as pb
from tui.client.history import HistoryEntry
from tui.client.rooms import RoomChanged, RoomInvited, RoomRemoved

log = logging.getLogger(__name__)


class ConnectionState(enum.Enum):
    """What the status bar shows."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # waiting ``retry_in`` seconds before the next attempt
    OFFLINE = "offline"  # closed, or stopped by an error that retrying cannot fix


@dataclass(frozen=True)
class Buddy:
    """One entry of the buddy list (ListBuddyResponse.User); ``username`` is untrusted."""

    uid: int
    username: str
    online: bool
    relation: int  # pb.User.BUDDY / REQUEST_SENT / REQUEST_RECEIVED / BLOCKED
    protocol_version: int

    @property
    def blocked(self) -> bool:
        """A user this user blocked (PROTOCOL.md section 12), listed only to v2.1 sessions."""
        return self.relation == pb.User.BLOCKED

    @classmethod
    def from_pb(cls, user: pb.User) -> Buddy:
        return cls(user.uid, user.username, user.online, user.relation, user.protocol_version)


@dataclass(frozen=True)
class UserInfo:
    """One entry of ListUserResponse; ``username`` is untrusted."""

    uid: int
    username: str
    online: bool


@dataclass(frozen=True)
class ConnectionStateChanged:
    state: ConnectionState
    retry_in: float | None = None  # RECONNECTING: seconds until the next attempt
    reason: str = ""  # why we left CONNECTED, or why we are OFFLINE
    error: BaseException | None = None  # OFFLINE after a fatal error: the error


@dataclass(frozen=True)
class MessageReceived:
    """A new incoming message (never a duplicate). Ephemeral types have ``local_id`` None."""

    entry: HistoryEntry
    backlog: bool  # part of the backlog replayed after login (before SyncCompleted)


@dataclass(frozen=True)
class OutgoingStateChanged:
    """An outgoing message moved: PENDING (queued/resent), SENT, DELIVERED or FAILED."""

    entry: HistoryEntry


@dataclass(frozen=True)
class AckReceived:
    """Every Ack from the relay, raw (OutgoingStateChanged is the useful form)."""

    ack: pb.Ack


@dataclass(frozen=True)
class BuddyListChanged:
    """A ListBuddyResponse arrived (asked for or pushed on a presence change)."""

    buddies: tuple[Buddy, ...]


@dataclass(frozen=True)
class SyncCompleted:
    """The backlog since our cursor has been replayed; live traffic follows."""

    head_seq: int


@dataclass(frozen=True)
class ResetReceived:
    """The relay is closing the connection with this Reset (KICKED, SERVER_SHUTDOWN...)."""

    code: int
    reason: str


@dataclass(frozen=True)
class GreetingReceived:
    text: str  # untrusted


@dataclass(frozen=True)
class EventsLost:
    """This stream dropped ``count`` events because its consumer fell behind."""

    count: int


Event = (
    ConnectionStateChanged
    | MessageReceived
    | OutgoingStateChanged
    | AckReceived
    | BuddyListChanged
    | SyncCompleted
    | ResetReceived
    | GreetingReceived
    | EventsLost
    | RoomChanged
    | RoomInvited
    | RoomRemoved
)
Listener = Callable[[Event], None]


class EventStream:
    """An async iterator over events with a bounded queue (see the module docstring)."""

    def __init__(self, maxsize: int, on_close: Callable[[EventStream], None]) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be positive")
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._maxsize = maxsize
        self._lost = 0
        self._closed = False
        self._on_close = on_close

    def put(self, event: Event) -> None:
        if self._closed:
            return
        if self._lost or self._queue.qsize() >= self._maxsize:
            self._lost += 1
            return
        self._queue.put_nowait(event)

    def close(self) -> None:
        """End the iteration (after the events already queued); idempotent."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)
            self._on_close(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._queue.empty() and self._lost:
            lost, self._lost = self._lost, 0
            return EventsLost(lost)
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)  # stay ended for any later call
            raise StopAsyncIteration
        return event

    async def next(self, timeout: float | None = None) -> Event:
        """The next event, waiting at most ``timeout`` s (``TimeoutError``); for scripts."""
        return await asyncio.wait_for(self.__anext__(), timeout)


class EventHub:
    """Fans each event out to listeners and streams, in order."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._streams: list[EventStream] = []

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Register ``listener``; returns a function that unregisters it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def stream(self, maxsize: int) -> EventStream:
        stream = EventStream(maxsize, self._streams.remove)
        self._streams.append(stream)
        return stream

    def emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", type(event).__name__)
        for stream in list(self._streams):
            stream.put(event)

    def close(self) -> None:
        for stream in list(self._streams):
            stream.close()
