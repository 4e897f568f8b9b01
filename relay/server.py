"""The relay's event loop: one thread, one ``selectors`` selector, one SQLite connection.

Data flow per iteration (ARCHITECTURE.md): ready sockets are read until they would block,
frames go to ``handlers[type](relay, conn, payload)``, handlers append store rows and queue
outgoing frames on connections; then, at the end of the iteration, **one commit** for
everything stored, and only then **one write per connection** with pending bytes.

Invariants:
- Nothing blocks the loop but ``select``: scrypt runs in :class:`relay.auth.HashWorker`.
- Every frame queued during an iteration is written after that iteration's commit, so an
  Ack or a forwarded durable message never reaches the wire before it is durable.
- :meth:`Relay.close` is the only teardown path; it is idempotent and logs once. Closed
  connections are reaped after the pass over ready sockets, never in the middle of it.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import itertools
import logging
import selectors
import signal
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from protocol import ProtocolError, encode_frame
from protocol import chat_pb2 as pb
from protocol.bloom import PairBloom
from protocol.framing import encode_header
from protocol.types import FrameType, type_info
from relay import delivery, presence
from relay.auth import HashWorker, LoginThrottle
from relay.config import RelayConfig
from relay.connection import Connection, ConnState, ReadResult
from relay.store import InboxRow, Store
from relay.transfers import TransferLedger

log = logging.getLogger("parley.relay")

Handler = Callable[["Relay", Connection, bytes], None]

_TIMER_HANDSHAKE = "handshake"
_TIMER_LOGIN = "login"
_TIMER_CLOSE = "close"
_SWEEP_INTERVAL = 5.0
_CLOSE_GRACE = 2.0
_ACCEPT_BACKOFF = 0.1
_PRUNE_CHUNK = 5000  # expired rows deleted per sweep at most: the loop never stalls on it
_TLS_RECORD_HANDSHAKE = 0x16


class Relay:
    """The whole relay: listener, connections, sessions, store, timers."""

    def __init__(self, config: RelayConfig, store: Store,
                 ssl_context: ssl.SSLContext | None, handlers: dict[int, Handler]) -> None:
        self.config = config
        self.store = store
        self.ssl_context = ssl_context
        self.handlers = handlers
        self.selector = selectors.DefaultSelector()
        self.hasher = HashWorker()
        self.throttle = LoginThrottle(config.login_failures_before_throttle)
        self.listener: socket.socket | None = None
        self.address: tuple[str, int] = ("", 0)
        self.connections: dict[int, Connection] = {}
        self.online: dict[int, Connection] = {}
        self.buddy_cache: dict[int, set[int]] = {}
        self.head_seq: dict[int, int] = {}
        self.inbox_floor: dict[int, int] = {}  # uid -> seq below the oldest stored row
        self.pending_rows: list[InboxRow] = []
        window = config.dedup_window_hours * 3600
        # Dedup records live in buckets of half a window; a record is kept while its bucket
        # may still hold keys younger than the window (so for one to one and a half windows).
        self.dedup_bucket_seconds = store.dedup_bucket_seconds
        self.dedup_bloom = PairBloom(config.dedup_filter_bits_log2, window, time.time())
        for sender, client_id in store.dedup_keys_since(self.live_dedup_buckets()[0]):
            self.dedup_bloom.add(sender, client_id)
        self._next_prune = 0.0
        self._accept_paused_until = 0.0
        # uid -> (highest seq written to its v1 socket, whether any of those rows has a
        # client id and so may owe its sender a receipt)
        self.v1_delivered: dict[int, tuple[int, bool]] = {}
        self.dirty: set[Connection] = set()
        self.to_reap: list[Connection] = []
        self.timers: list[tuple[float, int, str, Connection]] = []
        self._timer_ids = itertools.count()
        self._conn_ids = itertools.count(1)
        self.now = time.monotonic()
        self.wall = int(time.time())
        self.stopping = False
        self.accepted_count = 0
        self.message_count = 0
        self.durable_count = 0
        self.paused_count = 0
        self.transfers = TransferLedger(config.max_transfers_per_user)

    # -- setup -----------------------------------------------------------------------------

    def listen(self) -> tuple[str, int]:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        sock.listen(4096)
        sock.setblocking(False)
        self.listener = sock
        self.selector.register(sock, selectors.EVENT_READ, None)
        self.selector.register(self.hasher.fileno(), selectors.EVENT_READ, self.hasher)
        self.address = sock.getsockname()[:2]
        return self.address

    def install_signal_handlers(self) -> None:
        def request_stop(signum: int, _frame: Any) -> None:
            self.stopping = True

        def dump_stats(signum: int, _frame: Any) -> None:
            self.log_stats()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGUSR1, dump_stats)
        signal.set_wakeup_fd(self.hasher.wake_socket.fileno(), warn_on_full_buffer=False)

    def log_stats(self) -> None:
        log.info("stats: connections=%d online=%d accepted=%d messages=%d durable=%d "
                 "paused=%d scrypt=%d", len(self.connections), len(self.online),
                 self.accepted_count, self.message_count, self.durable_count,
                 self.paused_count, self.hasher.computations)

    # -- the loop --------------------------------------------------------------------------

    def serve_forever(self) -> None:
        sweep_interval = min(_SWEEP_INTERVAL, self.config.idle_timeout / 3)
        next_sweep = time.monotonic() + sweep_interval
        select = self.selector.select
        while not self.stopping:
            timeout = min(sweep_interval, max(0.0, next_sweep - time.monotonic()))
            if self.dirty or self.v1_delivered or self.pending_rows:
                timeout = 0.0  # the write pass queued more work (a resumed backlog, receipts)
            else:
                if self.timers:
                    timeout = min(timeout, self.timers[0][0] - time.monotonic())
                if self._accept_paused_until:
                    timeout = min(timeout, self._accept_paused_until - time.monotonic())
                timeout = max(0.0, timeout)
            events = select(timeout)
            self.now = time.monotonic()
            self.wall = int(time.time())
            for key, mask in events:
                target = key.data
                if target is None:
                    self._accept()
                elif target is self.hasher:
                    self.hasher.run_callbacks()
                else:
                    self._service(target, mask)
            if self.timers and self.timers[0][0] <= self.now:
                self._fire_timers()
            if self._accept_paused_until and self.now >= self._accept_paused_until:
                self._accept_paused_until = 0.0
                if self.listener is not None:
                    self.selector.register(self.listener, selectors.EVENT_READ, None)
            if self.now >= next_sweep:
                next_sweep = self.now + sweep_interval
                self._sweep_idle()
                self._housekeeping()
            self.end_iteration()
        self.shutdown()

    def end_iteration(self) -> None:
        """Group commit, then one write per connection with pending bytes, then reap."""
        self.flush_rows()
        self.store.commit()
        if self.v1_delivered:
            delivered, self.v1_delivered = self.v1_delivered, {}
            for uid, (seq, has_id) in delivered.items():
                delivery.deleted_through(self, uid, seq)
                delivery.send_receipts(
                    self, uid, self.store.delete_inbox_through(uid, seq, receipts=has_id))
        if self.dirty:
            dirty, self.dirty = self.dirty, set()
            for conn in dirty:
                self._write(conn)
        if self.to_reap:
            reap, self.to_reap = self.to_reap, []
            for conn in reap:
                self._reap(conn)

    def flush_rows(self) -> None:
        """Hand buffered inbox rows to the store (in the open transaction)."""
        if self.pending_rows:
            rows, self.pending_rows = self.pending_rows, []
            self.store.append_inbox(rows)

    # -- accept and handshake --------------------------------------------------------------

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                sock, addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # The listener stays readable: stop watching it for a moment, or the
                    # loop would spin on accept.
                    log.error("accept failed: %s (raise the open-file limit); pausing "
                              "accepts for %g s", exc, _ACCEPT_BACKOFF)
                    self.selector.unregister(self.listener)
                    self._accept_paused_until = self.now + _ACCEPT_BACKOFF
                    return
                raise
            if self.stopping or len(self.connections) >= self.config.max_connections:
                sock.close()
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = Connection(next(self._conn_ids), sock, f"{addr[0]}:{addr[1]}", addr[0],
                              self.config.max_frame, self.now)
            self.connections[conn.id] = conn
            self.accepted_count += 1
            log.info("conn=%d peer=%s accepted", conn.id, conn.peer)
            self._set_interest(conn, selectors.EVENT_READ, register=True)
            self.add_timer(self.config.handshake_timeout, _TIMER_HANDSHAKE, conn)
            if self.ssl_context is None:
                self._open(conn)

    def _peek_then_wrap(self, conn: Connection) -> None:
        try:
            first = conn.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close(conn, f"error before handshake: {exc}")
            return
        if not first:
            self.close(conn, "closed before handshake")
            return
        if first[0] != _TLS_RECORD_HANDSHAKE:
            # Plain protocol bytes (or garbage) on the TLS port: say so in the clear, once.
            reset = pb.Reset(code=pb.Reset.PROTOCOL_MISMATCH,
                             msg="this relay requires TLS; connect with TLS enabled")
            # Read what the peer sent and half-close first: closing with unread input makes
            # the kernel answer RST, which can destroy the Reset before the peer reads it.
            with contextlib.suppress(OSError):
                conn.sock.send(encode_frame(FrameType.RESET, reset))
                conn.sock.shutdown(socket.SHUT_WR)
                while conn.sock.recv(65536):
                    pass
            self.close(conn, "handshake failed: plaintext bytes on the TLS port")
            return
        assert self.ssl_context is not None
        self.selector.unregister(conn.sock)
        conn.registered_mask = 0
        conn.sock = self.ssl_context.wrap_socket(conn.sock, server_side=True,
                                                 do_handshake_on_connect=False)
        conn.tls = True
        conn.state = ConnState.HANDSHAKE
        self._set_interest(conn, selectors.EVENT_READ, register=True)
        self._handshake(conn)

    def _handshake(self, conn: Connection) -> None:
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self._set_interest(conn, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._set_interest(conn, selectors.EVENT_WRITE)
            return
        except (ssl.SSLError, OSError) as exc:
            self.close(conn, f"handshake failed: {getattr(exc, 'reason', None) or exc}")
            return
        self._set_interest(conn, selectors.EVENT_READ)
        self._open(conn)

    def _open(self, conn: Connection) -> None:
        conn.state = ConnState.OPEN
        conn.last_rx = self.now
        self.add_timer(self.config.login_timeout, _TIMER_LOGIN, conn)
        greeting = f"This is a chat server. Hello, {conn.peer_host}!".encode()
        self.send(conn, encode_header(FrameType.RAW, len(greeting)) + greeting)

    # -- reading and dispatch --------------------------------------------------------------

    def _service(self, conn: Connection, mask: int) -> None:
        state = conn.state
        if state is ConnState.OPEN:
            if mask & selectors.EVENT_READ or conn.want_write:
                self._read(conn)
            if mask & selectors.EVENT_WRITE and conn.state is not ConnState.CLOSED:
                self._write(conn)
        elif state is ConnState.CLOSING:
            if mask & selectors.EVENT_WRITE:
                self._write(conn)
            elif mask & selectors.EVENT_READ:
                self._drain_closing(conn)
        elif state is ConnState.PEEKING:
            self._peek_then_wrap(conn)
        elif state is ConnState.HANDSHAKE:
            self._handshake(conn)

    def _read(self, conn: Connection) -> None:
        conn.want_write = False
        try:
            result, frames = conn.read_into_decoder()
        except ProtocolError as exc:
            self.reset(conn, exc.code, exc.reason)
            return
        except (ssl.SSLError, OSError) as exc:
            self.close(conn, f"read error: {exc}")
            return
        if frames:
            conn.last_rx = self.now
            self._dispatch(conn, frames)
        if result is ReadResult.EOF and conn.state is ConnState.OPEN:
            self.close(conn, "peer closed the connection")
        elif result is ReadResult.WANT_WRITE:
            conn.want_write = True
            self.dirty.add(conn)

    def _dispatch(self, conn: Connection, frames: list[tuple[int, bytes]]) -> None:
        handlers = self.handlers
        try:
            for frame_type, payload in frames:
                if conn.state is not ConnState.OPEN:
                    return
                handler = handlers.get(frame_type)
                try:
                    if handler is None:
                        type_info(frame_type)  # raises "unknown frame type N"
                        raise ProtocolError(
                            f"frame type {frame_type} is not accepted by the relay")
                    if not conn.uid and not type_info(frame_type).allowed_before_login:
                        self.reset(conn, pb.Reset.NOT_LOGGED_IN,
                                   f"log in first ({FrameType(frame_type).name} before LOGIN)")
                        return
                    handler(self, conn, payload)
                except ProtocolError as exc:
                    self.reset(conn, exc.code, exc.reason)
                    return
        finally:
            acks = conn.pending_acks
            if acks:
                # Acks of this read, one chunk (written after the commit like everything
                # else). A connection being reset drops them: its client re-sends those ids
                # and gets the same Acks from the dedup window.
                if conn.state is ConnState.OPEN:
                    conn.queue(b"".join(acks))
                    self.dirty.add(conn)
                acks.clear()

    def _drain_closing(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                ssl.SSLWantWriteError):
            return
        except OSError:
            data = b""
        if not data:
            self.close(conn, conn.close_reason or "peer closed the connection")

    # -- writing ---------------------------------------------------------------------------

    def send(self, conn: Connection, frame: bytes) -> None:
        """Queue a frame; it is written after this iteration's commit.

        Acks batched for the read being dispatched go first, so a connection receives
        frames in the order the relay produced them.
        """
        if conn.state is not ConnState.OPEN:
            return
        acks = conn.pending_acks
        if acks:
            conn.queue(b"".join(acks))
            acks.clear()
        conn.queue(frame)
        self.dirty.add(conn)

    def send_message(self, conn: Connection, frame_type: int, message: Any) -> None:
        self.send(conn, encode_frame(frame_type, message))

    def _write(self, conn: Connection) -> None:
        if conn.state is ConnState.CLOSED:
            return
        if conn.state is ConnState.HANDSHAKE:
            self._handshake(conn)
            return
        if conn.want_write and conn.state is ConnState.OPEN:
            self._read(conn)
            if not self._alive(conn):
                return
        try:
            done = conn.flush()
        except (ssl.SSLError, OSError) as exc:
            if conn.v1_unacked:  # what was written before the error counts as delivered
                delivery.note_v1_written(self, conn)
            self.close(conn, f"write error: {exc}")
            return
        if conn.v1_unacked:
            delivery.note_v1_written(self, conn)
        if done:
            if conn.state is ConnState.CLOSING:
                self.close(conn, conn.close_reason)
                return
            self._set_interest(conn, selectors.EVENT_READ)
            if conn.paused or conn.catching_up:
                delivery.resume(self, conn)
        else:
            self._set_interest(conn, selectors.EVENT_READ | selectors.EVENT_WRITE)

    @staticmethod
    def _alive(conn: Connection) -> bool:
        return conn.state is not ConnState.CLOSED

    def _set_interest(self, conn: Connection, mask: int, register: bool = False) -> None:
        if register:
            self.selector.register(conn.sock, mask, conn)
        elif mask != conn.registered_mask:
            self.selector.modify(conn.sock, mask, conn)
        conn.registered_mask = mask

    # -- resets, timers, teardown ----------------------------------------------------------

    def reset(self, conn: Connection, code: pb.Reset.Code.ValueType, reason: str) -> None:
        """Send Reset(code, reason), stop reading, close once it is written (or after 2 s)."""
        if conn.state in (ConnState.CLOSED, ConnState.CLOSING):
            return
        name = pb.Reset.Code.Name(code)
        if conn.state is not ConnState.OPEN:
            self.close(conn, f"{name}: {reason}")
            return
        self.send_message(conn, FrameType.RESET, pb.Reset(code=code, msg=reason[:200]))
        conn.state = ConnState.CLOSING
        conn.close_reason = f"reset {name}: {reason}"
        self._detach_session(conn)
        self.add_timer(_CLOSE_GRACE, _TIMER_CLOSE, conn)

    def close(self, conn: Connection, reason: str) -> None:
        """The one teardown path: unregister, close the socket, end the session, log once."""
        if conn.state is ConnState.CLOSED:
            return
        conn.state = ConnState.CLOSED
        log.info("conn=%d peer=%s uid=%d closed: %s", conn.id, conn.peer, conn.uid,
                 reason or "closed")
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()
        conn.discard_output()
        self._detach_session(conn)
        self.to_reap.append(conn)

    def _detach_session(self, conn: Connection) -> None:
        uid = conn.uid
        if uid and self.online.get(uid) is conn:
            del self.online[uid]
            self.buddy_cache.pop(uid, None)
            presence.user_changed(self, uid)

    def _reap(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        self.dirty.discard(conn)

    def add_timer(self, delay: float, kind: str, conn: Connection) -> None:
        heapq.heappush(self.timers, (self.now + delay, next(self._timer_ids), kind, conn))

    def _fire_timers(self) -> None:
        timers = self.timers
        while timers and timers[0][0] <= self.now:
            _, _, kind, conn = heapq.heappop(timers)
            if conn.state is ConnState.CLOSED:
                continue
            if kind == _TIMER_HANDSHAKE and conn.state in (ConnState.PEEKING,
                                                           ConnState.HANDSHAKE):
                self.close(conn, "handshake timeout")
            elif kind == _TIMER_LOGIN and conn.state is ConnState.OPEN and not conn.uid:
                self.reset(conn, pb.Reset.TIMEOUT, "no login within "
                           f"{self.config.login_timeout:g} s")
            elif kind == _TIMER_CLOSE and conn.state is ConnState.CLOSING:
                self.close(conn, conn.close_reason + " (peer did not read the Reset)")

    def live_dedup_buckets(self) -> list[int]:
        """Dedup buckets that may hold a record younger than the dedup window."""
        now = int(time.time())
        size = self.dedup_bucket_seconds
        oldest = (now - self.config.dedup_window_hours * 3600) // size
        return list(range(oldest, now // size + 1))

    def _housekeeping(self) -> None:
        """Bounded periodic work: rotate the dedup filter, prune expired rows in chunks."""
        self.dedup_bloom.maybe_rotate(time.time())
        if self.now < self._next_prune:
            return
        pruned = self.store.prune_dedup(self.live_dedup_buckets()[0], _PRUNE_CHUNK)
        pruned += self.store.prune_tokens(self.wall)
        # More left: come back at the next sweep; otherwise in a minute.
        self._next_prune = self.now + (0.0 if pruned >= _PRUNE_CHUNK else 60.0)

    def _sweep_idle(self) -> None:
        limit = self.now - self.config.idle_timeout
        for conn in list(self.online.values()):
            if conn.version >= 2 and conn.last_rx < limit and conn.state is ConnState.OPEN:
                self.reset(conn, pb.Reset.TIMEOUT,
                           f"silent for more than {self.config.idle_timeout:g} s")

    def shutdown(self) -> None:
        """Stop accepting, Reset SERVER_SHUTDOWN everyone, flush, commit, close."""
        log.info("shutting down: %d connections", len(self.connections))
        if self.listener is not None:
            if not self._accept_paused_until:
                self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None
        for conn in list(self.connections.values()):
            if conn.state is ConnState.OPEN:
                self.reset(conn, pb.Reset.SERVER_SHUTDOWN, "relay is shutting down")
            elif conn.state is not ConnState.CLOSING:
                self.close(conn, "relay is shutting down")
        self.end_iteration()
        deadline = time.monotonic() + _CLOSE_GRACE
        while any(c.has_pending() and c.state is ConnState.CLOSING
                  for c in self.connections.values()) and time.monotonic() < deadline:
            for key, mask in self.selector.select(0.05):
                if isinstance(key.data, Connection):
                    self._service(key.data, mask)
            self.end_iteration()
        for conn in list(self.connections.values()):
            self.close(conn, conn.close_reason or "relay is shutting down")
        self.end_iteration()
        self.log_stats()
        self.store.close()
        self.hasher.close()
        self.selector.close()
