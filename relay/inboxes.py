"""The inboxes' live state: per-box seq caches, the pass's rows, deliveries to apply.

A box is one device's inbox (PROTOCOL.md section 9, :mod:`relay.store.inboxes`); every
cache and table here is keyed by box. :class:`Inboxes` is the one owner of what the relay
knows about stored messages between commits; :mod:`relay.delivery` (pushes, the backlog
pump, v1 write accounting), the message handlers and :mod:`relay.outage` ask it, and only it
reads or writes this state.

Invariants:
- Per box, ``seq`` strictly increases and survives restarts (the box's stored head_seq):
  :meth:`Inboxes.accept` hands out the next one above the cached or stored head.
- The caches ``head_seq``, ``floor`` and ``stored_bytes`` (bytes of a box's stored
  runs plus its rows not yet flushed) are exact when present; any may be dropped at any time
  (:meth:`Inboxes.writes_lost` drops them all) and is then read again from the store.
- Rows accepted this pass wait in ``pending_rows`` until :meth:`Inboxes.flush_rows` hands
  them to the store (in the open transaction; in seq order per box); what was handed
  over since the last commit is remembered in ``pass_rows`` until that commit succeeded.
- Deliveries (v1 rows written to the socket, v2 Acks) are recorded with
  :meth:`Inboxes.delivered_through` and applied once per pass, before its commit
  (:meth:`Inboxes.apply_deliveries`); what the last attempt applied is remembered until the
  commit succeeded, and recorded again if it failed. While the store cannot write they wait.
- A room's durable messages wait in ``room_passes`` (one
  :class:`relay.room_passes.RoomPass` per room) and are fanned out (``fan_out_room``) before
  any seq of any box is assigned or read (:meth:`Inboxes.settle_rooms`) and when the pass's
  rows are flushed: each member box gets one run per segment of them, pushed at once.
- Copies built one by one (a user's other devices, a room sender's own boxes, a box near
  its quota) go into one open :class:`relay.run_batches.RunBatch` per box; a batch is
  closed (stored as one run, pushed through ``push_run``) before any other seq of its box
  is assigned or read, when it is full, and when the pass's rows are flushed, so each
  box's seqs reach the store and the wire in order. Room messages' dedup records and
  history bodies wait in ``room_records`` and ``room_history`` until that flush.
- A message stored in several boxes of one user owes its sender one receipt, when the first
  of them is delivered: the (sender, id) pairs receipted for such users are remembered, the
  latest :data:`RECEIPT_MEMORY` of them (a pair forgotten sooner may be receipted twice,
  which clients ignore).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable

from protocol.framing import pack_header
from protocol.types import FrameType
from relay.dedup import DedupWindow
from relay.forwarding import seq_field
from relay.room_passes import RoomPass
from relay.run_batches import RunBatch
from relay.store import (
    MAX_RUN_BYTES,
    MAX_RUN_MESSAGES,
    InboxRow,
    Store,
    StoreUnavailable,
    encode_records,
    room_dedup_key,
)

# box -> (highest seq its session has received, whether any of those rows may owe its
# sender a receipt, the box's user)
DeliveryTable = dict[int, tuple[int, bool, int]]
RECEIPT_MEMORY = 16384  # receipted (sender, id) pairs remembered for users with several boxes

log = logging.getLogger("parley.relay")
new_tuple = tuple.__new__  # NamedTuple rows without their Python-level __new__
_MESSAGE_FRAME_TYPE = int(FrameType.MESSAGE)


def _note_delivery(table: DeliveryTable, box: int, seq: int, receipts: bool, uid: int) -> None:
    previous = table.get(box)
    table[box] = (
        (seq, receipts, uid)
        if previous is None
        else (max(previous[0], seq), previous[1] or receipts, uid)
    )


class Inboxes:
    """Seq caches, the pass's rows and the deliveries of one relay (module docstring)."""

    def __init__(
        self,
        store: Store,
        dedup: DedupWindow,
        quota: tuple[int, int] = (100_000, 64 * 1024 * 1024),
        push_run: Callable[[int, int, int, bytes], None] | None = None,
        fan_out_room: Callable[[int, RoomPass], None] | None = None,
    ) -> None:
        """``quota``: messages and bytes a box may hold; ``push_run(box, first_seq,
        last_seq, frames)`` puts a closed batch on its box's live session, if any;
        ``fan_out_room(room, room_pass)`` stores a room's messages of the pass in its
        members' boxes (:func:`relay.room_delivery.fan_out_pass`)."""
        self.store = store
        self.dedup = dedup
        self.quota_messages, self.quota_bytes = quota
        self.push_run = push_run or (lambda box, first, last, frames: None)
        self.fan_out_room = fan_out_room or (lambda room, room_pass: None)
        self.room_passes: dict[int, RoomPass] = {}
        self.batches: dict[int, RunBatch] = {}
        self.pending_runs: list[
            tuple[int, int, int, int, bytes, list[int] | None, list[int] | None]
        ] = []
        self.pending_shared: list[tuple[list[bytes], list[tuple[int, int, int, int]]]] = []
        self.room_records: dict[int, tuple[list[int], list[int], int]] = {}
        self.room_history: dict[int, list[bytes]] = {}  # room -> bodies to keep, this pass
        self.history_keep = 200
        self.head_seq: dict[int, int] = {}
        self.floor: dict[int, int] = {}  # box -> seq below the oldest stored row
        self.stored_bytes: dict[int, int] = {}  # box -> bytes of its stored and pending rows
        self.pending_rows: list[InboxRow] = []
        self.pass_rows: list[list[InboxRow]] = []  # handed to the store since the last commit
        self.deliveries: DeliveryTable = {}
        self.deliveries_applied: DeliveryTable = {}
        self._receipted: dict[tuple[int, int], None] = {}  # insertion-ordered, bounded
        # Boxes known to hold no row that owes a receipt (all delivered, then only room
        # copies): their deliveries skip reading ids (room500 bench: a third of each ack).
        self.no_receipts: set[int] = set()

    # -- seqs and sizes ----------------------------------------------------------------------

    def settle(self, box: int) -> None:
        """Make ``box``'s seqs, sizes and frames known: the pass's room messages fanned out,
        its open batch closed (module docstring)."""
        if self.room_passes:
            self.settle_rooms()
        if box in self.batches:
            self.close_batch(box)

    def current_head(self, box: int) -> int:
        """The highest seq assigned in ``box``'s inbox (accepted this pass included)."""
        self.settle(box)
        head = self.head_seq.get(box)
        return self.store.head_seq(box) if head is None else head

    def count(self, box: int) -> int:
        """Messages stored for ``box``: seqs in (floor, head], floor being its delivered_seq
        (which buffered rows do not change: no flush needed)."""
        self.settle(box)
        floor = self.floor.get(box)
        head = self.head_seq.get(box)
        if floor is None or head is None:
            if floor is None:
                floor = self.store.inbox_floor(box)
                self.floor[box] = floor
            head = self.current_head(box)
        if head == floor:
            self.no_receipts.add(box)  # empty: nothing stored owes a receipt
        return head - floor

    def bytes_of(self, box: int) -> int:
        """Bytes stored for ``box`` (its runs, counted whole until deleted, and its rows not
        yet flushed), from the cache or, once, from the store."""
        self.settle(box)
        size = self.stored_bytes.get(box)
        if size is None:
            self.flush_rows()
            size = self.stored_bytes[box] = self.store.inbox_bytes(box)
        return size

    def accept(
        self,
        recipient: int,
        sender: int,
        client_id: int,
        timestamp: int,
        body: bytes,
        stored_bytes: int,
        dedup_uid: int = -1,
    ) -> tuple[int, bytes]:
        """Assign box ``recipient``'s next seq to a durable message and buffer it for the
        pass's commit; return the seq and the MESSAGE frame (``body``, the client's payload
        with the sender's override fields, then the seq field): built once, stored and pushed
        as is. ``dedup_uid``: see :class:`relay.store.InboxRow`.

        ``stored_bytes`` is the box's :meth:`bytes_of` before this message. The hot path: one
        call per stored copy.
        """
        if self.room_passes:
            self.settle_rooms()  # room copies accepted before take the seqs before this one
        if self.batches and recipient in self.batches:
            self.close_batch(recipient)  # its copies take the seqs before this one
        heads = self.head_seq
        seq = heads.get(recipient)
        if seq is None:
            seq = self.store.head_seq(recipient)
        seq += 1
        heads[recipient] = seq
        if client_id:
            self.no_receipts.discard(recipient)
        forwarded = body + seq_field(seq)
        frame = pack_header(len(forwarded), _MESSAGE_FRAME_TYPE) + forwarded
        self.pending_rows.append(
            new_tuple(InboxRow, (recipient, seq, sender, client_id, timestamp, frame, dedup_uid))
        )
        self.stored_bytes[recipient] = stored_bytes + len(frame)
        return seq, frame

    def flush_rows(self) -> None:
        """Hand buffered rows, runs and room dedup records to the store (in the open
        transaction), closing every open batch first. If the store cannot write, they are
        lost with the pass's other writes and answered for at the end of the pass
        (:mod:`relay.outage`)."""
        if self.room_passes:
            self.settle_rooms()
        if self.batches:
            for box in list(self.batches):
                self.close_batch(box)
        if self.pending_rows:
            rows, self.pending_rows = self.pending_rows, []
            self.pass_rows.append(rows)
            with contextlib.suppress(StoreUnavailable):
                self.store.append_inbox(rows, self.dedup.current_bucket())
        if self.pending_runs:
            runs, self.pending_runs = self.pending_runs, []
            with contextlib.suppress(StoreUnavailable):
                self.store.append_runs(runs)
        if self.pending_shared:
            shared, self.pending_shared = self.pending_shared, []
            with contextlib.suppress(StoreUnavailable):
                self.store.append_shared_runs(shared)
        if self.room_history:
            history, self.room_history = self.room_history, {}
            with contextlib.suppress(StoreUnavailable):
                for room, bodies in history.items():
                    self.store.rooms.append_history(room, bodies, self.history_keep)
        if self.room_records:
            records, self.room_records = self.room_records, {}
            bucket = self.dedup.current_bucket()
            with contextlib.suppress(StoreUnavailable):
                self.store.dedup_records.add_runs(
                    [
                        (bucket, room_dedup_key(room), 0, timestamp, encode_records(s, i))
                        for room, (s, i, timestamp) in records.items()
                    ]
                )

    # -- fan-out batches (room copies) -------------------------------------------------------

    def add_room_message(
        self, room: int, body: bytes, sender: int, sending_box: int, timestamp: int
    ) -> None:
        """Keep a durable message to ``room`` for the pass's fan-out (module docstring)."""
        room_pass = self.room_passes.get(room)
        if room_pass is None:
            room_pass = self.room_passes[room] = RoomPass(timestamp)
        room_pass.add(body, sender, sending_box)

    def settle_rooms(self) -> None:
        """Fan out every room's messages kept this pass (stored in runs, pushed); on an error
        the pass is given up and answered for like a failed write (:mod:`relay.outage`)."""
        passes, self.room_passes = self.room_passes, {}
        for room, room_pass in passes.items():
            try:
                self.fan_out_room(room, room_pass)
            except Exception:  # a bug or a read error: no Ack for what is not all stored
                log.exception("room %d: fan-out failed; the loop pass is rolled back", room)
                self.store.abandon_pass("internal error while storing room messages")
                return

    def _space(self, box: int) -> tuple[int, int, int]:
        """``box``'s next seq, messages its quota takes and stored bytes (settled)."""
        room = self.quota_messages - self.count(box)
        return self.current_head(box) + 1, room, self.bytes_of(box)

    def reserve_run(self, box: int, count: int, max_bytes: int) -> int | None:
        """The first seq of ``box`` for a run of ``count`` copies of at most ``max_bytes``
        bytes, or None if its quota cannot take them all (then added one by one)."""
        first, room, size = self._space(box)
        return first if count <= room and size + max_bytes <= self.quota_bytes else None

    def add_shared_run(self, bodies: list[bytes], rows: list[tuple[int, int, int, int]]) -> None:
        """Store ``bodies`` once for the boxes of ``rows`` (box, first seq, last seq, frames'
        size; seqs from :meth:`reserve_run`) at the next flush; they owe no receipt."""
        for box, _first, last, size in rows:
            self.head_seq[box] = last
            self.stored_bytes[box] += size
        self.pending_shared.append((bodies, rows))

    def open_batch(
        self, box: int, timestamp: int, copy_size: int, receipts: bool = False
    ) -> RunBatch | None:
        """A new batch for ``box`` (its open one closed first) with room for at least one
        copy of ``copy_size`` bytes, or None if the box's quota leaves none."""
        first, room, size = self._space(box)
        bytes_left = self.quota_bytes - size
        if room <= 0 or copy_size > bytes_left:
            return None
        batch = RunBatch(
            box,
            first,
            timestamp,
            first + min(room, MAX_RUN_MESSAGES),
            max(min(bytes_left, MAX_RUN_BYTES), copy_size),
            size,
            receipts,
        )
        self.batches[box] = batch
        return batch

    def close_batch(self, box: int) -> None:
        """Store ``box``'s open batch as one run and push it (``push_run``)."""
        batch = self.batches.pop(box)
        first, last = batch.first_seq, batch.next_seq - 1
        if last < first:
            return
        frames = b"".join(batch.pieces)
        self.head_seq[box] = last
        self.stored_bytes[box] = batch.stored_before + len(frames)
        self.pending_runs.append(
            (box, first, last, batch.timestamp, frames, batch.senders, batch.ids)
        )
        self.push_run(box, first, last, frames)

    def batch_copy(
        self,
        box: int,
        timestamp: int,
        body: bytes,
        headers: tuple[bytes, bytes, bytes] | None,
        sender: int,
        client_id: int,
        receipts: bool = True,
    ) -> bool:
        """Add a copy (``body``: payload and override fields) to ``box``'s batch; False if
        the box is full. ``receipts``: a user's other devices' copy, owing ``sender`` a
        receipt for ``client_id`` if non-zero; else a room copy (no senders and ids kept).
        ``headers``: the frame headers for a 2-, 3- and 4-byte seq field, or None. Kept to
        a few operations: once per copy (bench_vs_mosquitto dev3 vs dev1)."""
        batch = self.batches.get(box)
        if (
            batch is None
            or (batch.ids is None if receipts else batch.ids is not None)
            or batch.next_seq >= batch.limit_seq
            or batch.size + len(body) + 16 > batch.byte_limit
        ):
            batch = self.open_batch(box, timestamp, len(body) + 16, receipts=receipts)
            if batch is None:
                return False
            if receipts:
                self.no_receipts.discard(box)  # its copies may owe receipts
        seq = batch.next_seq
        batch.next_seq = seq + 1
        field = seq_field(seq)
        size = len(field)
        header = (
            headers[size - 2]
            if headers is not None and size <= 4
            else pack_header(len(body) + size, _MESSAGE_FRAME_TYPE)
        )
        batch.pieces += (header, body, field)
        batch.size += 5 + len(body) + size
        senders, ids = batch.senders, batch.ids
        if senders is not None and ids is not None:
            senders.append(sender)
            ids.append(client_id)
        return True

    def add_room_history(self, room: int, body: bytes) -> None:
        """Keep a room message's body in the room's timeline tail at the next flush."""
        self.room_history.setdefault(room, []).append(body)

    def add_room_record(self, room: int, sender: int, client_id: int, timestamp: int) -> None:
        """File the dedup record of a room message at the next flush."""
        records = self.room_records.get(room)
        if records is None:
            self.room_records[room] = ([sender], [client_id], timestamp)
        else:
            records[0].append(sender)
            records[1].append(client_id)

    # -- deliveries --------------------------------------------------------------------------

    def delivered_through(self, uid: int, box: int, seq: int, receipts: bool) -> None:
        """The session of ``uid``'s box ``box`` has received everything through ``seq``: its
        rows are deleted (and ``receipts`` may be owed for them) when the pass's deliveries
        are applied."""
        _note_delivery(self.deliveries, box, seq, receipts, uid)

    def users_due(self) -> set[int]:
        """The users whose deliveries wait to be applied."""
        return {uid for _, _, uid in self.deliveries.values()}

    def deliveries_due(self) -> bool:
        """Whether deliveries wait and the store can take them now."""
        return bool(self.deliveries) and self.store.available

    def apply_deliveries(self, several_boxes: set[int]) -> list[tuple[int, list[tuple[int, int]]]]:
        """Delete what sessions have received, in the open transaction (after flushing the
        pass's rows); return, per recipient user, the (sender, client id) owed a receipt.
        For the users in ``several_boxes`` (more than one box), a pair already receipted is
        left out (module docstring).

        Remembered until that transaction's commit, which may still lose them. If the store
        cannot write, what was returned so far is returned (its receipts are dropped with the
        staged frames: :mod:`relay.outage`).
        """
        self.flush_rows()
        due, self.deliveries = self.deliveries, {}
        for box, (seq, receipts, uid) in due.items():
            _note_delivery(self.deliveries_applied, box, seq, receipts, uid)
        owed: list[tuple[int, list[tuple[int, int]]]] = []
        store = self.store
        try:
            # Boxes owing no receipt (room copies, everything delivered): one statement for
            # all of them (room of 500: one DELETE per member per pass was 14 % of the
            # relay's CPU, bench_vs_mosquitto room500).
            no_receipts = self.no_receipts
            quiet = {
                box: seq
                for box, (seq, receipts, _) in due.items()
                if (not receipts or box in no_receipts) and seq > self.floor.get(box, -1)
            }
            if len(quiet) > 1:
                freed = store.delete_many_through(quiet)
                for box, seq in quiet.items():
                    self._deleted_through(box, seq, freed.get(box, 0))
            else:
                quiet = {}
            for box, (seq, receipts, uid) in due.items():
                if box in quiet:
                    continue
                delivered = store.delete_inbox_through(
                    box,
                    seq,
                    receipts=receipts and box not in self.no_receipts,
                    floor=self.floor.get(box),
                )
                self._deleted_through(box, seq, delivered.freed_bytes)
                pairs = delivered.receipts
                if pairs and uid in several_boxes:
                    pairs = self._first_receipts(pairs)
                if pairs:
                    owed.append((uid, pairs))
        except StoreUnavailable:
            pass  # rolled back with the rest of the pass: writes_lost records them again
        return owed

    def _first_receipts(self, pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The pairs not receipted yet (remembered now, the oldest forgotten past the bound)."""
        memory = self._receipted
        fresh = [pair for pair in pairs if pair not in memory]
        memory.update(dict.fromkeys(fresh))
        excess = len(memory) - RECEIPT_MEMORY
        if excess > 0:
            for pair in list(itertools.islice(memory, excess)):
                del memory[pair]
        return fresh

    def _deleted_through(self, box: int, seq: int, freed_bytes: int) -> None:
        """``box``'s device has received everything through ``seq`` (its new floor); the runs
        deleted with it held ``freed_bytes``."""
        head = self.head_seq.get(box)
        if head is not None and seq >= head:
            self.no_receipts.add(box)  # everything delivered: nothing owes one
        floor = self.floor.get(box)
        if floor is not None and seq > floor:
            self.floor[box] = seq
        size = self.stored_bytes.get(box)
        if size is not None:
            self.stored_bytes[box] = size - freed_bytes

    def forget_box(self, box: int) -> None:
        """``box`` was emptied or removed in the store: drop what is cached of it."""
        self.head_seq.pop(box, None)
        self.floor.pop(box, None)
        self.stored_bytes.pop(box, None)
        self.no_receipts.discard(box)

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
        self.batches.clear()
        self.room_passes = {}
        self.no_receipts.clear()
        self.pending_runs = []
        self.pending_shared = []
        self.room_records = {}
        self.room_history = {}
        self.head_seq.clear()
        self.floor.clear()
        self.stored_bytes.clear()
        applied, self.deliveries_applied = self.deliveries_applied, {}
        for box, (seq, receipts, uid) in applied.items():
            self.delivered_through(uid, box, seq, receipts)
        return senders
