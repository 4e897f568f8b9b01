"""The relay's event loop: one thread, one ``selectors`` selector, one SQLite connection.

Data flow per iteration (ARCHITECTURE.md): ready sockets are read until they would block or
their budget for the pass is spent, frames go to ``handlers[type](relay, conn, payload)``,
handlers append store rows and queue outgoing frames on connections; then, at the end of the
iteration, **one commit** for everything stored, and only then **one write per connection**
with pending bytes.

Invariants:
- Nothing blocks the loop but ``select``: scrypt runs in :class:`relay.auth.HashWorker`.
- What one connection costs per pass is bounded: at most ``read_budget`` bytes read and
  ``frames_per_pass`` frames handled; what is left waits (in the decoder, the kernel or
  OpenSSL) and such connections are in :attr:`Relay.ready`, served next pass without
  waiting in ``select``. A connection whose queued output is above ``high_water`` is not
  read until it drains to half (its requests wait in the kernel).
- Input held by all decoders is counted incrementally (:mod:`relay.intake`). At
  ``input_budget`` connections that hold input stop reading; if it stays there, the largest
  holders are reset. An incomplete frame older than ``frame_timeout`` is reset (TIMEOUT).
  Before login a frame may be at most ``max_frame_before_login`` bytes.
- An exception while serving one connection (its frames, its timers) resets that connection
  (UNKNOWN_ERROR) and is logged once with its traceback; the loop and everyone else go on.
- Connections not logged in are bounded per address and in all (:mod:`relay.admission`);
  when there is no room the oldest of them is closed, never a logged-in session.
- Every frame queued during an iteration is written after that iteration's commit, so an
  Ack or a forwarded durable message never reaches the wire before it is durable: frames
  are staged on their connection and only a successful commit releases them (a write in
  the middle of a pass sends only frames released earlier). If the store loses the pass's
  writes (disk full), :mod:`relay.outage` answers for the staged frames instead.
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
from protocol.framing import Frame, encode_header
from protocol.types import FrameType, type_info
from relay import delivery, presence
from relay.admission import Admission
from relay.auth import HashWorker, LoginThrottle, RegistrationLimit
from relay.config import RelayConfig
from relay.connection import Connection, ConnState, ReadResult
from relay.dedup import DedupWindow
from relay.intake import InputBudget
from relay.memory import MemoryTrimmer
from relay.outage import StoreOutage
from relay.store import InboxRow, Store, StoreUnavailable
from relay.transfers import TransferLedger

log = logging.getLogger("parley.relay")

Handler = Callable[["Relay", Connection, bytes], None]

_TIMER_HANDSHAKE = "handshake"
_TIMER_LOGIN = "login"
_TIMER_CLOSE = "close"
_SWEEP_INTERVAL = 5.0
_CLOSE_GRACE = 2.0  # a reset connection whose peer reads nothing for this long is closed
_CLOSE_LIMIT = 30.0  # ... and one whose peer reads slowly, after this long
_ACCEPT_BACKOFF = 0.1
_ACCEPT_ERROR_LOG_INTERVAL = 10.0
_ACCEPTS_PER_PASS = 64
# Over the input budget a connection holding no input may still read this much per pass:
# pings and chat lines keep flowing while the holders of large partial frames wait.
_READ_WHEN_OVER_BUDGET = 4096
_INPUT_PRESSURE_GRACE = 1.0  # seconds at the input budget before the largest holders go
# Handling one connection's frames stops for this pass once this much time is spent (the
# rest wait in its decoder): 64 LIST_USER requests over 500 users cost ~130 ms, which was a
# bystander's ping p99 in bench_hostile.py scenario (b) before this bound.
_HANDLING_TIME_PER_PASS = 0.002
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
        self.registrations = RegistrationLimit(config.registrations_per_address_per_minute)
        self.listener: socket.socket | None = None
        self.address: tuple[str, int] = ("", 0)
        self.connections: dict[int, Connection] = {}
        self.online: dict[int, Connection] = {}
        self.buddy_cache: dict[int, set[int]] = {}
        self.head_seq: dict[int, int] = {}
        self.inbox_floor: dict[int, int] = {}  # uid -> seq below the oldest stored row
        self.inbox_bytes: dict[int, int] = {}  # uid -> bytes of its stored and pending rows
        self.pending_rows: list[InboxRow] = []
        self.pass_rows: list[list[InboxRow]] = []  # handed to the store since the last commit
        self.dedup = DedupWindow(store, config.dedup_window_hours * 3600,
                                 config.dedup_filter_bits_log2)
        self.outage = StoreOutage(store)
        self._next_prune = 0.0
        self._accept_paused_until = 0.0
        # uid -> (highest seq its session has received: v1 rows written to the socket, v2
        # acked; whether any of those rows may owe its sender a receipt). Applied before the
        # pass's commit; what the last attempt applied, until that commit succeeded.
        self.deliveries: dict[int, tuple[int, bool]] = {}
        self.deliveries_applied: dict[int, tuple[int, bool]] = {}
        self.dirty: set[Connection] = set()
        self.to_reap: list[Connection] = []
        # (due, tie-breaker, kind, connection id): a closed connection is not kept alive by
        # its timers, so a connection flood costs a few small tuples until they expire.
        self.timers: list[tuple[float, int, str, int]] = []
        self._timer_ids = itertools.count()
        self._conn_ids = itertools.count(1)
        self.admission = Admission(config.max_unauthenticated_per_address,
                                   config.max_unauthenticated)
        self._accept_error_logged_at = float("-inf")
        # Read side (see the module invariants).
        self.passes = 0
        self.ready: set[Connection] = set()
        self.trimmer = MemoryTrimmer()
        self.intake = InputBudget(config.input_budget, _INPUT_PRESSURE_GRACE, self.trimmer)
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
        sweep_interval = min(_SWEEP_INTERVAL, self.config.idle_timeout / 3,
                             self.config.frame_timeout / 3)
        next_sweep = time.monotonic() + sweep_interval
        select = self.selector.select
        while not self.stopping:
            timeout = min(sweep_interval, max(0.0, next_sweep - time.monotonic()))
            if (self.dirty or self.pending_rows or self.ready or self.store.pending
                    or (self.deliveries and self.store.available)):
                # The write pass queued more work (a resumed backlog, deliveries to record,
                # staged frames), or input left over by a read budget waits where select
                # may not see it.
                timeout = 0.0
            else:
                if self.timers:
                    timeout = min(timeout, self.timers[0][0] - time.monotonic())
                if self._accept_paused_until:
                    timeout = min(timeout, self._accept_paused_until - time.monotonic())
                timeout = max(0.0, timeout)
            events = select(timeout)
            self.now = time.monotonic()
            self.wall = int(time.time())
            self.passes += 1
            left_over, self.ready = self.ready, set()
            for key, mask in events:
                target = key.data
                if target is None:
                    self._accept()
                elif target is self.hasher:
                    self.hasher.run_callbacks()
                else:
                    self._service(target, mask)
            for conn in left_over:
                if conn.read_pass != self.passes and conn.state is ConnState.OPEN:
                    self._service(conn, selectors.EVENT_READ)
            if self.intake.spent or self.intake.paused:
                self._check_input_budget()
            if self.timers and self.timers[0][0] <= self.now:
                self._fire_timers()
            if self._accept_paused_until and self.now >= self._accept_paused_until:
                self._accept_paused_until = 0.0
                if self.listener is not None:
                    self.selector.register(self.listener, selectors.EVENT_READ, None)
            if self.now >= next_sweep:
                next_sweep = self.now + sweep_interval
                self._sweep()
                self._housekeeping()
            self.end_iteration()
        self.shutdown()

    def end_iteration(self) -> None:
        """Record deliveries and commit (one group commit); then release the frames staged
        this pass, or, if the store lost the pass's writes, answer for them instead
        (:mod:`relay.outage`); then one write per connection with pending bytes; then reap.

        Frames queued from here on (a resumed backlog, what a read during a write
        dispatched) are staged for the next pass's commit.
        """
        store = self.store
        self.flush_rows()
        if self.deliveries and store.available:
            delivery.apply_deliveries(self)
        with contextlib.suppress(StoreUnavailable):  # counted by the store: answered below
            store.commit()
        if self.outage.lost_writes():
            self.outage.writes_lost(self)
        self.pass_rows.clear()
        self.deliveries_applied.clear()
        if self.dirty:
            dirty, self.dirty = self.dirty, set()
            for conn in dirty:
                conn.release_staged()
            for conn in dirty:
                self._write(conn)
        if self.deliveries and store.available:
            # v1 rows just written: deleted now, in the next pass's transaction, so that
            # pass's handlers (a new login's backlog) already see them gone.
            self.flush_rows()
            delivery.apply_deliveries(self)
        if self.to_reap:
            reap, self.to_reap = self.to_reap, []
            for conn in reap:
                self._reap(conn)

    def flush_rows(self) -> None:
        """Hand buffered inbox rows to the store (in the open transaction). If the store
        cannot write, they are lost with the pass's other writes and answered for at the end
        of the pass."""
        if self.pending_rows:
            rows, self.pending_rows = self.pending_rows, []
            self.pass_rows.append(rows)
            with contextlib.suppress(StoreUnavailable):
                self.store.append_inbox(rows, self.dedup.current_bucket())

    # -- accept and handshake --------------------------------------------------------------

    def _accept(self) -> None:
        assert self.listener is not None
        config = self.config
        admission = self.admission
        # A bounded number of accepts per pass: the listener stays readable, so the rest of a
        # connection flood waits for the next pass instead of holding this one.
        for _ in range(_ACCEPTS_PER_PASS):
            try:
                sock, addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # reset by the peer while it waited in the backlog
            except OSError as exc:
                if (exc.errno in (errno.EMFILE, errno.ENFILE)
                        and self._evict_oldest_waiting("the open-file limit is reached")):
                    continue  # a descriptor is free again
                # Nothing to evict (or no memory): the listener stays readable, so stop
                # watching it for a moment, or the loop would spin on accept.
                if self.now - self._accept_error_logged_at >= _ACCEPT_ERROR_LOG_INTERVAL:
                    self._accept_error_logged_at = self.now
                    log.error("accept failed: %s (raise the open-file limit); pausing "
                              "accepts for %g s", exc, _ACCEPT_BACKOFF)
                self.selector.unregister(self.listener)
                self._accept_paused_until = self.now + _ACCEPT_BACKOFF
                return
            host = addr[0]
            if self.stopping:
                sock.close()
                continue
            if not admission.allows(host):
                sock.close()
                admission.refused(host, f"{admission.per_address} connections from this "
                                  "address are not logged in yet", self.now)
                continue
            if ((len(self.connections) - len(self.to_reap) >= config.max_connections
                 or admission.full)
                    and not self._evict_oldest_waiting(
                        f"{len(admission.waiting)} connections are not logged in yet"
                        if admission.full else "the connection limit is reached")):
                sock.close()
                admission.refused(host, f"all {config.max_connections} connections are "
                                  "logged-in sessions", self.now)
                continue
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                sock.close()  # already reset by the peer
                continue
            conn = Connection(next(self._conn_ids), sock, f"{host}:{addr[1]}", host,
                              config.max_frame_before_login, self.now)
            self.connections[conn.id] = conn
            admission.add(conn)
            self.accepted_count += 1
            log.info("conn=%d peer=%s accepted", conn.id, conn.peer)
            self._set_interest(conn, selectors.EVENT_READ)
            self.add_timer(config.handshake_timeout, _TIMER_HANDSHAKE, conn)
            if self.ssl_context is None:
                self._open(conn)

    def _evict_oldest_waiting(self, why: str) -> bool:
        """Close the connection that has waited longest for its login, to make room."""
        oldest = self.admission.oldest()
        if oldest is None:
            return False
        self.close(oldest, f"evicted to make room for a new connection: {why}")
        return True

    def logged_in(self, conn: Connection) -> None:
        """``conn`` became a session: it leaves admission and may send frames up to
        ``max_frame`` (the login handler calls this)."""
        self.admission.remove(conn)
        conn.decoder.max_frame = self.config.max_frame

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
        self._set_interest(conn, 0)  # the TLS wrapper is a new socket object
        conn.sock = self.ssl_context.wrap_socket(conn.sock, server_side=True,
                                                 do_handshake_on_connect=False)
        conn.tls = True
        conn.state = ConnState.HANDSHAKE
        self._set_interest(conn, selectors.EVENT_READ)
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
        """Serve one connection's socket event; whatever it raises stays with it."""
        try:
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
        except StoreUnavailable:  # the store's condition, not a bug: relay.outage's business
            self.outage.request_failed(self, conn)
        except Exception:
            self._internal_error(conn, "serving it")

    def _internal_error(self, conn: Connection, doing: str) -> None:
        """A bug met while ``doing`` something for ``conn`` (called from an ``except``):
        log the traceback once, Reset UNKNOWN_ERROR that connection, keep the loop going."""
        log.exception("conn=%d peer=%s uid=%d internal error while %s", conn.id, conn.peer,
                      conn.uid, doing)
        try:
            self.reset(conn, pb.Reset.UNKNOWN_ERROR, "internal error in the relay")
        except Exception:
            log.exception("conn=%d peer=%s could not be reset after an internal error; "
                          "closing it", conn.id, conn.peer)
            self.close(conn, "internal error in the relay")

    def _read(self, conn: Connection) -> None:
        conn.want_write = False
        config = self.config
        if conn.pending_bytes > config.high_water:
            self._block_reads(conn)
        if conn.output_blocked or conn.input_paused:
            return
        conn.read_pass = self.passes
        byte_budget = config.read_budget
        if self.intake.spent:
            byte_budget = 0 if conn.input_held else min(byte_budget, _READ_WHEN_OVER_BUDGET)
        try:
            result, frames = conn.read_frames(byte_budget, config.frames_per_pass)
        except ProtocolError as exc:
            self.reset(conn, exc.code, exc.reason)
            return
        except (ssl.SSLError, OSError) as exc:
            self.close(conn, f"read error: {exc}")
            return
        if conn.decoder.buffered != conn.input_held:
            self.intake.count(conn, self.now)
        if frames:
            conn.last_rx = self.now
            self._dispatch(conn, frames)
        if conn.state is not ConnState.OPEN:
            return
        if result is ReadResult.MORE:
            if frames or byte_budget:
                self.ready.add(conn)
            else:
                self._pause_input(conn)  # over the input budget, holding input
        elif result is ReadResult.EOF:
            self.close(conn, "peer closed the connection")
            return
        elif result is ReadResult.WANT_WRITE:
            conn.want_write = True
            self.dirty.add(conn)
        if conn.pending_bytes > config.high_water:
            self._block_reads(conn)

    # -- read-side bounds: backpressure, the input budget, incomplete frames ---------------

    def _block_reads(self, conn: Connection) -> None:
        """Queued output is above high water: read nothing more until it drains to half."""
        if not conn.output_blocked:
            conn.output_blocked = True
            self.ready.discard(conn)
            self._watch(conn)

    def _unblock_reads(self, conn: Connection) -> None:
        conn.output_blocked = False
        self._resume_reading(conn)

    def _pause_input(self, conn: Connection) -> None:
        """The input budget is spent and ``conn`` holds input: it waits until there is room."""
        self.intake.pause(conn)
        self._watch(conn)

    def _resume_reading(self, conn: Connection) -> None:
        if conn.output_blocked or conn.input_paused or conn.state is not ConnState.OPEN:
            return
        conn.input_since = self.now  # the frame timeout does not count the wait
        self.ready.add(conn)  # OpenSSL may hold decrypted bytes select cannot see
        self._watch(conn)

    def _check_input_budget(self) -> None:
        """Resume paused readers once there is room; if there stays none, reset the largest
        holders of input until there is."""
        for conn in self.intake.room_again():
            self._resume_reading(conn)
        evict = self.intake.to_evict(self.now)
        if evict:
            log.warning("input budget of %d bytes spent for %g s: resetting the %d largest "
                        "holders", self.intake.budget, self.intake.grace, len(evict))
        for conn in evict:
            self._reset_apart(conn, pb.Reset.RATE_LIMITED,
                              f"the relay's input buffers are full and this connection held "
                              f"the most ({conn.input_held} bytes)")

    def _dispatch(self, conn: Connection, frames: list[Frame]) -> None:
        """Handle ``frames`` in order; past :data:`_HANDLING_TIME_PER_PASS` the rest go back
        into the decoder and wait for the next pass, whatever each frame costs."""
        handlers = self.handlers
        clock = time.perf_counter
        deadline = clock() + _HANDLING_TIME_PER_PASS
        try:
            for index, (frame_type, payload) in enumerate(frames):
                if conn.state is not ConnState.OPEN:
                    return
                if index and clock() > deadline:
                    conn.decoder.unread(frames[index:])
                    self.intake.count(conn, self.now)
                    self.ready.add(conn)
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
        """Write what ``conn`` has pending; whatever it raises stays with it."""
        try:
            self._flush(conn)
        except StoreUnavailable:
            self.outage.request_failed(self, conn)
        except Exception:
            self._internal_error(conn, "writing to it")

    def _flush(self, conn: Connection) -> None:
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
        if conn.output_blocked and conn.pending_bytes <= self.config.high_water // 2:
            self._unblock_reads(conn)
        if done:
            if conn.state is ConnState.CLOSING:
                self.close(conn, conn.close_reason)
                return
            self._watch(conn, writing=False)
            if conn.paused or conn.catching_up:
                delivery.resume(self, conn)
        else:
            self._watch(conn, writing=True)

    @staticmethod
    def _alive(conn: Connection) -> bool:
        return conn.state is not ConnState.CLOSED

    def _watch(self, conn: Connection, writing: bool | None = None) -> None:
        """Select ``conn`` for reading unless its reads are suspended, and for writing while
        ``writing`` (None: as now)."""
        if writing is None:
            writing = bool(conn.registered_mask & selectors.EVENT_WRITE)
        mask = selectors.EVENT_WRITE if writing else 0
        if not (conn.output_blocked or conn.input_paused):
            mask |= selectors.EVENT_READ
        self._set_interest(conn, mask)

    def _set_interest(self, conn: Connection, mask: int) -> None:
        """Select ``conn``'s socket for ``mask``; 0 takes it out of the selector."""
        current = conn.registered_mask
        if mask == current:
            return
        if not mask:
            self.selector.unregister(conn.sock)
        elif not current:
            self.selector.register(conn.sock, mask, conn)
        else:
            self.selector.modify(conn.sock, mask, conn)
        conn.registered_mask = mask

    # -- resets, timers, teardown ----------------------------------------------------------

    def reset(self, conn: Connection, code: pb.Reset.Code.ValueType, reason: str) -> None:
        """Send Reset(code, reason), stop reading, close once it is written (or once the peer
        has read nothing for 2 s).

        Output above the high-water mark that is not yet handed to the socket is dropped
        first, so the Reset does not wait behind it (v1 rows not written stay stored for
        the next login; v2 sessions get theirs again by seq).
        """
        if conn.state in (ConnState.CLOSED, ConnState.CLOSING):
            return
        name = pb.Reset.Code.Name(code)
        if conn.state is not ConnState.OPEN:
            self.close(conn, f"{name}: {reason}")
            return
        if conn.pending_bytes > self.config.high_water:
            dropped = conn.drop_unsent()
            self.trimmer.freed(dropped)
            log.info("conn=%d peer=%s uid=%d reset %s: %d bytes of output not yet written "
                     "dropped so the Reset goes next", conn.id, conn.peer, conn.uid, name,
                     dropped)
        self.send_message(conn, FrameType.RESET, pb.Reset(code=code, msg=reason[:200]))
        conn.state = ConnState.CLOSING
        conn.close_reason = f"reset {name}: {reason}"
        self.intake.release(conn, self.now)
        self.ready.discard(conn)
        self._detach_session(conn)
        conn.sent_mark = conn.bytes_taken_by_peer()
        conn.reset_at = self.now
        self.add_timer(_CLOSE_GRACE, _TIMER_CLOSE, conn)

    def close(self, conn: Connection, reason: str) -> None:
        """The one teardown path: unregister, close the socket, end the session, log once."""
        if conn.state is ConnState.CLOSED:
            return
        conn.state = ConnState.CLOSED
        log.info("conn=%d peer=%s uid=%d closed: %s", conn.id, conn.peer, conn.uid,
                 reason or "closed")
        self.to_reap.append(conn)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()
        self.trimmer.freed(conn.pending_bytes)
        conn.discard_output()
        self.intake.release(conn, self.now)
        self.ready.discard(conn)
        self.admission.remove(conn)
        self._detach_session(conn)

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
        heapq.heappush(self.timers, (self.now + delay, next(self._timer_ids), kind, conn.id))

    def _fire_timers(self) -> None:
        timers = self.timers
        connections = self.connections
        while timers and timers[0][0] <= self.now:
            _, _, kind, conn_id = heapq.heappop(timers)
            conn = connections.get(conn_id)
            if conn is None or conn.state is ConnState.CLOSED:
                continue
            try:
                self._timer_due(kind, conn)
            except StoreUnavailable:
                self.outage.request_failed(self, conn)
            except Exception:
                self._internal_error(conn, f"running its {kind} timer")

    def _timer_due(self, kind: str, conn: Connection) -> None:
        if kind == _TIMER_HANDSHAKE and conn.state in (ConnState.PEEKING, ConnState.HANDSHAKE):
            self.close(conn, "handshake timeout")
        elif kind == _TIMER_LOGIN and conn.state is ConnState.OPEN and not conn.uid:
            self.reset(conn, pb.Reset.TIMEOUT, "no login within "
                       f"{self.config.login_timeout:g} s")
        elif kind == _TIMER_CLOSE and conn.state is ConnState.CLOSING:
            # A peer still reading gets the rest (and the Reset), within limits.
            taken = conn.bytes_taken_by_peer()
            if taken > conn.sent_mark and self.now - conn.reset_at < _CLOSE_LIMIT:
                conn.sent_mark = taken
                self.add_timer(_CLOSE_GRACE, _TIMER_CLOSE, conn)
            else:
                self.close(conn, conn.close_reason + " (peer did not read the Reset)")

    def _housekeeping(self) -> None:
        """Bounded periodic work: rotate the dedup filter; while the store cannot write,
        probe it and nothing else; otherwise apply admin actions and prune expired rows in
        chunks (a write failing here is answered for at the end of the pass, like any)."""
        self.dedup.rotate()
        if not self.store.available:
            self.outage.probe(self)
            return
        with contextlib.suppress(StoreUnavailable):
            self.apply_admin_actions()
            if self.now < self._next_prune:
                return
            pruned = self.dedup.prune(_PRUNE_CHUNK)
            pruned += self.store.prune_tokens(self.wall)
            # More left: come back at the next sweep; otherwise in a minute.
            self._next_prune = self.now + (0.0 if pruned >= _PRUNE_CHUNK else 60.0)

    def apply_admin_actions(self) -> None:
        """End the sessions ``parley-relay user passwd|remove`` (another process) asked to
        end, with Reset KICKED and the command's reason; a removed user's online buddies get
        fresh lists. Bounded per call; one PRAGMA when no other process wrote."""
        for uid, reason in self.store.take_kicks():
            conn = self.online.get(uid)
            if conn is not None:
                self.reset(conn, pb.Reset.KICKED, reason)
            if self.store.user_by_uid(uid) is None:
                presence.user_removed(self, uid)

    def _sweep(self) -> None:
        """Periodic checks: silent v2 sessions, incomplete frames that stopped arriving (only
        connections holding input are visited), held-back log lines, heap trimming."""
        config = self.config
        limit = self.now - config.idle_timeout
        for conn in list(self.online.values()):
            if conn.version >= 2 and conn.last_rx < limit and conn.state is ConnState.OPEN:
                self._reset_apart(conn, pb.Reset.TIMEOUT,
                                  f"silent for more than {config.idle_timeout:g} s")
        limit = self.now - config.frame_timeout
        for conn in list(self.intake.holders):
            if (max(conn.last_rx, conn.input_since) < limit and not conn.output_blocked
                    and not conn.input_paused and conn.state is ConnState.OPEN):
                self._reset_apart(conn, pb.Reset.TIMEOUT,
                                  f"a frame incomplete for more than {config.frame_timeout:g} "
                                  f"s ({conn.input_held} bytes of it arrived)")
        self.admission.flush_refusal_log(self.now)
        self.trimmer.maybe_trim(self.now)

    def _reset_apart(self, conn: Connection, code: pb.Reset.Code.ValueType,
                     reason: str) -> None:
        """Reset ``conn`` from outside its own event (a sweep, the input budget); whatever
        that raises stays with it."""
        try:
            self.reset(conn, code, reason)
        except StoreUnavailable:
            raise
        except Exception:
            self._internal_error(conn, f"resetting it ({reason})")

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
