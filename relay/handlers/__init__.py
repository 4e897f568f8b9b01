"""Request handlers, one module per concern; ``HANDLERS`` maps frame type to handler.

Invariants: a handler gets ``(ctx, conn, payload)`` (:class:`relay.context.Context`, the
narrow view of the loop), never touches a socket, and reports
peer misbehaviour by raising :class:`protocol.ProtocolError` (the loop turns it into a
Reset). Handlers run only for frames allowed in the connection's state (the loop checks
login before dispatch).
"""

from __future__ import annotations

from protocol.types import FrameType
from relay.context import Handler
from relay.handlers import accounts, control, directory, messaging, rooms

HANDLERS: dict[int, Handler] = {
    FrameType.LOGIN: accounts.handle_login,
    FrameType.REGISTER: accounts.handle_register,
    FrameType.LIST_USER: directory.handle_list_user,
    FrameType.LIST_BUDDY: directory.handle_list_buddy,
    FrameType.ADD_BUDDY: directory.handle_add_buddy,
    FrameType.REMOVE_BUDDY: directory.handle_remove_buddy,
    FrameType.MESSAGE: messaging.handle_message,
    FrameType.ACK: messaging.handle_ack,
    FrameType.SYNC: messaging.handle_sync,
    FrameType.PING: control.handle_ping,
    FrameType.ROOM: rooms.handle_room,
    FrameType.BLOCK: directory.handle_block,
    FrameType.RESET: control.handle_reset,
}
