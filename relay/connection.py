"""One client connection: TLS handshake, buffered reads and writes, session state.

Invariants (tornado iostream's shape):
- The socket is non-blocking. A read takes the frames the decoder already holds, then loops
  ``recv_into`` until it would block or the pass's budget (bytes read, frames ready) is
  spent; complete frames beyond the budget stay in the decoder as bytes. A budget-ended read
  says so (``MORE``), because what is left may sit inside OpenSSL where ``select`` cannot
  see it. EOF and errors are reported, never raised past the loop.
- Outgoing bytes are *staged* first: :meth:`queue` only appends to the staged list (handlers
  call it and never touch the socket), and only :meth:`release_staged`, which the loop calls
  once the iteration's commit succeeded, moves them to the deque of chunks that
  :meth:`flush` writes. So no frame reaches the socket before the writes it may depend on
  are durable; after a failed commit :meth:`take_staged` hands back what was never
  released, to be answered for. :meth:`flush` coalesces small chunks and cuts large ones so
  that each send is at most ``MAX_WRITE`` bytes (``bytes_sent`` then trails the peer's
  reading by at most that much); after a TLS WANT_WRITE the very same bytes are retried, as
  OpenSSL requires.
- ``pending_bytes`` (staged and released, not yet sent) is exact, so high-water checks are
  O(1); ``bytes_queued`` is the stream offset after the last queued byte.
- An idle connection holds no output containers: the deque of released chunks exists only
  while some wait to be sent (10,000 idle sessions are what issue 16 counts in bytes each).
- Closing is the relay's job (one teardown path); this class only reports what happened.
"""

from __future__ import annotations

import enum
import fcntl
import socket
import ssl
import struct
import termios
from collections import deque
from typing import TYPE_CHECKING, cast

from protocol import Frame, FrameDecoder
from protocol.framing import frame_ends

if TYPE_CHECKING:
    from relay.local_socket import PeerCredentials
    from relay.ratelimit import TokenBucket

MAX_WRITE = 256 * 1024
TLS_RECORD = 16 * 1024  # OpenSSL's largest record payload: one send of this is one record
READ_CHUNK = 256 * 1024
_read_buffer = bytearray(READ_CHUNK)
_read_view = memoryview(_read_buffer)
_OUTQ = struct.Struct("i")  # TIOCOUTQ (SIOCOUTQ on a socket): bytes in the send queue


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
    MORE = 3  # a read budget ended the read: come back next pass without waiting for select


class Connection:
    """Socket plumbing plus the session a handler sees (uid, version, counters)."""

    __slots__ = (
        "_chunks",
        "_inflight",
        "_staged",
        "auth_pending",
        "box",
        "bucket",
        "bytes_queued",
        "bytes_sent",
        "catching_up",
        "close_reason",
        "decoder",
        "device",
        "id",
        "input_held",
        "input_paused",
        "input_since",
        "last_rx",
        "local_peer",
        "output_blocked",
        "paused",
        "peer",
        "peer_host",
        "pending_acks",
        "pending_bytes",
        "prefix",
        "prefix_wall",
        "pushed_seq",
        "read_pass",
        "registered_mask",
        "reset_at",
        "send_only",
        "sent_mark",
        "sock",
        "state",
        "sync_requested",
        "tls",
        "token_login",
        "uid",
        "username",
        "v1_unacked",
        "v21",
        "version",
        "want_write",
    )

    def __init__(
        self,
        conn_id: int,
        sock: socket.socket,
        peer: str,
        peer_host: str,
        max_frame: int,
        now: float,
    ) -> None:
        self.id = conn_id
        self.sock: socket.socket | ssl.SSLSocket = sock
        self.peer = peer
        self.peer_host = peer_host
        self.state = ConnState.PEEKING
        self.decoder = FrameDecoder(max_frame)
        # Read side, kept by the loop: decoder bytes counted in the relay's input total; when
        # the decoder last yielded a frame or began to hold input (the frame timeout's
        # clock); the loop pass of the last read; why reading is suspended, if it is.
        self.input_held = 0
        self.input_since = now
        self.read_pass = -1
        self.output_blocked = False  # queued output above high water: requests wait
        self.input_paused = False  # the relay's input budget is spent and this one holds some
        self._staged: list[bytes] = []  # queued since the last release (see queue)
        self._chunks: deque[bytes | memoryview] | None = None  # released, not yet sent
        self.pending_bytes = 0
        self._inflight: bytes | memoryview | None = None
        self.tls = False
        # The Unix socket's peer as the kernel reported it at accept; None on TCP.
        self.local_peer: PeerCredentials | None = None
        # Session (set by the login handler).
        self.uid = 0
        self.username = ""
        self.version = 0
        # PROTOCOL.md section 9: the device named at login ("" for v1 and plain v2), whether
        # the session only sends (no inbox, never kicks or is kicked), whether it is v2.1
        # (named a device or send_only: sees outgoing copies and rooms), and the id of the
        # inbox it reads (the store's devices.box; 0 while none, e.g. send_only).
        self.device = ""
        self.send_only = False
        self.v21 = False
        self.box = 0
        self.auth_pending = False
        self.token_login = False
        self.last_rx = now
        # Delivery state: highest inbox seq pushed to this session; backlog pump flags.
        self.pushed_seq = 0
        self.catching_up = False
        self.paused = False
        self.sync_requested = False
        # v1: (stream offset after the frame, seq, has a client id) of pushed durable messages
        # not yet written to the socket; None while there is none (an empty deque is 0.6 kB:
        # 6 MB over 10,000 idle v1 sessions, bench_idle).
        self.v1_unacked: deque[tuple[int, int, bool]] | None = None
        self.bytes_queued = 0
        self.pending_acks: list[bytes] = []  # Ack frames of the read being dispatched
        self.bytes_sent = 0
        self.bucket: TokenBucket | None = None
        self.want_write = False
        self.registered_mask = 0
        self.close_reason = ""
        # After a Reset: when it was queued, and bytes_taken_by_peer() when the close timer
        # last looked (a peer that still reads is given the rest).
        self.reset_at = 0.0
        self.sent_mark = 0
        # Cached uid+timestamp override fields for forwarded messages (see relay.delivery).
        self.prefix = b""
        self.prefix_wall = -1

    def __repr__(self) -> str:
        return f"<conn {self.id} {self.peer} uid={self.uid} {self.state.value}>"

    # -- writing ---------------------------------------------------------------------------

    def queue(self, data: bytes) -> None:
        """Stage bytes to send (whole frames); they become writable once the loop releases
        them after the iteration's commit."""
        self._staged.append(data)
        self.pending_bytes += len(data)
        self.bytes_queued += len(data)

    def release_staged(self) -> None:
        """The writes staged frames may depend on are durable: make the frames writable."""
        if self._staged:
            if self._chunks is None:
                self._chunks = deque(self._staged)
            else:
                self._chunks.extend(self._staged)
            self._staged.clear()

    def take_staged(self) -> bytes:
        """Unqueue the staged frames (never handed to the socket, see :meth:`_unqueue`) and
        return them, back to back."""
        staged = b"".join(self._staged)
        self._staged.clear()
        self._unqueue(len(staged))
        return staged

    def has_pending(self) -> bool:
        return self.pending_bytes > 0

    def flush(self) -> bool:
        """Write as much of the released bytes as the socket takes. True if everything
        queued (staged frames included) has been written.

        Raises ``OSError`` (``ssl.SSLError`` included) when the connection is broken.
        """
        chunks = self._chunks
        if chunks is None:
            if self._inflight is None:
                return not self._staged
            chunks = self._chunks = deque()
        # v1 delivery accounting is exact: while v1 frames await their write, a TLS send is
        # at most one TLS record. The peer can decrypt a record only once all of it is with
        # the kernel, which is exactly when the send succeeds; a send of several records
        # could fail with the first ones already readable, and the frames in them would be
        # counted undelivered and sent again at the next login. (Live v1 pushes of one pass
        # still share one send: 64 chat frames are ~3 KiB.)
        limit = TLS_RECORD if self.tls and self.v1_unacked else MAX_WRITE
        while True:
            data = self._inflight
            if data is None:
                if not chunks:
                    self._chunks = None  # nothing waits: no deque while idle
                    return not self._staged
                # At most MAX_WRITE per send: a TLS send reports nothing until all of its
                # bytes are written, and bytes_sent must advance as the peer reads.
                first = chunks.popleft()
                if len(first) >= limit or not chunks:
                    data = first
                    if len(first) > limit:
                        whole = memoryview(first)
                        data = whole[:limit]
                        chunks.appendleft(whole[limit:])
                else:
                    parts = [first]
                    size = len(first)
                    while chunks and size < limit:
                        part = chunks.popleft()
                        room = limit - size
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
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
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
        self._staged.clear()
        self._chunks = None
        self._inflight = None
        self.pending_bytes = 0

    def drop_unsent(self) -> int:
        """Drop queued output (staged or released) not yet handed to the socket; return the
        bytes dropped.

        Kept: the bytes in flight (a TLS retry must repeat them) and the rest of the frame
        they end inside, so the peer's stream still ends on a frame boundary. Frames are
        never split across queued chunks, and :meth:`flush` leaves the unsent suffix of a
        chunk it cut at the head of the queue as a memoryview of that chunk. v1 rows whose
        frames are dropped leave ``v1_unacked``: not delivered, they stay in the store.
        """
        chunks = self._chunks if self._chunks is not None else deque()
        kept: memoryview | None = None
        if chunks and isinstance(chunks[0], memoryview):
            rest = chunks[0]
            whole = cast(bytes, rest.obj)
            cut = len(whole) - len(rest)
            end = next(end for end in frame_ends(whole) if end > cut)
            kept = rest[: end - cut]
        dropped = (
            sum(len(chunk) for chunk in chunks)
            + sum(map(len, self._staged))
            - (len(kept) if kept is not None else 0)
        )
        self._chunks = deque([kept]) if kept else None
        self._staged.clear()
        self._unqueue(dropped)
        return dropped

    def _unqueue(self, size: int) -> None:
        """The last ``size`` bytes queued will never be sent: the counters go back as if they
        had not been queued, and v1 rows among them leave ``v1_unacked`` (not delivered,
        they stay in the store)."""
        self.pending_bytes -= size
        self.bytes_queued -= size
        unacked = self.v1_unacked
        while unacked and unacked[-1][0] > self.bytes_queued:
            unacked.pop()

    def bytes_taken_by_peer(self) -> int:
        """``bytes_sent`` less what still waits in the kernel's send queue: it grows only
        while the peer reads (under TLS the kernel also counts record overhead, so this is
        approximate). Where the kernel cannot tell, ``bytes_sent``."""
        try:
            waiting = _OUTQ.unpack(
                fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, bytes(_OUTQ.size))
            )[0]
        except (OSError, AttributeError):
            waiting = 0
        return self.bytes_sent - int(waiting)

    # -- reading ---------------------------------------------------------------------------

    def read_frames(self, byte_budget: int, max_frames: int) -> tuple[ReadResult, list[Frame]]:
        """The frames to handle in this loop pass, at most ``max_frames``.

        Complete frames the decoder already holds come first; then the socket is read until
        it would block, ``byte_budget`` bytes were read, or ``max_frames`` frames are ready.
        ``MORE`` means a budget ended the read: frames or bytes are left for the next pass
        (in the decoder, in the kernel, or decrypted inside OpenSSL, where ``select`` cannot
        see them). ``ProtocolError`` raises.
        """
        decoder = self.decoder
        feed = decoder.feed
        frames: list[Frame] = []
        if decoder.has_frame:
            frames = feed(b"", max_frames)
            if len(frames) >= max_frames:
                return ReadResult.MORE, frames
        sock = self.sock
        read = 0
        while read < byte_budget:
            size = min(READ_CHUNK, byte_budget - read)
            try:
                n = sock.recv_into(_read_view, size)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
                return ReadResult.OK, frames
            except ssl.SSLWantWriteError:
                return ReadResult.WANT_WRITE, frames
            except ssl.SSLZeroReturnError:
                return ReadResult.EOF, frames
            if n == 0:
                return ReadResult.EOF, frames
            read += n
            frames += feed(_read_view[:n], max_frames - len(frames))
            if len(frames) >= max_frames:
                return ReadResult.MORE, frames
            if n < size and not self.tls:
                return ReadResult.OK, frames
        return ReadResult.MORE, frames
