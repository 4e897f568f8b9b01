"""The inboxes' live state: per-recipient seq caches, the pass's rows, deliveries to apply.

:class:`Inboxes` is the one owner of what the relay knows about stored messages between
commits; :mod:`relay.delivery` (pushes, the backlog pump, v1 write accounting), the message
handlers and :mod:`relay.outage` ask it, and only it reads or writes this state.

Invariants:
- Per recipient, ``seq`` strictly increases and survives restarts (``users.head_seq``):
  :meth:`Inboxes.accept` hands out the next one above the cached or stored head.
- The caches ``head_seq``, ``floor`` and ``stored_bytes`` (bytes of a recipient's stored
  runs plus its rows not yet flushed) are exact when present; any may be dropped at any time
  (:meth:`Inboxes.writes_lost` drops them all) and is then read again from the store.
- Rows accepted this pass wait in ``pending_rows`` until :meth:`Inboxes.flush_rows` hands
  them to the store (in the open transaction; in seq order per recipient); what was handed
  over since the last commit is remembered in ``pass_rows`` until that commit succeeded.
- Deliveries (v1 rows written to the socket, v2 Acks) are recorded with
  :meth:`Inboxes.delivered_through` and applied once per pass, before its commit
  (:meth:`Inboxes.apply_deliveries`); what the last attempt applied is remembered until the
  commit succeeded, and recorded again if it failed. While the store cannot write they wait.
"""

from __future__ import annotations

import contextlib

from protocol.framing import pack_header
from protocol.types import FrameType
from relay.dedup import DedupWindow
from relay.forwarding import seq_field
from relay.store import InboxRow, Store, StoreUnavailable

# uid -> (highest seq its session has received, whether any of those rows may owe its
# sender a receipt)
DeliveryTable = dict[int, tuple[int, bool]]

new_tuple = tuple.__new__  # NamedTuple rows without their Python-level __new__
_MESSAGE_FRAME_TYPE = int(FrameType.MESSAGE)


def _note_delivery(table: DeliveryTable, uid: int, seq: int, receipts: bool) -> None:
    previous = table.get(uid)
    table[uid] = (
        (seq, receipts) if previous is None else (max(previous[0], seq), previous[1] or receipts)
    )


class Inboxes:
    """Seq caches, the pass's rows and the deliveries of one relay (module docstring)."""

    def __init__(self, store: Store, dedup: DedupWindow) -> None:
        self.store = store
        self.dedup = dedup
        self.head_seq: dict[int, int] = {}
        self.floor: dict[int, int] = {}  # uid -> seq below the oldest stored row
        self.stored_bytes: dict[int, int] = {}  # uid -> bytes of its stored and pending rows
        self.pending_rows: list[InboxRow] = []
        self.pass_rows: list[list[InboxRow]] = []  # handed to the store since the last commit
        self.deliveries: DeliveryTable = {}
        self.deliveries_applied: DeliveryTable = {}

    # -- seqs and sizes ----------------------------------------------------------------------

    def current_head(self, uid: int) -> int:
        """The highest seq assigned in ``uid``'s inbox (accepted this pass included)."""
        head = self.head_seq.get(uid)
        return self.store.head_seq(uid) if head is None else head

    def count(self, uid: int) -> int:
        """Messages stored for ``uid``: seqs in (floor, head], floor being its delivered_seq
        (which buffered rows do not change: no flush needed)."""
        floor = self.floor.get(uid)
        head = self.head_seq.get(uid)
        if floor is not None and head is not None:
            return head - floor
        if floor is None:
            floor = self.store.inbox_floor(uid)
            self.floor[uid] = floor
        return self.current_head(uid) - floor

    def bytes_of(self, uid: int) -> int:
        """Bytes stored for ``uid`` (its runs, counted whole until deleted, and its rows not
        yet flushed), from the cache or, once, from the store."""
        size = self.stored_bytes.get(uid)
        if size is None:
            self.flush_rows()
            size = self.stored_bytes[uid] = self.store.inbox_bytes(uid)
        return size

    def accept(
        self,
        recipient: int,
        sender: int,
        client_id: int,
        timestamp: int,
        body: bytes,
        stored_bytes: int,
    ) -> tuple[int, bytes]:
        """Assign ``recipient``'s next seq to a durable message and buffer it for the pass's
        commit; return the seq and the MESSAGE frame (``body``, the client's payload with the
        sender's override fields, then the seq field): built once, stored and pushed as is.

        ``stored_bytes`` is the recipient's :meth:`bytes_of` before this message. The hot
        path: one call per relayed message.
        """
        heads = self.head_seq
        seq = heads.get(recipient)
        if seq is None:
            seq = self.store.head_seq(recipient)
        seq += 1
        heads[recipient] = seq
        forwarded = body + seq_field(seq)
        frame = pack_header(len(forwarded), _MESSAGE_FRAME_TYPE) + forwarded
        self.pending_rows.append(
            new_tuple(InboxRow, (recipient, seq, sender, client_id, timestamp, frame))
        )
        self.stored_bytes[recipient] = stored_bytes + len(frame)
        return seq, frame

    def flush_rows(self) -> None:
        """Hand buffered rows to the store (in the open transaction). If the store cannot
        write, they are lost with the pass's other writes and answered for at the end of the
        pass (:mod:`relay.outage`)."""
        if self.pending_rows:
            rows, self.pending_rows = self.pending_rows, []
            self.pass_rows.append(rows)
            with contextlib.suppress(StoreUnavailable):
                self.store.append_inbox(rows, self.dedup.current_bucket())

    # -- deliveries --------------------------------------------------------------------------

    def delivered_through(self, uid: int, seq: int, receipts: bool) -> None:
        """``uid``'s session has received everything through ``seq``: its rows are deleted
        (and ``receipts`` may be owed for them) when the pass's deliveries are applied."""
        _note_delivery(self.deliveries, uid, seq, receipts)

    def deliveries_due(self) -> bool:
        """Whether deliveries wait and the store can take them now."""
        return bool(self.deliveries) and self.store.available

    def apply_deliveries(self) -> list[tuple[int, list[tuple[int, int]]]]:
        """Delete what sessions have received, in the open transaction (after flushing the
        pass's rows); return, per recipient, the (sender, client id) owed a receipt.

        Remembered until that transaction's commit, which may still lose them. If the store
        cannot write, what was returned so far is returned (its receipts are dropped with the
        staged frames: :mod:`relay.outage`).
        """
        self.flush_rows()
        due, self.deliveries = self.deliveries, {}
        for uid, (seq, receipts) in due.items():
            _note_delivery(self.deliveries_applied, uid, seq, receipts)
        owed: list[tuple[int, list[tuple[int, int]]]] = []
        store = self.store
        try:
            for uid, (seq, receipts) in due.items():
                delivered = store.delete_inbox_through(uid, seq, receipts=receipts)
                self._deleted_through(uid, seq, delivered.freed_bytes)
                if delivered.receipts:
                    owed.append((uid, delivered.receipts))
        except StoreUnavailable:
            pass  # rolled back with the rest of the pass: writes_lost records them again
        return owed

    def _deleted_through(self, uid: int, seq: int, freed_bytes: int) -> None:
        """``uid`` has received everything through ``seq`` (its new floor); the runs deleted
        with it held ``freed_bytes``."""
        floor = self.floor.get(uid)
        if floor is not None and seq > floor:
            self.floor[uid] = seq
        size = self.stored_bytes.get(uid)
        if size is not None:
            self.stored_bytes[uid] = size - freed_bytes

    # -- the pass's commit -------------------------------------------------------------------

    def committed(self) -> None:
        """The pass's transaction is over (committed, or lost and answered for)."""
        self.pass_rows.clear()
        self.deliveries_applied.clear()

    def writes_lost(self) -> set[int]:
        """The pass's writes were rolled back: drop every cache they changed and the rows of
        the pass, record the deliveries applied again; return the senders of the lost rows."""
        senders = {row.sender for batch in self.pass_rows for row in batch}
        self.pass_rows.clear()
        self.pending_rows = []
        self.head_seq.clear()
        self.floor.clear()
        self.stored_bytes.clear()
        applied, self.deliveries_applied = self.deliveries_applied, {}
        for uid, (seq, receipts) in applied.items():
            self.delivered_through(uid, seq, receipts)
        return senders
