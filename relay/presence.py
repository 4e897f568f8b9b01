"""Buddy lists and presence pushes (PROTOCOL.md section 6).

Invariants:
- Presence is shown only between buddies: a user sees ``online`` = true for itself and its
  buddies only (:func:`shows_online`). Neither side of a pending request sees the other's
  state, in ListUser, in its buddy list, or by the timing of a push.
- Whenever a user's buddy list or a buddy's online state changes, every affected online
  user is pushed a fresh, complete ListBuddyResponse; v1 sessions only ever see BUDDY
  entries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol import chat_pb2 as pb
from protocol.types import FrameType
from relay.connection import Connection
from relay.store import Relation

if TYPE_CHECKING:
    from relay.server import Relay


def shows_online(relay: Relay, viewer: int, uid: int) -> bool:
    """Whether ``viewer`` (logged in) may see ``uid`` online: itself or a buddy, online."""
    return uid in relay.online and (uid == viewer or uid in relay.buddy_cache.get(viewer, ()))


def buddy_list(relay: Relay, uid: int, version: int) -> pb.ListBuddyResponse:
    online = relay.online
    users = [
        pb.User(uid=r.peer, username=r.peer_username,
                online=r.relation == Relation.BUDDY and r.peer in online,
                relation=pb.User.Relation.ValueType(r.relation),
                protocol_version=r.peer_protocol_version)
        for r in relay.store.relations_of(uid)
        if version >= 2 or r.relation == Relation.BUDDY
    ]
    return pb.ListBuddyResponse(users=users)


def push_list(relay: Relay, conn: Connection) -> None:
    relay.send_message(conn, FrameType.LIST_BUDDY, buddy_list(relay, conn.uid, conn.version))


def refresh_buddy_cache(relay: Relay, uid: int) -> None:
    if uid in relay.online:
        relay.buddy_cache[uid] = relay.store.buddy_ids(uid)


def user_changed(relay: Relay, uid: int) -> None:
    """``uid`` went online or offline: push fresh lists to its online buddies (only)."""
    for buddy in relay.store.buddy_ids(uid):
        peer = relay.online.get(buddy)
        if peer is not None:
            push_list(relay, peer)


def user_removed(relay: Relay, uid: int) -> None:
    """``uid`` was deleted with its relations: its online buddies get fresh lists."""
    for viewer, buddies in list(relay.buddy_cache.items()):
        if uid in buddies:
            relation_changed(relay, viewer)


def relation_changed(relay: Relay, *uids: int) -> None:
    """The relation between these users changed: refresh caches and push their lists."""
    for uid in uids:
        refresh_buddy_cache(relay, uid)
        conn = relay.online.get(uid)
        if conn is not None:
            push_list(relay, conn)
