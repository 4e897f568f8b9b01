"""LIST_USER, LIST_BUDDY, ADD_BUDDY, REMOVE_BUDDY (PROTOCOL.md section 6).

Invariants: every relation change is written to the store and pushed to both users'
sessions in the same iteration (the push goes out after the commit). ListUser shows
``online`` only where :meth:`relay.sessions.Sessions.shows_online` allows it (the caller,
its buddies) or for users who share a room with the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol import chat_pb2 as pb
from protocol.types import FrameType, parse_message
from relay import presence
from relay.store import AddBuddyOutcome

if TYPE_CHECKING:
    from relay.connection import Connection
    from relay.context import Context

_ADD_CODES = {
    AddBuddyOutcome.SUCCESS: pb.AddBuddyResponse.SUCCESS,
    AddBuddyOutcome.PENDING: pb.AddBuddyResponse.PENDING,
    AddBuddyOutcome.FAILED: pb.AddBuddyResponse.FAILED,
}


def handle_list_user(relay: Context, conn: Connection, payload: bytes) -> None:
    request = parse_message(pb.ListUserRequest, payload)
    limit = relay.config.list_user_limit
    if request.limit:
        limit = min(limit, request.limit)
    users, truncated = relay.store.list_users(request.query[:64], limit)
    relay.send_message(
        conn,
        FrameType.LIST_USER,
        pb.ListUserResponse(
            users=[
                pb.User(
                    uid=u.uid,
                    username=u.username,
                    online=relay.sessions.shows_online(conn.uid, u.uid)
                    or (u.uid in relay.sessions.online and relay.rooms.share_room(conn.uid, u.uid)),
                )
                for u in users
            ],
            truncated=truncated,
        ),
    )


def handle_list_buddy(relay: Context, conn: Connection, payload: bytes) -> None:
    parse_message(pb.ListBuddyRequest, payload)
    presence.push_list(relay, conn)


def handle_add_buddy(relay: Context, conn: Connection, payload: bytes) -> None:
    request = parse_message(pb.AddBuddyRequest, payload)
    outcome = relay.store.add_buddy(conn.uid, request.uid)
    relay.send_message(conn, FrameType.ADD_BUDDY, pb.AddBuddyResponse(code=_ADD_CODES[outcome]))
    if outcome is not AddBuddyOutcome.FAILED:
        presence.relation_changed(relay, conn.uid, request.uid)


def handle_remove_buddy(relay: Context, conn: Connection, payload: bytes) -> None:
    request = parse_message(pb.RemoveBuddyRequest, payload)
    removed = relay.store.remove_relation(conn.uid, request.uid)
    code = pb.RemoveBuddyResponse.SUCCESS if removed else pb.RemoveBuddyResponse.FAILED
    relay.send_message(conn, FrameType.REMOVE_BUDDY, pb.RemoveBuddyResponse(code=code))
    if removed:
        presence.relation_changed(relay, conn.uid, request.uid)
