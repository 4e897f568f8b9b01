"""LIST_USER, LIST_BUDDY, ADD_BUDDY, REMOVE_BUDDY (PROTOCOL.md section 6) and BLOCK (section
12: a blocked user's buddy requests to the blocker are dropped, answered PENDING as any
request, so the block is not revealed; asking a user one blocked lifts the block).

Invariants: every relation change is written to the store and pushed to both users'
sessions in the same iteration (the push goes out after the commit). ListUser shows
``online`` only where :meth:`relay.sessions.Sessions.shows_online` allows it (the caller,
its buddies) or for users who share a room with the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol import ProtocolError
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
    blocks = relay.store.blocks
    if blocks.has_blocked(request.uid, conn.uid):
        # Dropped, answered as any request to a non-buddy: the block is not revealed.
        relay.send_message(
            conn, FrameType.ADD_BUDDY, pb.AddBuddyResponse(code=pb.AddBuddyResponse.PENDING)
        )
        return
    if blocks.unblock(conn.uid, request.uid):
        presence.relation_changed(relay, conn.uid)  # asking someone lifts one's block of them
    outcome = relay.store.add_buddy(conn.uid, request.uid)
    relay.send_message(conn, FrameType.ADD_BUDDY, pb.AddBuddyResponse(code=_ADD_CODES[outcome]))
    if outcome is not AddBuddyOutcome.FAILED:
        presence.relation_changed(relay, conn.uid, request.uid)


def handle_block(relay: Context, conn: Connection, payload: bytes) -> None:
    """BLOCK (PROTOCOL.md section 12, v2.1 sessions): end any relation with the user and
    drop their requests, invitations and one-to-one messages from now on; or lift it."""
    request = parse_message(pb.BlockRequest, payload)
    if not conn.v21:
        raise ProtocolError("BLOCK needs a v2.1 login (name a device, or send_only)")
    peer = request.uid
    codes = pb.BlockResponse
    if peer == conn.uid or relay.store.user_by_uid(peer) is None:
        relay.send_message(conn, FrameType.BLOCK, pb.BlockResponse(code=codes.FAILED))
        return
    if request.blocked:
        relay.store.block(conn.uid, peer)
    else:
        relay.store.blocks.unblock(conn.uid, peer)
    relay.send_message(conn, FrameType.BLOCK, pb.BlockResponse(code=codes.SUCCESS))
    presence.relation_changed(relay, conn.uid, peer)


def handle_remove_buddy(relay: Context, conn: Connection, payload: bytes) -> None:
    request = parse_message(pb.RemoveBuddyRequest, payload)
    removed = relay.store.remove_relation(conn.uid, request.uid)
    code = pb.RemoveBuddyResponse.SUCCESS if removed else pb.RemoveBuddyResponse.FAILED
    relay.send_message(conn, FrameType.REMOVE_BUDDY, pb.RemoveBuddyResponse(code=code))
    if removed:
        presence.relation_changed(relay, conn.uid, request.uid)
