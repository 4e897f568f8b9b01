"""Buddy lists and presence pushes (PROTOCOL.md section 6): who must hear about a change.

Who is online and whose buddies they are is :mod:`relay.sessions`'; this module decides
which sessions are pushed a fresh list when a session or a relation changes.

Invariants:
- Presence is shown only between buddies: a user sees ``online`` = true for itself and its
  buddies only (:meth:`relay.sessions.Sessions.shows_online`). Neither side of a pending
  request sees the other's state, in ListUser, in its buddy list, or by the timing of a
  push.
- Whenever a user's buddy list or a buddy's online state changes, every live session of
  every affected user is pushed a fresh, complete ListBuddyResponse; v1 sessions only ever
  see BUDDY entries. A user is online while any of its receiving sessions lives
  (PROTOCOL.md section 9): another device logging in or out changes nothing for buddies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol import chat_pb2 as pb
from protocol.types import FrameType
from relay.connection import Connection
from relay.store import Relation

if TYPE_CHECKING:
    from relay.context import Context


def buddy_list(relay: Context, conn: Connection) -> pb.ListBuddyResponse:
    """``conn``'s user's relations as its session may see them: BUDDY only for v1, requests
    too for v2, and (PROTOCOL.md section 12) the users it blocked, as BLOCKED, for v2.1."""
    online = relay.sessions.online
    users = [
        pb.User(
            uid=r.peer,
            username=r.peer_username,
            online=r.relation == Relation.BUDDY and r.peer in online,
            relation=pb.User.Relation.ValueType(r.relation),
            protocol_version=r.peer_protocol_version,
        )
        for r in relay.store.relations_of(conn.uid)
        if conn.version >= 2 or r.relation == Relation.BUDDY
    ]
    if conn.v21:
        users.extend(
            pb.User(uid=peer, username=name, relation=pb.User.BLOCKED)
            for peer, name in relay.store.blocks.blocked_of(conn.uid)
        )
    return pb.ListBuddyResponse(users=users)


def push_list(relay: Context, conn: Connection) -> None:
    relay.send_message(conn, FrameType.LIST_BUDDY, buddy_list(relay, conn))


def push_lists(relay: Context, uid: int) -> None:
    """Push ``uid``'s fresh list to each of its live sessions."""
    sessions = relay.sessions.all_of(uid)
    if sessions:
        for conn in list(sessions):
            push_list(relay, conn)


def user_changed(relay: Context, uid: int) -> None:
    """``uid`` went online or offline: push fresh lists to its logged-in buddies (only)."""
    for buddy in relay.store.buddy_ids(uid):
        push_lists(relay, buddy)


def user_removed(relay: Context, uid: int) -> None:
    """``uid`` was deleted with its relations: its online buddies get fresh lists."""
    for viewer in relay.sessions.viewers_of(uid):
        relation_changed(relay, viewer)


def relation_changed(relay: Context, *uids: int) -> None:
    """The relation between these users changed: refresh caches and push their lists."""
    for uid in uids:
        relay.sessions.refresh(uid)
        push_lists(relay, uid)
