"""Rooms as the client sees them (PROTOCOL.md section 10): the model, the session's room
table, the requests waiting for their RoomResponse, and the room events.

A room's messages live in the local history as the conversation of its negative id
(:func:`tui.client.history.room_peer`), so history pages, unread counts, the outbox and the
exactly-once, ordered delivery of the inbox work for rooms as for buddies; this module only
keeps what the relay says about membership.

Invariants:
- :class:`RoomTable` is the only owner of the rooms this user is in or invited to. It
  changes only from RoomResponses: a successful answer to one of this session's requests
  (the requesting session gets no EVENT push of its own change) or a pushed EVENT. A LIST
  answer replaces the table; a room sent without members means "not yours any more" (left,
  declined, kicked, or deleted) and removes it, as does a successful LEAVE or DECLINE.
- Every change of the table is reported once, in the order it happened: RoomInvited when
  a room appears with this user INVITED, RoomChanged for any other new or different room,
  RoomRemoved when it goes.
- Room and member names from the relay are untrusted text; they are recorded in the local
  store's name table (a room under its negative id) so that history shows names offline.
- Requests carry a ``request_id`` echoed by the relay: each answer resolves exactly the
  call that asked; calls fail when their connection ends (:meth:`RoomTable.fail_all`).
- Only v2.1 sessions (a device, or send-only) may speak ROOM: the session checks that
  before it asks (a ROOM frame from any other session is a protocol error on the relay).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from protocol import chat_pb2 as pb
from protocol.validation import username_key
from tui.client.history import room_peer
from tui.client.store import LocalStore

Op = pb.RoomRequest
Code = pb.RoomResponse
Role = pb.Member

# Words for a RoomResponse code, for people (scripts, dialogs).
CODE_TEXT: dict[int, str] = {
    Code.SUCCESS: "done",
    Code.FAILED: "the relay refused",
    Code.NO_SUCH_ROOM: "no such room",
    Code.NOT_ALLOWED: "only the room's owner may do that",
    Code.ROOM_FULL: "the room is full",
    Code.INVALID_NAME: "not a valid room name",
    Code.TOO_MANY_ROOMS: "too many rooms (yours or theirs)",
}


@dataclass(frozen=True)
class RoomMember:
    """One member of a room; ``username`` is untrusted. ``online`` is shown only to those
    in the room (an invitee sees everyone offline)."""

    uid: int
    username: str
    online: bool
    role: int  # pb.Member.MEMBER / OWNER / INVITED

    @classmethod
    def from_pb(cls, member: pb.Member) -> RoomMember:
        return cls(member.uid, member.username, member.online, member.role)


@dataclass(frozen=True)
class RoomInfo:
    """A room as the relay last described it to this user; ``name`` is untrusted."""

    id: int
    name: str
    members: tuple[RoomMember, ...]
    my_role: int  # pb.Member.MEMBER / OWNER / INVITED

    @classmethod
    def from_pb(cls, room: pb.Room) -> RoomInfo:
        members = tuple(RoomMember.from_pb(m) for m in room.members)
        return cls(room.id, room.name, members, room.my_role)

    @property
    def peer(self) -> int:
        """The room's conversation key in the local history (its negative id)."""
        return room_peer(self.id)

    @property
    def invited(self) -> bool:
        """This user is invited and has not joined (nor declined) yet."""
        return self.my_role == Role.INVITED

    @property
    def owned(self) -> bool:
        return self.my_role == Role.OWNER

    @property
    def joined(self) -> tuple[RoomMember, ...]:
        """The members in the room (owner and members, not invitees)."""
        return tuple(m for m in self.members if m.role != Role.INVITED)

    def member(self, uid: int) -> RoomMember | None:
        return next((m for m in self.members if m.uid == uid), None)


@dataclass(frozen=True)
class RoomResult:
    """The relay's answer to a room request: its code and the rooms it carries (the affected
    room, or every room for LIST; none when the room is gone)."""

    code: int
    rooms: tuple[RoomInfo, ...]

    @property
    def ok(self) -> bool:
        return self.code == Code.SUCCESS

    @property
    def room(self) -> RoomInfo | None:
        return self.rooms[0] if self.rooms else None

    @property
    def reason(self) -> str:
        return CODE_TEXT.get(self.code, f"refused (code {self.code})")


@dataclass(frozen=True)
class RoomChanged:
    """A room appeared or changed (members, names, roles, presence, its name)."""

    room: RoomInfo


@dataclass(frozen=True)
class RoomInvited:
    """Someone invited this user into ``room``: JOIN or DECLINE it."""

    room: RoomInfo


@dataclass(frozen=True)
class RoomRemoved:
    """This user is no longer in room ``room_id`` (left, declined, kicked, or it was
    deleted); ``name`` is its last known name. Its history stays in the local store.
    ``by_me``: this session's own LEAVE or DECLINE (not a kick, nor another device's)."""

    room_id: int
    name: str
    by_me: bool = False


RoomEvent = RoomChanged | RoomInvited | RoomRemoved


@dataclass
class _Pending:
    op: int
    room: int
    future: asyncio.Future[RoomResult] | None  # None: asked by the session itself


class RoomTable:
    """The rooms of this session's user and the room requests in flight; see the module
    docstring."""

    def __init__(self, store: LocalStore, emit: Callable[[RoomEvent], None]) -> None:
        self._store = store
        self._emit = emit
        self.rooms: dict[int, RoomInfo] = {}
        self._pending: dict[int, _Pending] = {}
        self._next_id = 0

    # --- reading -------------------------------------------------------------------------

    def get(self, room: int) -> RoomInfo | None:
        return self.rooms.get(room)

    def named(self, name: str) -> list[RoomInfo]:
        """The rooms called ``name`` (compared as usernames are: case and width folded)."""
        key = username_key(name.strip())
        return [room for room in self.rooms.values() if username_key(room.name) == key]

    # --- requests ------------------------------------------------------------------------

    def request(self, op: int, room: int = 0, *, name: str = "", uid: int = 0) -> pb.RoomRequest:
        """A new RoomRequest with a fresh ``request_id`` (send it, then :meth:`expect`)."""
        self._next_id = self._next_id % 0xFFFFFFFF + 1
        return pb.RoomRequest(
            op=pb.RoomRequest.Op.ValueType(op),
            room=room,
            name=name,
            uid=uid,
            request_id=self._next_id,
        )

    def expect(self, request: pb.RoomRequest) -> asyncio.Future[RoomResult]:
        """A future for the answer to ``request`` (already sent)."""
        future: asyncio.Future[RoomResult] = asyncio.get_running_loop().create_future()
        self._pending[request.request_id] = _Pending(request.op, request.room, future)
        return future

    def expect_silently(self, request: pb.RoomRequest) -> None:
        """The session asked (e.g. LIST on login): apply the answer, resolve nobody."""
        self._pending[request.request_id] = _Pending(request.op, request.room, None)

    def fail_all(self, error: BaseException) -> None:
        """The connection ended: every waiting call raises ``error``."""
        pending, self._pending = self._pending, {}
        for waiting in pending.values():
            if waiting.future is not None and not waiting.future.done():
                waiting.future.set_exception(error)

    # --- answers and pushes -----------------------------------------------------------------

    def on_response(self, response: pb.RoomResponse) -> None:
        """Apply a RoomResponse (an answer or a pushed EVENT) to the table."""
        rooms = tuple(RoomInfo.from_pb(room) for room in response.rooms)
        waiting = None
        if response.op != Op.EVENT:
            waiting = self._pending.pop(response.request_id, None)
        if response.code == Code.SUCCESS:
            self._remember_names(rooms)
            if response.op == Op.LIST and waiting is not None:
                self._replace(rooms)
            else:
                mine = waiting is not None and waiting.op in (Op.LEAVE, Op.DECLINE)
                for room in rooms:
                    self._apply(room, by_me=mine)
                if waiting is not None and mine:
                    self._remove(waiting.room, by_me=True)
        if waiting is not None and waiting.future is not None and not waiting.future.done():
            waiting.future.set_result(RoomResult(response.code, rooms))

    def _apply(self, room: RoomInfo, *, by_me: bool = False) -> None:
        if not room.members:
            self._remove(room.id, by_me=by_me)
            return
        old = self.rooms.get(room.id)
        self.rooms[room.id] = room
        if room.invited and (old is None or not old.invited):
            self._emit(RoomInvited(room))
        elif room != old:
            self._emit(RoomChanged(room))

    def _remove(self, room_id: int, *, by_me: bool = False) -> None:
        old = self.rooms.pop(room_id, None)
        if old is not None:
            self._emit(RoomRemoved(room_id, old.name, by_me))

    def _replace(self, rooms: Iterable[RoomInfo]) -> None:
        fresh = {room.id: room for room in rooms if room.members}
        for room_id in [r for r in self.rooms if r not in fresh]:
            self._remove(room_id)
        for room in fresh.values():
            self._apply(room)

    def _remember_names(self, rooms: tuple[RoomInfo, ...]) -> None:
        names: list[tuple[int, str]] = []
        for room in rooms:
            if room.name:
                names.append((room.peer, room.name))
            names.extend((m.uid, m.username) for m in room.members if m.username)
        if names:
            self._store.set_peer_names(names)


def describe_event(text: str, actor: str, name_of: Callable[[int], str]) -> str:
    """A ROOM_EVENT's ``msg`` (``join``, ``leave``, ``decline``, ``kick <uid>``, ``invite
    <uid>``, ``rename <name>``) as a sentence about ``actor``; ``name_of`` names a uid.
    Untrusted parts (names) are returned as they are: the caller makes them printable."""
    verb, _, rest = text.partition(" ")
    if verb == "join" and not rest:
        return f"{actor} joined"
    if verb == "leave" and not rest:
        return f"{actor} left"
    if verb == "decline" and not rest:
        return f"{actor} declined the invitation"
    if verb in ("kick", "invite") and rest.isdigit() and rest.isascii():
        who = name_of(int(rest))
        return f"{actor} removed {who}" if verb == "kick" else f"{actor} invited {who}"
    if verb == "rename" and rest:
        return f"{actor} renamed the room to {rest}"
    return f"{actor}: {text}"
