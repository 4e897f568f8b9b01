"""The narrow interface handlers (and the delivery and presence helpers) see of the relay.

:class:`Context` names everything a handler may use: output (``send``, ``send_message``,
``reset``, ``close``), the state owners (``sessions``, ``devices``, ``rooms``, ``inboxes``,
``dedup``, ``store``,
``outage``, ``transfers``, the auth limits), the clock of the current pass (``now``,
``wall``) and the configuration. The loop (:class:`relay.loop.Relay`) satisfies it; mypy
checks that nothing typed against it reaches further into the loop.

Invariants:
- Dependency direction: the loop imports this module and the owners; this module imports
  the owners only; handlers, :mod:`relay.delivery` and :mod:`relay.presence` import this
  module and never the loop.
- Everything queued through it is written after the pass's commit (the loop's rule).
  ``send`` is the one way for handlers, delivery and presence to put a frame on a
  connection (OK Acks of a read are collected in ``conn.pending_acks`` and ``send`` puts
  them first); only :mod:`relay.outage`, which takes staged frames back and answers for
  them, queues on a connection itself.

Owns no state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from protocol import chat_pb2 as pb
from relay.auth import HashWorker, LoginThrottle, RegistrationLimit
from relay.config import RelayConfig
from relay.connection import Connection
from relay.dedup import DedupWindow
from relay.devices import DeviceRegistry
from relay.inboxes import Inboxes
from relay.outage import StoreOutage
from relay.rooms import RoomRegistry
from relay.sessions import Sessions
from relay.store import Store
from relay.transfers import TransferLedger


class Context(Protocol):
    """What a handler may use of the relay (module docstring)."""

    config: RelayConfig
    store: Store
    sessions: Sessions
    devices: DeviceRegistry
    rooms: RoomRegistry
    inboxes: Inboxes
    dedup: DedupWindow
    outage: StoreOutage
    transfers: TransferLedger
    hasher: HashWorker
    throttle: LoginThrottle
    registrations: RegistrationLimit
    dirty: set[Connection]
    now: float  # monotonic clock at the start of this pass
    wall: int  # wall-clock seconds at the start of this pass
    message_count: int
    durable_count: int
    room_copies: int  # room copies the pass's handled messages fan out to (copies_per_pass)
    room_messages: int  # room messages stored since the start (room_frames_per_pass)
    paused_count: int

    def send(self, conn: Connection, frame: bytes) -> None: ...

    def send_message(self, conn: Connection, frame_type: int, message: Any) -> None: ...

    def reset(self, conn: Connection, code: pb.Reset.Code.ValueType, reason: str) -> None: ...

    def close(self, conn: Connection, reason: str) -> None: ...

    def logged_in(self, conn: Connection) -> None: ...


Handler = Callable[[Context, Connection, bytes], None]
"""A frame handler: ``handler(ctx, conn, payload)``."""
