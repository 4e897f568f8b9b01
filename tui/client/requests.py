"""Request correlation for a :class:`~tui.client.session.ClientSession`.

Owns the futures of calls waiting for an answer: requests waiting for the relay's response
of their frame type (:class:`PendingRequests`), and callers waiting for an outgoing message
to reach a state (:class:`OutcomeWaiters`).

Invariants:
- Requests of one type are answered in order (the protocol has no request ids): each
  response resolves the oldest waiting call of its type; a call that timed out still
  consumes its response (its cancelled future stays queued until then).
- A request's waiter is registered only after the request was sent, so a send that raises
  leaves no waiter behind.
- Waiting requests fail when their connection ends; outcome waiters survive reconnects and
  fail only when the session closes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from google.protobuf.message import Message as ProtoMessage

from protocol import FrameType
from tui.client.history import HistoryEntry, MessageState


class PendingRequests:
    """Calls waiting for the relay's response of their frame type, oldest first."""

    def __init__(self) -> None:
        self._waiters: dict[FrameType, deque[asyncio.Future[Any]]] = {}

    def expect(self, frame_type: FrameType) -> asyncio.Future[Any]:
        """A future for the next response of ``frame_type`` (call it after sending)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(frame_type, deque()).append(future)
        return future

    def resolve(self, frame_type: FrameType, message: ProtoMessage) -> bool:
        """Hand ``message`` to the oldest call waiting for ``frame_type``; False if none."""
        queue = self._waiters.get(frame_type)
        if not queue:
            return False
        future = queue.popleft()
        if not future.done():
            future.set_result(message)
        return True

    def fail_all(self, error: BaseException) -> None:
        """The connection ended: every waiting call raises ``error``."""
        for queue in self._waiters.values():
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_exception(error)


class OutcomeWaiters:
    """Callers waiting for an outgoing message (by ``msg_id``) to reach one of some states."""

    def __init__(self) -> None:
        self._waiters: dict[
            int, list[tuple[frozenset[MessageState], asyncio.Future[HistoryEntry]]]
        ] = {}

    async def wait(
        self, msg_id: int, wanted: frozenset[MessageState], timeout: float | None
    ) -> HistoryEntry:
        """The entry once :meth:`notify` reports it in a ``wanted`` state."""
        future: asyncio.Future[HistoryEntry] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(msg_id, [])
        waiters.append((wanted, future))
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            waiters.remove((wanted, future))
            if not waiters:
                del self._waiters[msg_id]

    def notify(self, entry: HistoryEntry) -> None:
        """``entry`` changed state: wake the callers that were waiting for this state."""
        for wanted, future in self._waiters.get(entry.msg_id, ()):
            if entry.state in wanted and not future.done():
                future.set_result(entry)

    def fail_all(self, error: BaseException) -> None:
        """The session closed: every waiting caller raises ``error``."""
        for waiters in self._waiters.values():
            for _, future in waiters:
                if not future.done():
                    future.set_exception(error)
