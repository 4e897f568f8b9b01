"""How the transfer engine reacts to the session: incoming file messages and presence.

Invariants:
- Peer content is untrusted: an offer's name is reduced to a safe base name before it is
  stored (the sender's text is kept only with terminal controls removed), offers with no
  transfer id or a SHA-256 that is not 32 bytes are ignored, and offsets are clamped to the
  offered size.
- A message about an unknown or finished transfer never revives it: an accept for a
  transfer we cancelled or never had is answered with FILE_CANCEL, a chunk for one we
  completed with the final FILE_PROGRESS (at most once a second per transfer); anything
  else about finished transfers is ignored.
- Durable messages are handled when the session reports them (MessageReceived, live or
  backlog), which happens once per message, ever.
- Rooms (PROTOCOL.md section 10): an offer in a room is an incoming transfer from its
  sender (every reply goes one-to-one to that user); the sender's own offer to a room
  stays OFFERED, and each member's accept starts a transfer of its own to that member,
  copied from it (until the room offer is cancelled: then an accept gets FILE_CANCEL).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from protocol import chat_pb2 as pb
from protocol.validation import printable_text, safe_basename
from tui.client.events import (
    BuddyListChanged,
    ConnectionStateChanged,
    Event,
    MessageReceived,
    OutgoingStateChanged,
)
from tui.client.history import CODE_NO_ACK, HistoryEntry, MessageState
from tui.client.transfer.engine import TransferEngine
from tui.client.transfer.events import (
    TransferCancelled,
    TransferDeclined,
    TransferFailed,
    TransferOffered,
    TransferUpdated,
)
from tui.client.transfer.store import Transfer, TransferState

log = logging.getLogger(__name__)

_M = pb.Message
_STRAY_CACHE = 1024
_REFUSALS = {
    pb.Ack.NOT_BUDDY: "the relay refused: you are not buddies",
    pb.Ack.NO_SUCH_USER: "the relay refused: no such user",
    pb.Ack.TOO_LARGE: "the relay refused: the file is larger than it allows",
    pb.Ack.RATE_LIMITED: "the relay refused: too many open transfers; finish or cancel some",
    pb.Ack.QUOTA_EXCEEDED: "the relay refused: the recipient's inbox is full",
    pb.Ack.INVALID: "the relay refused the offer as invalid",
    pb.Ack.STORE_FULL: "the relay's storage stayed full while the offer was retried",
    CODE_NO_ACK: "the relay never acknowledged the offer",
}


def refusal_reason(code: int) -> str:
    """A sentence for a refused offer (Ack code, or CODE_NO_ACK)."""
    return _REFUSALS.get(code, f"the relay refused the offer (code {code})")


def peer_text(text: str, limit: int = 200) -> str:
    """Untrusted text from a peer, safe to show: one line, no terminal controls."""
    return printable_text(text[: limit * 4], keep_newlines=False)[:limit]


class TransferWire:
    """Session events → engine calls. Owns the set of buddies last seen online (to notice
    one coming back) and the throttle of answers to stray chunks."""

    def __init__(self, engine: TransferEngine) -> None:
        self.engine = engine
        self.session = engine.session
        self.store = engine.store
        self._strays: dict[tuple[int, int], float] = {}
        self._online = {uid for uid, b in self.session.buddies.items() if b.online}

    def attach(self) -> list[Callable[[], None]]:
        """Subscribe to the session; returns the functions that unsubscribe."""
        return [
            self.session.add_listener(self._on_session_event),
            self.session.intercept(_M.FILE_CHUNK, self._on_chunk),
            self.session.intercept(_M.FILE_PROGRESS, self._on_progress),
        ]

    def load(self) -> None:
        """Pick up where the last run of the app left off."""
        for transfer in self.store.unfinished():
            if transfer.outgoing and transfer.state is TransferState.OFFERED:
                if transfer.offer_msg_id is not None:
                    self.engine.await_offer_outcome(transfer.offer_msg_id, transfer.id)
                    entry = self.session.store.find_outgoing(transfer.offer_msg_id)
                    if entry is not None and entry.state is not MessageState.PENDING:
                        self._on_offer_outcome(entry.msg_id, entry.state, entry.code)
            elif transfer.outgoing and not transfer.legacy:
                self.engine.start_outgoing(transfer, transfer.offset)
            elif not transfer.outgoing and transfer.state is TransferState.ACTIVE:
                self.engine.start_incoming(transfer, resume=True)

    # --- session events ------------------------------------------------------------------

    def _on_session_event(self, event: Event) -> None:
        if isinstance(event, MessageReceived):
            entry = event.entry
            if entry.local_id is not None and not entry.outgoing:
                self._on_durable(entry)
        elif isinstance(event, OutgoingStateChanged):
            if self.engine.awaits_offer_outcome(event.entry.msg_id):
                self._on_offer_outcome(event.entry.msg_id, event.entry.state, event.entry.code)
        elif isinstance(event, ConnectionStateChanged):
            if self.session.connected:
                for run in self.engine.incoming_runs():
                    run.reannounce()
            self.engine.wake_all()
        elif isinstance(event, BuddyListChanged):
            online = {b.uid for b in event.buddies if b.online}
            back, self._online = online - self._online, online
            for run in self.engine.incoming_runs():
                if run.peer in back:
                    run.reannounce()
            self.engine.wake_all()

    def _on_durable(self, entry: HistoryEntry) -> None:
        kind = entry.type
        if kind == _M.FILE:
            self._on_v1_file(entry)
            return
        info = entry.file
        if info is None or info.transfer_id == 0:
            return
        if kind == _M.FILE_OFFER:
            self._on_offer(entry, info)
        elif kind == _M.FILE_ACCEPT:
            self._on_accept(entry.peer, info)
        elif kind == _M.FILE_DECLINE:
            self._on_decline(entry.peer, info)
        elif kind == _M.FILE_CANCEL:
            self._on_cancel(entry.peer, info, entry.text)

    def _on_offer(self, entry: HistoryEntry, info: pb.FileInfo) -> None:
        sender = entry.sender if entry.room else entry.peer  # a room's offer: from its sender
        if len(info.sha256) != 32:
            log.info("ignoring a file offer from %d without a valid SHA-256", sender)
            return
        if sender == self.session.uid:  # our own room offer, replayed with the room's history
            return
        if self.store.find(False, sender, info.transfer_id) is not None:
            return
        offered = Transfer(
            0,
            False,
            sender,
            info.transfer_id,
            safe_basename(entry.text),
            peer_text(entry.text, 1024),
            info.size,
            bytes(info.sha256),
            TransferState.OFFERED,
            history_id=entry.local_id,
        )
        self.engine.emit(TransferOffered(self.store.add(offered)))

    def _on_v1_file(self, entry: HistoryEntry) -> None:
        if entry.local_id is None or self.store.find_by_history(entry.local_id) is not None:
            return
        offered = Transfer(
            0,
            False,
            entry.peer,
            0,
            safe_basename(entry.text),
            peer_text(entry.text, 1024),
            len(entry.data),
            b"",
            TransferState.OFFERED,
            legacy=True,
            history_id=entry.local_id,
        )
        self.engine.emit(TransferOffered(self.store.add(offered)))

    def _on_accept(self, peer: int, info: pb.FileInfo) -> None:
        transfer = self.store.find(True, peer, info.transfer_id)
        if transfer is None:
            transfer = self._room_copy(peer, info.transfer_id)
        if transfer is None or transfer.state in (TransferState.CANCELLED, TransferState.FAILED):
            reason = transfer.reason if transfer is not None else "unknown transfer"
            self.session.send(
                peer,
                _M.FILE_CANCEL,
                text=reason[:200],
                file=pb.FileInfo(transfer_id=info.transfer_id),
            )
            return
        if transfer.state.final or transfer.legacy:
            return
        offset = min(info.offset, transfer.size)
        if transfer.offer_msg_id is not None:
            self.engine.take_offer(transfer.offer_msg_id)
        updated = self.store.update(
            transfer, state=TransferState.ACTIVE, start_offset=offset, offset=offset
        )
        self.engine.start_outgoing(updated, offset)
        self.engine.emit(TransferUpdated(updated))

    def _room_copy(self, peer: int, transfer_id: int) -> Transfer | None:
        """A member accepts a file this user offered to a room: its own transfer, as
        offered (None if no room offer has this id; the room offer itself if it ended)."""
        offer = self.store.find_room_offer(transfer_id)
        if offer is None or offer.state is not TransferState.OFFERED:
            return offer
        copy = Transfer(
            0,
            True,
            peer,
            transfer_id,
            offer.name,
            offer.offered_name,
            offer.size,
            offer.sha256,
            TransferState.OFFERED,
            path=offer.path,
            source_mtime=offer.source_mtime,
        )
        return self.store.add(copy)

    def _on_decline(self, peer: int, info: pb.FileInfo) -> None:
        transfer = self.store.find(True, peer, info.transfer_id)
        if transfer is None or transfer.state.final:
            return
        self.engine.spawn(self.engine.stop_run(transfer.id, remove_part=False))
        self.engine.end(
            transfer,
            TransferState.DECLINED,
            "declined by the receiver",
            lambda t: TransferDeclined(t, by_peer=True),
        )

    def _on_cancel(self, peer: int, info: pb.FileInfo, text: str) -> None:
        for outgoing in (True, False):
            transfer = self.store.find(outgoing, peer, info.transfer_id)
            if transfer is None or transfer.state.final:
                continue
            run = self.engine.incoming_run(transfer.id)
            if run is not None and run.finishing and run.writer.error is None:
                # Every byte is here and being verified/moved into place: the cancel lost
                # the race. Finishing (and the final FILE_PROGRESS it sends) is the only
                # outcome that leaves disk and records consistent.
                log.info(
                    "transfer %d: cancel from the sender arrived after the last byte; completing",
                    transfer.id,
                )
                continue
            self.engine.spawn(self.engine.stop_run(transfer.id, remove_part=True))
            who = "the receiver" if outgoing else "the sender"
            reason = f"cancelled by {who}" + (f": {peer_text(text)}" if text else "")
            self.engine.end(
                transfer,
                TransferState.CANCELLED,
                reason,
                partial(TransferCancelled, by_peer=True, reason=reason),
            )

    def _on_offer_outcome(self, msg_id: int, state: MessageState, code: int) -> None:
        if state not in (MessageState.FAILED, MessageState.SENT, MessageState.DELIVERED):
            return
        local_id = self.engine.take_offer(msg_id)
        transfer = self.store.get(local_id) if local_id is not None else None
        if transfer is None or transfer.state.final:
            return
        if state is MessageState.FAILED:
            reason = refusal_reason(code)
            self.engine.end(
                transfer, TransferState.FAILED, reason, lambda t: TransferFailed(t, reason)
            )
        elif transfer.legacy:  # a v1 FILE is done once the relay has stored it
            self.engine.complete(transfer)

    # --- ephemeral traffic (intercepted: never reaches the session's listeners) ------------

    def _on_chunk(self, message: pb.Message) -> None:
        key = (message.uid, message.file.transfer_id)
        run = self.engine.incoming_run_on_wire(*key)
        if run is not None:
            run.on_chunk(message.file.offset, message.data)
            return
        now = self.engine.clock()  # not receiving it: if we completed it, say so (rarely)
        if now - self._strays.get(key, float("-inf")) < 1.0:
            return
        if len(self._strays) >= _STRAY_CACHE:
            self._strays.clear()
        self._strays[key] = now
        done = self.store.find(False, message.uid, message.file.transfer_id)
        if done is not None and done.state is TransferState.COMPLETED:
            self.engine.send_progress(done.peer, done.transfer_id, done.size)

    def _on_progress(self, message: pb.Message) -> None:
        run = self.engine.outgoing_run_on_wire(message.uid, message.file.transfer_id)
        if run is not None:
            run.on_progress(message.file.offset)
