"""A run of one box built during one loop pass from fan-out copies (room messages).

Copies built one at a time (a user's other devices, :meth:`relay.inboxes.Inboxes.batch_copy`;
a room sender's own boxes or a box near its quota, :mod:`relay.room_delivery`) go into their
box's open batch with a few list operations; :meth:`relay.inboxes.Inboxes.close_batch` turns
a batch into one stored run and one push. :class:`relay.inboxes.Inboxes` owns the open
batches.

Invariants (for an open batch):
- It covers the consecutive seqs ``first_seq`` .. ``next_seq - 1`` of its box, assigned
  above the box's head when it opened; no other seq of that box is assigned while it is
  open (the inboxes close it first).
- ``pieces`` holds, per copy, its MESSAGE frame as header, body and seq field: joined,
  they are the run's frames back to back. ``size`` is their length. A batch that owes
  receipts (copies of a one-to-one message in the recipient's other devices) also holds
  each copy's sender and id; a room batch holds none (stored as zeros).
- It never holds more than ``limit_seq - first_seq`` copies or more than ``byte_limit``
  bytes (the box's quota left when it opened, and the run size bounds), except one copy
  larger than the run size bound alone.
"""

from __future__ import annotations


class RunBatch:
    """The open batch of one box (module docstring)."""

    __slots__ = (
        "box",
        "byte_limit",
        "first_seq",
        "ids",
        "limit_seq",
        "next_seq",
        "pieces",
        "senders",
        "size",
        "stored_before",
        "timestamp",
    )

    def __init__(
        self,
        box: int,
        first_seq: int,
        timestamp: int,
        limit_seq: int,
        byte_limit: int,
        stored_before: int,
        receipts: bool = False,
    ) -> None:
        self.box = box
        self.first_seq = first_seq
        self.next_seq = first_seq
        self.timestamp = timestamp
        self.limit_seq = limit_seq
        self.byte_limit = byte_limit
        self.stored_before = stored_before  # the box's stored bytes when it opened
        self.pieces: list[bytes] = []
        self.size = 0
        # Per copy, when copies owe their senders a receipt (a user's other devices): the
        # sender and its message id; None for room copies (no receipts).
        self.senders: list[int] | None = [] if receipts else None
        self.ids: list[int] | None = [] if receipts else None
