"""One client connection: TLS handshake, buffered reads and writes, session state.

Invariants (tornado iostream's shape):
- The socket is non-blocking. Reads loop ``recv_into`` until it would block (which also drains
  what OpenSSL holds internally); EOF and errors are reported, never raised past the loop.
- Outgoing bytes go into a deque of chunks; :meth:`queue` only appends (handlers call it and
  never touch the socket). :meth:`flush` coalesces small chunks and cuts large ones so that
  each send is at most ``MAX_WRITE`` bytes (``bytes_sent`` then trails the peer's reading by
  at most that much); after a TLS WANT_WRITE the very same bytes are retried, as OpenSSL
  requires.
- ``pending_bytes`` is exact, so high-water checks are O(1).
- Closing is the relay's job (one teardown path); this class only reports what happened.
"""

from __future__ import annotations

import enum
import socket
import ssl
from collections import deque
from typing import TYPE_CHECKING

from protocol import FrameDecoder

if TYPE_CHECKING:
    from relay.ratelimit import TokenBucket

MAX_WRITE = 256 * 1024
READ_CHUNK = 256 * 1024
_read_buffer = bytearray(READ_CHUNK)
_read_view = memoryview(_read_buffer)


class ConnState(enum.Enum):
    PEEKING = "peeking"  # waiting for the first byte to tell TLS from plaintext garbage
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSING = "closing"  # a Reset is queued; reads stop; close once flushed
    CLOSED = "closed"


class ReadResult(enum.Enum):
    OK = 0
    EOF = 1
    WANT_WRITE = 2  # TLS needs to write before it can read more (renegotiation, tickets)


class Connection:
    """Socket plumbing plus the session a handler sees (uid, version, counters)."""

    __slots__ = (
        "_chunks",
        "_inflight",
        "auth_pending",
        "bucket",
        "bytes_queued",
        "bytes_sent",
        "catching_up",
        "close_reason",
        "decoder",
        "id",
        "last_rx",
        "paused",
        "peer",
        "peer_host",
        "pending_acks",
        "pending_bytes",
        "prefix",
        "prefix_wall",
        "pushed_seq",
        "registered_mask",
        "sock",
        "state",
        "sync_requested",
        "tls",
        "token_login",
        "uid",
        "username",
        "v1_unacked",
        "version",
        "want_write",
    )

    def __init__(self, conn_id: int, sock: socket.socket, peer: str, peer_host: str,
                 max_frame: int, now: float) -> None:
        self.id = conn_id
        self.sock: socket.socket | ssl.SSLSocket = sock
        self.peer = peer
        self.peer_host = peer_host
        self.state = ConnState.PEEKING
        self.decoder = FrameDecoder(max_frame)
        self._chunks: deque[bytes | memoryview] = deque()
        self.pending_bytes = 0
        self._inflight: bytes | memoryview | None = None
        self.tls = False
        # Session (set by the login handler).
        self.uid = 0
        self.username = ""
        self.version = 0
        self.auth_pending = False
        self.token_login = False
        self.last_rx = now
        # Delivery state: highest inbox seq pushed to this session; backlog pump flags.
        self.pushed_seq = 0
        self.catching_up = False
        self.paused = False
        self.sync_requested = False
        # v1: (stream offset after the frame, seq, has a client id) of pushed durable messages
        # not yet written to the socket.
        self.v1_unacked: deque[tuple[int, int, bool]] = deque()
        self.bytes_queued = 0
        self.pending_acks: list[bytes] = []  # Ack frames of the read being dispatched
        self.bytes_sent = 0
        self.bucket: TokenBucket | None = None
        self.want_write = False
        self.registered_mask = 0
        self.close_reason = ""
        # Cached uid+timestamp override fields for forwarded messages (see relay.delivery).
        self.prefix = b""
        self.prefix_wall = -1

    def __repr__(self) -> str:
        return f"<conn {self.id} {self.peer} uid={self.uid} {self.state.value}>"

    @property
    def logged_in(self) -> bool:
        return self.uid != 0

    @property
    def open(self) -> bool:
        return self.state is ConnState.OPEN

    # -- writing ---------------------------------------------------------------------------

    def queue(self, data: bytes) -> None:
        """Append bytes to send; the loop writes them after the iteration's commit."""
        self._chunks.append(data)
        self.pending_bytes += len(data)
        self.bytes_queued += len(data)

    def has_pending(self) -> bool:
        return self.pending_bytes > 0

    def flush(self) -> bool:
        """Write as much as the socket takes. True if everything queued has been written.

        Raises ``OSError`` (``ssl.SSLError`` included) when the connection is broken.
        """
        chunks = self._chunks
        while True:
            data = self._inflight
            if data is None:
                if not chunks:
                    return True
                # At most MAX_WRITE per send: a TLS send reports nothing until all of its
                # bytes are written, and bytes_sent must advance as the peer reads.
                first = chunks.popleft()
                if len(first) >= MAX_WRITE or not chunks:
                    data = first
                    if len(first) > MAX_WRITE:
                        whole = memoryview(first)
                        data = whole[:MAX_WRITE]
                        chunks.appendleft(whole[MAX_WRITE:])
                else:
                    parts = [first]
                    size = len(first)
                    while chunks and size < MAX_WRITE:
                        part = chunks.popleft()
                        room = MAX_WRITE - size
                        if len(part) > room:
                            whole = memoryview(part)
                            chunks.appendleft(whole[room:])
                            part = whole[:room]
                        parts.append(part)
                        size += len(part)
                    data = b"".join(parts)
                self._inflight = data
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError,
                    ssl.SSLWantReadError):
                return False
            self.pending_bytes -= sent
            self.bytes_sent += sent
            if sent < len(data):
                self._inflight = memoryview(data)[sent:]
                if not self.tls:
                    return False
            else:
                self._inflight = None

    def discard_output(self) -> None:
        self._chunks.clear()
        self._inflight = None
        self.pending_bytes = 0

    # -- reading ---------------------------------------------------------------------------

    def read_into_decoder(self) -> tuple[ReadResult, list[tuple[int, bytes]]]:
        """Read until the socket would block; return frames completed (ProtocolError raises)."""
        frames: list[tuple[int, bytes]] = []
        sock = self.sock
        feed = self.decoder.feed
        while True:
            try:
                n = sock.recv_into(_read_view, READ_CHUNK)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                return ReadResult.OK, frames
            except ssl.SSLWantWriteError:
                return ReadResult.WANT_WRITE, frames
            except ssl.SSLZeroReturnError:
                return ReadResult.EOF, frames
            if n == 0:
                return ReadResult.EOF, frames
            frames.extend(feed(_read_view[:n]))
            if n < READ_CHUNK and not self.tls:
                return ReadResult.OK, frames
