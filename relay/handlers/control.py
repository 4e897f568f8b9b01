"""PING (echo, allowed before login) and RESET from a client (it is leaving)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol import chat_pb2 as pb
from protocol.types import FrameType, parse_message

if TYPE_CHECKING:
    from relay.connection import Connection
    from relay.context import Context


def handle_ping(relay: Context, conn: Connection, payload: bytes) -> None:
    ping = parse_message(pb.Ping, payload)
    relay.send_message(conn, FrameType.PING, pb.Ping(nonce=ping.nonce))


def handle_reset(relay: Context, conn: Connection, payload: bytes) -> None:
    parse_message(pb.Reset, payload)
    relay.close(conn, "client sent Reset (leaving)")
