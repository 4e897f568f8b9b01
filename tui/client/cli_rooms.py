"""Rooms in the command line (PROTOCOL.md section 10): ``parley send --room NAME`` finds the
room by name, ``parley tail`` prints room messages as ``[room] sender: text``.

Invariants:
- A room is found by name among the rooms the user has joined, compared as usernames are
  (case-insensitively); none, or several with that name, is an error that says which.
- Names and texts from the network are printed only through ``printable_text``.
- Room messages from a user this user blocked are not printed (PROTOCOL.md section 12:
  the relay still delivers them; clients hide them).
"""

from __future__ import annotations

import datetime

from protocol import chat_pb2 as pb
from protocol.validation import printable_text
from tui.client.history import HistoryEntry
from tui.client.rooms import RoomInfo, describe_event
from tui.client.session import ClientSession


class RoomNotFound(LookupError):
    """No joined room, or more than one, has the name asked for (the message says which)."""


async def resolve_room(session: ClientSession, name: str, *, timeout: float) -> RoomInfo:
    """The one joined room called ``name`` (asks the relay for the list first)."""
    result = await session.list_rooms(timeout=timeout)
    if not result.ok:
        raise RoomNotFound(f"cannot list your rooms: {result.reason}")
    matches = session.rooms.named(name)
    joined = [room for room in matches if not room.invited]
    if not joined:
        if matches:
            raise RoomNotFound(f"you are invited to the room {name!r} but have not joined it")
        raise RoomNotFound(f"you are in no room named {name!r}")
    if len(joined) > 1:
        ids = ", ".join(f"#{room.id}" for room in sorted(joined, key=lambda r: r.id))
        raise RoomNotFound(f"{len(joined)} of your rooms are named {name!r} ({ids})")
    return joined[0]


def user_name(session: ClientSession, uid: int) -> str:
    """The best name known for ``uid`` (untrusted), ``#uid`` if none."""
    if uid == session.uid:
        return session.username
    buddy = session.buddies.get(uid)
    if buddy is not None:
        return buddy.username
    return session.store.peer_name(uid) or f"#{uid}"


def room_name(session: ClientSession, room: int) -> str:
    """The name of ``room`` as last known (untrusted), ``room #id`` if never seen."""
    info = session.rooms.get(room)
    if info is not None and info.name:
        return info.name
    return session.store.peer_name(-room) or f"room #{room}"


def room_line(session: ClientSession, entry: HistoryEntry) -> str | None:
    """``date time [room] sender: text`` for a room message, a sentence for a timeline
    event; None for what tail does not show (board strokes, transfer control, blocked)."""
    when = datetime.datetime.fromtimestamp(entry.timestamp).strftime("%Y-%m-%d %H:%M:%S")
    if entry.outgoing:
        sender = session.username
    else:
        if session.is_blocked(entry.sender):
            return None
        sender = user_name(session, entry.sender)
    room = printable_text(room_name(session, entry.room), keep_newlines=False)
    who = printable_text(sender, keep_newlines=False)
    if entry.type == pb.Message.ROOM_EVENT:
        sentence = describe_event(entry.text, sender, lambda uid: user_name(session, uid))
        return f"{when} [{room}] * {printable_text(sentence, keep_newlines=False)}"
    if entry.type == pb.Message.MESSAGE:
        body = printable_text(entry.text).replace("\n", "\n    ")
    elif entry.type == pb.Message.FILE_OFFER:
        size = entry.file.size if entry.file is not None else 0
        body = f"[file offered: {printable_text(entry.text, keep_newlines=False)}, {size} bytes]"
    else:
        return None
    return f"{when} [{room}] {who}: {body}"
