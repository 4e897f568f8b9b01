"""The client's domain types for messages: what a stored message is and where it stands.

Owns no state: immutable values and the rules on them. :mod:`tui.client.store` persists
them (SQL only), the session produces them, the app displays them.

Invariants:
- A :class:`HistoryEntry` is immutable; a change of state is a new entry.
- ``local_id`` is None only for ephemeral incoming messages, which are never stored.
- ``text``/``data``/``file`` of an incoming entry are untrusted peer content.
- An ``outgoing`` entry is a message this user sent: from this installation (PENDING until
  the relay answers) or, as a copy the relay made (PROTOCOL.md section 9), from another of
  the user's devices (SENT from the start; ``peer`` is whom it went to).
- Only the types in :data:`UNREAD_TYPES` are read by a person in the chat, so only they
  count as unread.
- ``timestamp`` is the relay's time for a message from the relay (incoming, or a copy of
  one sent from another device) and the local time it was written for one sent from this
  installation, however late it went out.
- A room (PROTOCOL.md section 10) is a conversation whose ``peer`` is the negative room id
  (:func:`room_peer`); its incoming entries name who wrote them in ``sender`` (it may be
  this user's own uid: a message of theirs replayed with the room's history). ``sender``
  is 0 for outgoing and one-to-one entries (the ``peer`` wrote an incoming one).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocol import chat_pb2 as pb

# Incoming types that a person reads in the chat: only these count as unread.
UNREAD_TYPES = frozenset({pb.Message.MESSAGE, pb.Message.FILE, pb.Message.FILE_OFFER})


class MessageState(enum.IntEnum):
    """Where a stored message stands. The first four are outgoing states."""

    PENDING = 0  # persisted, not yet acknowledged by the relay ("sending…")
    SENT = 1  # relay stored it (Ack OK)  ✓
    DELIVERED = 2  # recipient has it (receipt)  ✓✓
    FAILED = 3  # refused, or out of attempts  !
    RECEIVED = 4  # an incoming message


# FAILED because no Ack came back after every attempt (not a relay code; those are >= 0).
CODE_NO_ACK = -1

# Why an outgoing message is FAILED, by its code (an Ack code, or CODE_NO_ACK).
FAILURE_TEXT: dict[int, str] = {
    pb.Ack.NOT_BUDDY: "is not your buddy (both of you must add each other)",
    pb.Ack.NO_SUCH_USER: "does not exist",
    pb.Ack.TOO_LARGE: "message too large",
    pb.Ack.RATE_LIMITED: "rate limited by the relay; try again later",
    pb.Ack.QUOTA_EXCEEDED: "their offline inbox is full",
    pb.Ack.INVALID: "message rejected as invalid",
    pb.Ack.STORE_FULL: "the relay's storage is full; try again later",
    pb.Ack.NOT_MEMBER: "you are not a member of this room",
    CODE_NO_ACK: "no acknowledgement from the relay after every retry",
}

# States in which the relay has answered for an outgoing message.
ANSWERED = frozenset({MessageState.SENT, MessageState.DELIVERED, MessageState.FAILED})


@dataclass(frozen=True)
class HistoryEntry:
    """One message as the client knows it.

    ``local_id`` is None only for ephemeral incoming messages, which are never stored.
    ``text``/``data``/``file`` are untrusted peer content when ``outgoing`` is False.
    """

    local_id: int | None
    peer: int
    outgoing: bool
    msg_id: int
    seq: int | None
    type: int
    text: str
    data: bytes
    file: pb.FileInfo | None
    timestamp: int
    state: MessageState
    code: int = 0
    attempts: int = 0
    sender: int = 0

    @property
    def room(self) -> int:
        """The room id of a room entry, 0 for a one-to-one one."""
        return -self.peer if self.peer < 0 else 0

    @classmethod
    def from_incoming(cls, message: pb.Message, local_id: int | None = None) -> HistoryEntry:
        """The entry of a message from the relay; an ``outgoing`` copy of what the user sent
        from another device is an outgoing entry, SENT (the relay has stored it)."""
        return cls(
            local_id=local_id,
            peer=room_peer(message.room) if message.room else message.uid,
            outgoing=message.outgoing,
            msg_id=message.id,
            seq=message.seq or None,
            type=message.type,
            text=message.msg,
            data=message.data,
            file=_copy_file(message) if message.HasField("file") else None,
            timestamp=message.timestamp,
            state=MessageState.SENT if message.outgoing else MessageState.RECEIVED,
            sender=message.uid if message.room and not message.outgoing else 0,
        )

    def to_wire(self) -> pb.Message:
        """The Message to send for an outgoing entry."""
        message = pb.Message(
            uid=max(self.peer, 0),
            room=self.room,
            type=pb.Message.Type.ValueType(self.type),
            msg=self.text,
            data=self.data,
            id=self.msg_id,
        )
        if self.file is not None:
            message.file.CopyFrom(self.file)
        return message


@dataclass(frozen=True)
class Conversation:
    """Summary of the messages exchanged with one peer."""

    peer: int
    username: str | None
    last_local_id: int
    unread: int


def room_peer(room: int) -> int:
    """The conversation key (``HistoryEntry.peer``) of room ``room``: its negative id."""
    return -room


def describe_failure(entry: HistoryEntry, peer_name: str) -> str:
    """Why a FAILED message failed, in words."""
    reason = FAILURE_TEXT.get(entry.code, f"refused (code {entry.code})")
    if entry.code in (pb.Ack.NOT_BUDDY, pb.Ack.NO_SUCH_USER):
        return f"{peer_name} {reason}"
    return reason


def _copy_file(message: pb.Message) -> pb.FileInfo:
    info = pb.FileInfo()
    info.CopyFrom(message.file)
    return info
