"""ROOM (PROTOCOL.md section 10): create, invite, join, decline, leave, kick, rename, list,
members.

Invariants:
- Only v2.1 sessions (a device or send_only) speak ROOM; from anyone else it is a protocol
  error, so v1 and plain v2 sessions never see rooms.
- A room is visible only to those in it or invited to it: for anyone else every op on it
  answers NO_SUCH_ROOM, whether it exists or not.
- Every successful change is written to the store, then the membership caches are told
  (:class:`relay.rooms.RoomRegistry`), then the change is pushed (RoomResponse op EVENT,
  the changed room) to every live v2.1 session of everyone concerned but the requesting
  session (which gets the response), and stored as a durable ROOM_EVENT in the room's
  timeline (:func:`relay.room_delivery.store_room_event`).
- A joining member first gets the room's last ``room_history`` durable messages, then the
  join event, then live traffic (all through its boxes, in that seq order).
- The last member (MEMBER or OWNER) leaving deletes the room with its invitations; an
  owner leaving a room that keeps members hands the ownership to the longest-standing one.
- Limits: ``max_room_members`` (invited included: ROOM_FULL) and ``max_rooms_per_user``
  (joined and invited: TOO_MANY_ROOMS, for the creator or the invitee).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol import ProtocolError
from protocol import chat_pb2 as pb
from protocol.framing import pack_header
from protocol.types import FrameType, parse_message
from protocol.validation import normalize_room_name
from relay import room_delivery
from relay.forwarding import encode_varint
from relay.rooms import INVITED, MEMBER, OWNER
from relay.store import StoreUnavailable

if TYPE_CHECKING:
    from relay.connection import Connection
    from relay.context import Context

Op = pb.RoomRequest
Code = pb.RoomResponse


def room_view(relay: Context, room: int, viewer: int) -> pb.Room:
    """``room`` as ``viewer`` sees it: members with presence (shown to those in the room
    only), and the viewer's role. Only the id (and name) when the viewer is no longer in
    it (left, declined, kicked) or it no longer exists: no members means "not yours"."""
    record = relay.store.rooms.room(room)
    if record is None:
        return pb.Room(id=room)
    my_role = relay.rooms.members(room).get(viewer)
    if my_role is None:
        return pb.Room(id=room, name=record.name)
    view = _with_members(relay, room, record.name, presence=my_role != INVITED)
    view.my_role = pb.Member.Role.ValueType(my_role)
    return view


def _with_members(relay: Context, room: int, name: str, *, presence: bool) -> pb.Room:
    """``room`` with every member, ``online`` shown only when ``presence`` (those in it)."""
    online = relay.sessions.online if presence else {}
    return pb.Room(
        id=room,
        name=name,
        members=[
            pb.Member(
                uid=m.uid,
                username=m.username,
                online=m.uid in online,
                role=pb.Member.Role.ValueType(m.role),
            )
            for m in relay.store.rooms.members(room)
        ],
    )


def _respond(
    relay: Context,
    conn: Connection,
    request: pb.RoomRequest,
    code: pb.RoomResponse.Code.ValueType,
    room: int = 0,
) -> None:
    response = pb.RoomResponse(code=code, request_id=request.request_id, op=request.op)
    if room and code == Code.SUCCESS:
        response.rooms.append(room_view(relay, room, conn.uid))
    relay.send_message(conn, FrameType.ROOM, response)


def push_event(relay: Context, room: int, uids: set[int], skip: Connection | None) -> None:
    """Push the changed ``room`` (op EVENT) to every live v2.1 session of ``uids`` but
    ``skip``; each user sees its own role (a removed user: a room without members).

    The room is read and encoded once per kind of viewer (in it, invited, out of it), not
    once per viewer: a join in a 500-member room pushed to 500 members built 250,000
    Member messages and ran 500 member queries before (bench_vs_mosquitto room500 set-up).
    Each viewer's frame is that encoding plus its ``my_role`` field (field 4, appended:
    protobuf takes fields in any order), byte-identical in meaning to :func:`room_view`.
    """
    record = relay.store.rooms.room(room)
    roles = relay.rooms.members(room)
    encoded: dict[str, bytes] = {}

    def encoding(kind: str) -> bytes:
        cached = encoded.get(kind)
        if cached is None:
            if record is None:
                view = pb.Room(id=room)
            elif kind == "out":
                view = pb.Room(id=room, name=record.name)
            else:
                view = _with_members(relay, room, record.name, presence=kind == "in")
            cached = encoded[kind] = view.SerializeToString()
        return cached

    for uid in uids:
        sessions = relay.sessions.all_of(uid)
        if not sessions:
            continue
        role = roles.get(uid)
        if record is None or role is None:
            room_bytes = encoding("out")
        else:
            room_bytes = encoding("invited" if role == INVITED else "in")
            room_bytes += _MY_ROLE_TAG + encode_varint(role)
        payload = _EVENT_PREFIX + encode_varint(len(room_bytes)) + room_bytes
        frame = pack_header(len(payload), FrameType.ROOM) + payload
        for session in list(sessions):
            if session is not skip and session.v21:
                relay.send(session, frame)


_MY_ROLE_TAG = b"\x20"  # Room field 4 (my_role), varint
_EVENT_PREFIX = b"\x18\x09\x22"  # RoomResponse op = EVENT (field 3), then field 4 (rooms)


def handle_room(relay: Context, conn: Connection, payload: bytes) -> None:
    request = parse_message(pb.RoomRequest, payload)
    if not conn.v21:
        raise ProtocolError("ROOM needs a v2.1 login (name a device, or send_only)")
    handler = _OPS.get(request.op)
    if handler is None:
        _respond(relay, conn, request, Code.FAILED)
        return
    # Messages to rooms earlier in this pass go to the members they were sent to.
    relay.inboxes.settle_rooms()
    try:
        handler(relay, conn, request)
    except StoreUnavailable:
        relay.outage.request_failed(relay, conn)


def _list(relay: Context, conn: Connection, request: pb.RoomRequest) -> None:
    response = pb.RoomResponse(code=Code.SUCCESS, request_id=request.request_id, op=request.op)
    for room in sorted(relay.rooms.rooms_of(conn.uid)):
        response.rooms.append(room_view(relay, room, conn.uid))
    relay.send_message(conn, FrameType.ROOM, response)


def _members(relay: Context, conn: Connection, request: pb.RoomRequest) -> None:
    if relay.rooms.role(request.room, conn.uid) is None:
        _respond(relay, conn, request, Code.NO_SUCH_ROOM)
        return
    _respond(relay, conn, request, Code.SUCCESS, request.room)


def _create(relay: Context, conn: Connection, request: pb.RoomRequest) -> None:
    try:
        name = normalize_room_name(request.name)
    except ValueError:
        _respond(relay, conn, request, Code.INVALID_NAME)
        return
    if len(relay.rooms.rooms_of(conn.uid)) >= relay.config.max_rooms_per_user:
        _respond(relay, conn, request, Code.TOO_MANY_ROOMS)
        return
    room = relay.store.rooms.create_room(name, conn.uid, relay.wall)
    relay.rooms.changed(room, conn.uid)
    _respond(relay, conn, request, Code.SUCCESS, room)
    push_event(relay, room, {conn.uid}, conn)


def _invite(relay: Context, conn: Connection, request: pb.RoomRequest) -> None:
    room, invitee = request.room, request.uid
    rooms = relay.rooms
    if not rooms.is_in(room, conn.uid):
        _respond(relay, conn, request, Code.NO_SUCH_ROOM)
        return
    members = rooms.members(room)
    if invitee in members or relay.store.user_by_uid(invitee) is None:
        _respond(relay, conn, request, Code.FAILED)
        return
    if len(members) >= relay.config.max_room_members:
        _respond(relay, conn, request, Code.ROOM_FULL)
        return
    if len(rooms.rooms_of(invitee)) >= relay.config.max_rooms_per_user:
        _respond(relay, conn, request, Code.TOO_MANY_ROOMS)
        return
    if relay.store.blocks.has_blocked(invitee, conn.uid):
        _respond(relay, conn, request, Code.SUCCESS, room)  # dropped (PROTOCOL.md section 12)
        return
    relay.store.rooms.set_member(room, invitee, INVITED, relay.wall)
    rooms.changed(room, invitee)
    _changed(relay, conn, request, f"invite {invitee}", {invitee})


def _join(relay: Context, conn: Connection, request: pb.RoomRequest) -> None:
    room = request.room
    role = relay.rooms.role(room, conn.uid)
    if role is None:
        _respond(relay, conn, request, Code.NO_SUCH_ROOM)
        return
    if role != INVITED:
        _respond(relay, conn, request, Code.FAILED)  # already in it
        return
    relay.store.rooms.set_member(room, conn.uid, MEMBER, relay.wall)
    relay.rooms.changed(room, conn.uid)
    room_delivery.store_room_history(relay, room, conn.uid)
    _changed(relay, conn, request, "join", set())


def _decline(relay: Context, conn: Connection, request: pb.RoomRequest) -> None:
    if relay.rooms.role(request.room, conn.uid) != INVITED:
        _respond(relay, conn, request, Code.NO_SUCH_ROOM)
        return
    _remove(relay, conn, request, conn.uid, "decline")


def _leave(relay: Context, conn: Connection, request: pb.RoomRequest) -> None:
    role = relay.rooms.role(request.room, conn.uid)
    if role is None:
        _respond(relay, conn, request, Code.NO_SUCH_ROOM)
        return
    _remove(relay, conn, request, conn.uid, "decline" if role == INVITED else "leave")


def _owner_refusal(relay: Context, conn: Connection, request: pb.RoomRequest) -> bool:
    """Answer and return True unless the caller owns the room (KICK and RENAME)."""
    role = relay.rooms.role(request.room, conn.uid)
    if role is None or role == INVITED:
        _respond(relay, conn, request, Code.NO_SUCH_ROOM)
        return True
    if role != OWNER:
        _respond(relay, conn, request, Code.NOT_ALLOWED)
        return True
    return False


def _kick(relay: Context, conn: Connection, request: pb.RoomRequest) -> None:
    if _owner_refusal(relay, conn, request):
        return
    target = request.uid
    if target == conn.uid or relay.rooms.role(request.room, target) is None:
        _respond(relay, conn, request, Code.FAILED)
        return
    _remove(relay, conn, request, target, f"kick {target}")


def _rename(relay: Context, conn: Connection, request: pb.RoomRequest) -> None:
    if _owner_refusal(relay, conn, request):
        return
    try:
        name = normalize_room_name(request.name)
    except ValueError:
        _respond(relay, conn, request, Code.INVALID_NAME)
        return
    relay.store.rooms.rename_room(request.room, name)
    _changed(relay, conn, request, f"rename {name}", set())


def _remove(
    relay: Context, conn: Connection, request: pb.RoomRequest, uid: int, event: str
) -> None:
    """``uid`` leaves ``request.room`` (left, declined or kicked): the event reaches those
    still in it and ``uid``'s devices; the room goes when no member is left."""
    room = request.room
    rooms = relay.rooms
    before = dict(rooms.members(room))
    store = relay.store.rooms
    store.remove_member(room, uid)
    rooms.changed(room, uid)
    remaining = {u: r for u, r in before.items() if u != uid}
    if not any(r != INVITED for r in remaining.values()):
        store.delete_room(room)
        rooms.changed(room, *remaining)
        _respond(relay, conn, request, Code.SUCCESS)
        push_event(relay, room, set(before), conn)
        return
    if before.get(uid) == OWNER and OWNER not in remaining.values():
        heir = next(m.uid for m in store.members(room) if m.role == MEMBER)
        store.set_role(room, heir, OWNER)
        rooms.changed(room, heir)
    _changed(relay, conn, request, event, {uid})


def _changed(
    relay: Context, conn: Connection, request: pb.RoomRequest, event: str, also: set[int]
) -> None:
    """Answer; store the ROOM_EVENT for those in the room and for the users in ``also`` who
    just left it (their devices show it too; an invitee gets only the push); push the
    change to everyone concerned."""
    room = request.room
    members = relay.rooms.members(room)
    in_room = {u for u, r in members.items() if r != INVITED}
    removed = {u for u in also if u not in members}
    room_delivery.store_room_event(relay, room, conn.uid, event, in_room | removed)
    _respond(relay, conn, request, Code.SUCCESS, room)
    push_event(relay, room, set(members) | also, conn)


_OPS = {
    Op.LIST: _list,
    Op.MEMBERS: _members,
    Op.CREATE: _create,
    Op.INVITE: _invite,
    Op.JOIN: _join,
    Op.DECLINE: _decline,
    Op.LEAVE: _leave,
    Op.KICK: _kick,
    Op.RENAME: _rename,
}
