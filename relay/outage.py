"""When the store cannot write (PROTOCOL.md section 7, "Store full"): the relay stays up.

A write or commit that fails for want of space (or an I/O error, a read-only file) rolls the
store's whole transaction back: every write of the loop pass so far is lost, whoever made
it (:class:`relay.store.StoreUnavailable`). This module owns what follows.

Invariants:
- Nothing acknowledged is lost, nothing lost is acknowledged. The frames a pass queues are
  staged on their connections until the pass's commit succeeded (:mod:`relay.connection`);
  when the pass's writes are lost, :meth:`StoreOutage.writes_lost` drops every cache those
  writes changed (seqs, floors, stored bytes, the rows of the pass, the deliveries it
  recorded: these wait for the store again) and answers for each connection's staged frames
  instead of releasing them: OK Acks become Ack STORE_FULL in the same order, durable
  messages pushed or replayed are not sent (the session's cursor goes back so the store
  replays what it really holds), receipts of rolled-back deletions are dropped, and frames
  that do not depend on the store (pings, refusals, lists, ephemeral messages, Resets) stand.
  A connection that loses another response (a login, a registration, a buddy change) gets
  Reset UNKNOWN_ERROR :data:`REQUEST_NOT_COMPLETED` rather than a reply to a request that
  did not happen, and so does one whose request needs a write the store refuses
  (:meth:`StoreOutage.request_failed`: a registration or a buddy change while the disk is
  full); a v1 session that sent a durable message in that pass gets Reset
  UNKNOWN_ERROR :data:`MESSAGE_NOT_STORED` (v1 has no refusal, and must not believe it sent).
- An outage is one episode: logged once when it starts (the first lost pass) and once when
  it ends. Meanwhile durable messages are refused before anything is written (v2: Ack
  STORE_FULL, v1: that Reset), deliveries wait in memory, best-effort writes are skipped
  (:mod:`relay.store`), and the relay's sweep probes the store every few seconds; logins,
  reads, presence and ephemeral traffic go on.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from protocol import chat_pb2 as pb
from protocol import encode_frame
from protocol.framing import HEADER_SIZE, frame_ends
from protocol.types import EPHEMERAL_MESSAGE_TYPES, FrameType
from relay.connection import Connection
from relay.devices import DeviceRegistry
from relay.inboxes import Inboxes
from relay.rooms import RoomRegistry
from relay.sessions import Sessions
from relay.store import Store

log = logging.getLogger("parley.relay")

MESSAGE_NOT_STORED = "relay storage is full; message not stored"
REQUEST_NOT_COMPLETED = "relay storage is full; request not completed"

# Staged frames that stand when the pass's writes are lost: they depend on no write (a
# LIST_BUDDY may show a relation that was rolled back; the next push corrects it).
_STANDING = frozenset(
    {FrameType.RAW, FrameType.PING, FrameType.RESET, FrameType.LIST_USER, FrameType.LIST_BUDDY}
)


class OutageContext(Protocol):
    """What answering for lost writes uses of the relay (a part of
    :class:`relay.context.Context`, which builds on this module)."""

    inboxes: Inboxes
    devices: DeviceRegistry
    rooms: RoomRegistry
    sessions: Sessions
    dirty: set[Connection]
    now: float

    def send_message(self, conn: Connection, frame_type: int, message: Any) -> None: ...

    def reset(self, conn: Connection, code: pb.Reset.Code.ValueType, reason: str) -> None: ...


class StoreOutage:
    """The relay's view of its store's availability: the current episode, if any."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._failures_seen = store.failures
        self.began: float | None = None  # relay.now when the current episode began
        self.refused = 0  # durable messages refused during the current episode

    def lost_writes(self) -> bool:
        """Whether the store lost a transaction since the last :meth:`writes_lost`."""
        return self.store.failures != self._failures_seen

    def writes_lost(self, relay: OutageContext) -> None:
        """The pass's writes were rolled back: forget what they changed, answer for the
        frames staged on their behalf (module docstring)."""
        self._failures_seen = self.store.failures
        if self.began is None:
            self.began = relay.now
            self.refused = 0
            log.error(
                "store cannot write (%s): refusing durable messages until it can "
                "(probed every few seconds); logins, reads and ephemeral messages go on",
                self.store.unavailable_reason,
            )
        senders = relay.inboxes.writes_lost()
        lost_boxes = relay.devices.writes_lost()
        relay.rooms.forget_all()
        for conn in list(relay.dirty):
            self._answer_for_staged(relay, conn)
        for uid in senders:
            for sender in list(relay.sessions.all_of(uid)):
                if sender.version < 2:
                    self.refused += 1
                    relay.reset(sender, pb.Reset.UNKNOWN_ERROR, MESSAGE_NOT_STORED)
        for box in lost_boxes:
            # The device registered in this pass is gone with it (and its box number may be
            # handed out again): its session must not go on reading that box.
            session = relay.sessions.by_box.get(box)
            if session is not None:
                relay.reset(session, pb.Reset.UNKNOWN_ERROR, REQUEST_NOT_COMPLETED)

    def refuse_durable(self, relay: OutageContext, conn: Connection, client_id: int) -> None:
        """A durable message arrived while the store cannot write."""
        self.refused += 1
        if conn.version >= 2:
            relay.send_message(conn, FrameType.ACK, pb.Ack(id=client_id, code=pb.Ack.STORE_FULL))
        else:
            relay.reset(conn, pb.Reset.UNKNOWN_ERROR, MESSAGE_NOT_STORED)

    def request_failed(self, relay: OutageContext, conn: Connection) -> None:
        """Handling a frame of ``conn`` needed a write the store refused: the request was
        not completed (what the pass lost with it is answered for at its end)."""
        relay.reset(conn, pb.Reset.UNKNOWN_ERROR, REQUEST_NOT_COMPLETED)

    def probe(self, relay: OutageContext) -> None:
        """Try a write; if it succeeds, the episode is over."""
        if not self.store.probe():
            return
        began = relay.now if self.began is None else self.began
        log.warning(
            "store can write again after %.0f s (%d durable messages refused "
            "meanwhile): accepting durable messages",
            relay.now - began,
            self.refused,
        )
        self.began = None

    def _answer_for_staged(self, relay: OutageContext, conn: Connection) -> None:
        """Replace ``conn``'s staged frames by what stands once the pass's writes are lost."""
        staged = conn.take_staged()
        answers: list[bytes] = []
        replay_after: int | None = None  # the session gets stored messages after this seq again
        replay = False
        lost = False
        start = 0
        for end in frame_ends(staged):
            frame = staged[start:end]
            payload = frame[HEADER_SIZE:]
            start = end
            frame_type = frame[HEADER_SIZE - 1]
            if frame_type == FrameType.ACK:
                ack = pb.Ack.FromString(payload)
                if ack.delivered:
                    continue  # a receipt for a deletion that was rolled back
                if ack.code == pb.Ack.OK:
                    answers.append(
                        encode_frame(FrameType.ACK, pb.Ack(id=ack.id, code=pb.Ack.STORE_FULL))
                    )
                    self.refused += 1
                else:
                    answers.append(frame)  # a refusal stands
            elif frame_type == FrameType.MESSAGE:
                message = pb.Message.FromString(payload)
                if message.type in EPHEMERAL_MESSAGE_TYPES:
                    answers.append(frame)
                else:  # pushed or replayed: what the store really holds is replayed instead
                    replay = True
                    if replay_after is None or message.seq <= replay_after:
                        replay_after = message.seq - 1
            elif frame_type == FrameType.SYNC:
                replay = conn.sync_requested = True  # sent again once the replay is done
            elif frame_type in _STANDING:
                answers.append(frame)
            else:
                lost = True
        if replay:
            if replay_after is not None:
                conn.pushed_seq = min(conn.pushed_seq, replay_after)
            conn.catching_up = True  # the write pass resumes the replay from the store
        for answer in answers:
            conn.queue(answer)
        if lost:
            relay.reset(conn, pb.Reset.UNKNOWN_ERROR, REQUEST_NOT_COMPLETED)
        relay.dirty.add(conn)
