"""The outbox: durable outgoing messages until the relay acknowledges them.

Invariants:
- Every durable message is committed to the store (state PENDING) before it can be sent;
  ephemeral types (``not protocol.is_durable``) never come here.
- A message id is sent again only while its entry is PENDING: after ``RetryPolicy``'s delay
  on a live connection, and once on every new connection. Each send counts one attempt;
  when the attempts are used up the entry becomes FAILED with code :data:`CODE_NO_ACK`.
- A refusal (Ack.code != OK) makes the entry FAILED with that code, except the transient
  ones (:data:`TRANSIENT_CODES`: RATE_LIMITED, and STORE_FULL while the relay's disk is
  full): the entry is retried on the normal schedule (still bounded).
- ``resend`` is the only way out of FAILED besides a late Ack OK, and it restarts the attempt
  budget. Transport and clock are the caller's: this class returns what to send and when.
- An entry keeps the time it was written: the Ack's timestamp (when the relay stored it,
  maybe hours later for a message written offline) is not stored.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

from protocol import chat_pb2 as pb
from protocol import is_durable
from protocol.validation import text_within_limit
from tui.client.backoff import RetryPolicy
from tui.client.history import CODE_NO_ACK, HistoryEntry, MessageState
from tui.client.store import LocalStore

# Refusals that say "not now" rather than "never": the message stays PENDING and is retried.
TRANSIENT_CODES = frozenset({pb.Ack.RATE_LIMITED, pb.Ack.STORE_FULL})


class Outbox:
    """Retry bookkeeping over :class:`LocalStore`'s PENDING rows."""

    def __init__(
        self,
        store: LocalStore,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._due: dict[int, float] = {}  # msg_id → when to send again (live connection)
        self._heap: list[tuple[float, int]] = []  # (due, msg_id), lazily pruned

    def add(
        self,
        peer: int,
        message_type: int,
        *,
        text: str = "",
        data: bytes = b"",
        file: pb.FileInfo | None = None,
    ) -> HistoryEntry:
        """Persist a new durable message; ``ValueError`` for misuse (bad peer, type, size)."""
        if peer == 0:
            raise ValueError("peer must be a uid, or a room's negative id")
        if not is_durable(message_type):
            raise ValueError("ephemeral messages are sent directly, not through the outbox")
        if not text_within_limit(text):
            raise ValueError("text is longer than 64 KiB")
        return self.store.add_outgoing(peer, message_type, text=text, data=data, file=file)

    def sending(self, entry: HistoryEntry, *, count_attempt: bool = True) -> pb.Message:
        """Schedule ``entry``'s retry (counting one attempt unless told not to); returns the
        frame to send. Re-sends caused by a reconnect do not count: only an Ack that failed
        to come on a live connection uses up an attempt, so a flapping link cannot turn
        messages the relay will accept into FAILED ones."""
        attempts = self.store.record_attempt(entry.msg_id) if count_attempt else entry.attempts
        due = self._clock() + self.policy.delay_after(attempts)
        self._due[entry.msg_id] = due
        heapq.heappush(self._heap, (due, entry.msg_id))
        return entry.to_wire()

    def on_connect(self) -> tuple[list[HistoryEntry], list[HistoryEntry]]:
        """New connection: (entries to send now, entries that just became FAILED)."""
        self._due.clear()
        self._heap.clear()
        to_send: list[HistoryEntry] = []
        failed: list[HistoryEntry] = []
        for entry in self.store.pending():
            if self.policy.exhausted(entry.attempts):
                done = self.store.mark_failed(entry.msg_id, CODE_NO_ACK)
                if done is not None:
                    failed.append(done)
            else:
                to_send.append(entry)
        return to_send, failed

    def on_disconnect(self) -> None:
        """Live retries stop; everything PENDING goes again on the next connection."""
        self._due.clear()
        self._heap.clear()

    def next_due_at(self) -> float | None:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def take_due(self) -> tuple[list[HistoryEntry], list[HistoryEntry]]:
        """(entries to send again now, entries that just became FAILED), by the clock."""
        now = self._clock()
        to_send: list[HistoryEntry] = []
        failed: list[HistoryEntry] = []
        while True:
            due = self.next_due_at()
            if due is None or due > now:
                break
            _, msg_id = heapq.heappop(self._heap)
            del self._due[msg_id]
            entry = self.store.find_outgoing(msg_id)
            if entry is None or entry.state is not MessageState.PENDING:
                continue
            if self.policy.exhausted(entry.attempts):
                done = self.store.mark_failed(msg_id, CODE_NO_ACK)
                if done is not None:
                    failed.append(done)
            else:
                to_send.append(entry)
        return to_send, failed

    def on_ack(self, ack: pb.Ack) -> HistoryEntry | None:
        """Apply an Ack from the relay; returns the entry if its state changed."""
        if ack.delivered:
            self._due.pop(ack.id, None)
            return self.store.mark_delivered(ack.id)
        if ack.code == pb.Ack.OK:
            self._due.pop(ack.id, None)
            return self.store.mark_sent(ack.id, ack.seq)
        if ack.code in TRANSIENT_CODES:
            entry = self.store.find_outgoing(ack.id)
            if entry is not None and self.policy.exhausted(entry.attempts):
                self._due.pop(ack.id, None)
                return self.store.mark_failed(ack.id, ack.code)
            return None  # the scheduled retry stands
        self._due.pop(ack.id, None)
        return self.store.mark_failed(ack.id, ack.code)

    def resend(self, msg_id: int) -> HistoryEntry:
        """FAILED → PENDING with a fresh attempt budget; ``KeyError`` if not FAILED."""
        entry = self.store.reset_for_resend(msg_id)
        if entry is None:
            raise KeyError(f"message {msg_id} is not a FAILED outgoing message")
        return entry

    @property
    def in_flight(self) -> int:
        """Entries sent on this connection and still waiting for their Ack."""
        return len(self._due)
