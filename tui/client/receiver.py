"""The receiving side of a :class:`~tui.client.session.ClientSession`: inbox and Acks.

Owns the inbox cursor (:class:`~tui.client.inbox.InboxTracker`), the Ack batching and its
timer, the relay's head seq as last reported, the Syncs still owed by the relay (and the
"synced" event), and the handlers that intercept ephemeral message types.

The inbox is the one of the session's ``device`` (PROTOCOL.md section 9): its cursor is
that device's in the store. A ``send_only`` session has no inbox: it stores, reports and
acknowledges nothing, and never touches a cursor.

Invariants:
- Incoming durable messages are stored before they are acknowledged: an Ack is sent only
  after the store committed everything up to its seq.
- Each inbox seq is reported (:class:`~tui.client.events.MessageReceived`) at most once,
  ever; a hole in the seqs asks the relay to replay (Sync). Ephemeral messages are reported
  as they come, except the types a handler intercepts (:meth:`Receiver.intercept`).
- Only the answer to the last Sync asked for closes the backlog, so the cursor never moves
  over seqs that are still coming.
- Frames go out through the ``send`` it was given (the supervisor's); nothing here touches
  a connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from google.protobuf.message import Message as ProtoMessage

from protocol import FrameType, is_durable
from protocol import chat_pb2 as pb
from tui.client.events import Event, MessageReceived, SyncCompleted
from tui.client.history import HistoryEntry
from tui.client.inbox import AckBatcher, InboxTracker, Verdict
from tui.client.store import LocalStore

# The receiver logs as the session it belongs to: one logger name for one session's story.
log = logging.getLogger("tui.client.session")


class Receiver:
    """Incoming messages → store, events and Acks; see the module docstring."""

    def __init__(
        self,
        store: LocalStore,
        *,
        device: str = "",
        send_only: bool = False,
        emit: Callable[[Event], None],
        send: Callable[[FrameType, ProtoMessage], None],
        is_open: Callable[[], bool],
        ack_delay: float,
        ack_batch: int,
    ) -> None:
        self.store = store
        self.device = device
        self.receiving = not send_only
        self.inbox = InboxTracker(store.cursor(device) if self.receiving else 0)
        self.acks = AckBatcher(ack_delay, ack_batch)
        self.head_seq = 0
        self.synced = asyncio.Event()
        self._emit = emit
        self._send = send
        self._is_open = is_open
        self._ack_timer: asyncio.TimerHandle | None = None
        self._syncs_pending = 0
        self._interceptors: dict[int, Callable[[pb.Message], None]] = {}

    def intercept(
        self, message_type: int, handler: Callable[[pb.Message], None]
    ) -> Callable[[], None]:
        """See :meth:`ClientSession.intercept <tui.client.session.ClientSession.intercept>`."""
        if is_durable(message_type):
            raise ValueError("only ephemeral message types can be intercepted")
        self._interceptors[message_type] = handler

        def remove() -> None:
            if self._interceptors.get(message_type) is handler:
                del self._interceptors[message_type]

        return remove

    def begin(self, head_seq: int) -> bool:
        """A fresh login with the relay's inbox at ``head_seq``: start the backlog. Returns
        True when the relay's inbox was reset (head below our cursor): the local cursor
        starts again from 0 and the caller asks for a replay once connected."""
        self.head_seq = head_seq
        if not self.receiving:  # no inbox: nothing to replay, nothing to wait for
            self.synced.set()
            return False
        resync = head_seq < self.inbox.cursor
        if resync:
            log.warning(
                "relay inbox head %d is below our cursor %d: relay history was reset",
                head_seq,
                self.inbox.cursor,
            )
            self.store.rebase_inbox(self.device)
            self.inbox = InboxTracker(0)
        self.inbox.begin_backlog()
        self._syncs_pending = 1  # the login's backlog ends with a Sync
        self.acks.reset(self.inbox.cursor)
        self._schedule_ack()
        self.synced.clear()
        return resync

    def connection_lost(self) -> None:
        """No Ack timer outlives its connection (owed Acks go out on the next one)."""
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None

    def request_sync(self) -> None:
        """Ask the relay to replay everything after our cursor (then SyncCompleted)."""
        if not self.receiving:
            return
        self._send(FrameType.SYNC, pb.Sync(since_seq=self.inbox.cursor))
        self.synced.clear()
        self.inbox.begin_backlog()
        self._syncs_pending += 1

    def on_message(self, message: pb.Message) -> None:
        if not self.receiving:
            log.warning("message of type %d to a send-only session ignored", message.type)
            return
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
            stored = self.store.add_incoming(message, self.device)
            if stored is not None:
                self._emit(MessageReceived(stored, backlog=False))
            return
        verdict = self.inbox.classify(seq)
        if verdict is Verdict.DUPLICATE:
            return
        backlog = self.inbox.backlog
        stored = self.store.add_incoming(message, self.device)
        before = self.inbox.cursor
        self.inbox.stored(seq)
        if stored is not None:
            self._emit(MessageReceived(stored, backlog=backlog))
        if verdict is Verdict.NEW_AFTER_GAP:
            log.info("inbox hole after seq %d: asking the relay to replay", self.inbox.cursor)
            self.request_sync()
        if self.inbox.cursor > before:
            self._progress(self.inbox.cursor - before)

    def on_sync(self, message: pb.Sync) -> None:
        if not self.receiving:
            return
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
        self.synced.set()
        self._emit(SyncCompleted(message.head_seq))

    def save_cursor(self) -> None:
        if self.receiving:
            self.store.set_last_seq(self.inbox.cursor, self.device)
        self.store.commit()

    def flush_acks(self) -> None:
        """Commit what we stored, then tell the relay we have everything up to the cursor."""
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        self.save_cursor()
        if not self._is_open():
            return  # owed Acks are sent again on the next connection (AckBatcher.reset)
        seq = self.acks.take()
        if seq is not None:
            self._send(FrameType.ACK, pb.Ack(seq=seq))

    def _progress(self, messages: int) -> None:
        if self.acks.advanced(self.inbox.cursor, messages):
            self.flush_acks()
        else:
            self._schedule_ack()

    def _schedule_ack(self) -> None:
        due_at = self.acks.due_at
        if due_at is None or self._ack_timer is not None:
            return
        delay = max(due_at - time.monotonic(), 0.0)
        self._ack_timer = asyncio.get_running_loop().call_later(delay, self.flush_acks)
