"""The relay's event loop: one thread, one ``selectors`` selector, one SQLite connection.

Data flow per iteration (ARCHITECTURE.md): ready sockets are read until they would block or
their budget for the pass is spent, frames go to ``handlers[type](ctx, conn, payload)``
(the :class:`Relay` is the handlers' :class:`relay.context.Context`), handlers append store
rows and queue outgoing frames on connections; then, at the end of the iteration, **one
commit** for everything stored, and only then **one write per connection** with pending
bytes.

:class:`Relay` owns the connections (the id -> connection table, what is to be written and
to be reaped), the clock of the pass, the per-connection read/dispatch/write/reset/close
path and the iteration itself; it composes the owners of everything else: sessions
(:mod:`relay.sessions`), inboxes (:mod:`relay.inboxes`), dedup (:mod:`relay.dedup`), the
store, accepting (:mod:`relay.acceptor`), selector interest and read suspension
(:mod:`relay.readiness`), timers (:mod:`relay.timers`), periodic work
(:mod:`relay.maintenance`) and store outages (:mod:`relay.outage`). Those never import this
module. (About 650 lines: the per-connection path read -> dispatch -> flush -> reset ->
close is one state machine and stays in one place until transport and session state are
split out of :class:`relay.connection.Connection`.)

Invariants:
- Nothing blocks the loop but ``select``: scrypt runs in :class:`relay.auth.HashWorker`.
- What one connection costs per pass is bounded: at most ``read_budget`` bytes read and
  ``frames_per_pass`` frames handled (``room_frames_per_pass`` while they are all room
  messages), and once the pass's room messages fan out to ``copies_per_pass`` copies, no
  further MESSAGE frame beyond a connection's first; what is left waits (in the decoder,
  the kernel or OpenSSL) and such connections are in ``readiness.ready``, served next pass
  without waiting in ``select``. A connection whose queued output is above ``high_water``
  is not read until it drains to half (its requests wait in the kernel).
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
import logging
import selectors
import signal
import ssl
import time
from typing import Any

from protocol import ProtocolError, encode_frame
from protocol import chat_pb2 as pb
from protocol.framing import Frame
from protocol.types import FrameType, type_info
from relay import delivery, presence, room_delivery
from relay.acceptor import Acceptor
from relay.admission import Admission
from relay.auth import HashWorker, LoginThrottle, RegistrationLimit
from relay.config import RelayConfig
from relay.connection import Connection, ConnState, ReadResult
from relay.context import Handler
from relay.dedup import DedupWindow
from relay.devices import DeviceRegistry
from relay.inboxes import Inboxes
from relay.intake import InputBudget
from relay.maintenance import Maintenance
from relay.memory import MemoryTrimmer
from relay.outage import StoreOutage
from relay.readiness import Readiness
from relay.rooms import RoomRegistry
from relay.sessions import Sessions
from relay.store import Store, StoreUnavailable
from relay.timers import TIMER_CLOSE, TIMER_HANDSHAKE, TIMER_LOGIN, ConnectionTimers
from relay.transfers import TransferLedger

log = logging.getLogger("parley.relay")

_SWEEP_INTERVAL = 5.0
_CLOSE_GRACE = 2.0  # a reset connection whose peer reads nothing for this long is closed
_CLOSE_LIMIT = 30.0  # ... and one whose peer reads slowly, after this long
# Over the input budget a connection holding no input may still read this much per pass:
# pings and chat lines keep flowing while the holders of large partial frames wait.
_READ_WHEN_OVER_BUDGET = 4096
_INPUT_PRESSURE_GRACE = 1.0  # seconds at the input budget before the largest holders go
# Handling one connection's frames stops for this pass once this much time is spent (the
# rest wait in its decoder): 64 LIST_USER requests over 500 users cost ~130 ms, which was a
# bystander's ping p99 in bench_hostile.py scenario (b) before this bound.
_HANDLING_TIME_PER_PASS = 0.002
# ...except MESSAGE frames, which frames_per_pass and copies_per_pass bound: a room message
# costs about 1 us per member's device, so at 500 members the 2 ms bound let ~4 messages
# through per pass, each pass then writing every member's connection for them
# (bench_vs_mosquitto room500: 5.2 us per copy under the bound, see docs/BENCHMARKS.md). The
# pass's room copies are counted instead (relay.room_copies): past copies_per_pass a
# connection's further MESSAGE frames wait for the next pass. A room sender gets up to
# room_frames_per_pass (256) messages per pass instead of frames_per_pass (64): each member's
# work of a pass (its Ack read, the TLS write) is then shared by 4x the copies, room500
# 0.60 -> 0.30 us per copy (docs/BENCHMARKS.md, session 7).
_MESSAGE = int(FrameType.MESSAGE)

# `parley-relay user passwd|remove` (another process) asks for a session to end: looked at
# this often, at the cost of one PRAGMA data_version when nothing was asked.
_ADMIN_CHECK_INTERVAL = 1.0


class Relay:
    """The loop: connections and the iteration; the state owners it composes (module
    docstring)."""

    def __init__(
        self,
        config: RelayConfig,
        store: Store,
        ssl_context: ssl.SSLContext | None,
        handlers: dict[int, Handler],
    ) -> None:
        self.config = config
        self.store = store
        self.handlers = handlers
        self.hasher = HashWorker()
        self.throttle = LoginThrottle(config.login_failures_before_throttle)
        self.registrations = RegistrationLimit(config.registrations_per_address_per_minute)
        self.connections: dict[int, Connection] = {}
        self.sessions = Sessions(store)
        self.devices = DeviceRegistry(store)
        self.rooms = RoomRegistry(store, self.devices)
        self.dedup = DedupWindow(
            store, config.dedup_window_hours * 3600, config.dedup_filter_bits_log2
        )
        self.inboxes = Inboxes(
            store,
            self.dedup,
            (config.inbox_quota, config.inbox_quota_bytes),
            lambda box, first, last, frames: delivery.push_run(self, box, first, last, frames),
            lambda room, room_pass: room_delivery.fan_out_pass(self, room, room_pass),
        )
        self.inboxes.history_keep = config.room_history
        self.outage = StoreOutage(store)
        self.dirty: set[Connection] = set()
        self.to_reap: list[Connection] = []
        self.timers = ConnectionTimers()
        self.admission = Admission(
            config.max_unauthenticated_per_address, config.max_unauthenticated
        )
        # Read side (see the module invariants).
        self.passes = 0
        self.trimmer = MemoryTrimmer()
        self.intake = InputBudget(config.input_budget, _INPUT_PRESSURE_GRACE, self.trimmer)
        self.readiness = Readiness(self.intake)
        self.now = time.monotonic()
        self.wall = int(time.time())
        self.stopping = False
        self.message_count = 0
        self.durable_count = 0
        self.room_copies = 0  # reset every pass: see _dispatch and copies_per_pass
        self.room_messages = 0  # see _more_room_messages
        self.paused_count = 0
        self.transfers = TransferLedger(config.max_transfers_per_user)
        self.acceptor = Acceptor(config, ssl_context, self.admission, self.readiness, self)
        self.maintenance = Maintenance(self)

    # -- setup -----------------------------------------------------------------------------

    def listen(self) -> tuple[str, int]:
        """Listen on the configured address and Unix socket (and watch the hash worker);
        returns the address."""
        self.readiness.selector.register(self.hasher.fileno(), selectors.EVENT_READ, self.hasher)
        address = self.acceptor.listen()
        if self.config.unix_socket:
            self.acceptor.listen_local(self.config.unix_socket)
        return address

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
        log.info(
            "stats: connections=%d online=%d accepted=%d messages=%d durable=%d "
            "paused=%d scrypt=%d passes=%d",
            len(self.connections),
            len(self.sessions),
            self.acceptor.accepted_count,
            self.message_count,
            self.durable_count,
            self.paused_count,
            self.hasher.computations,
            self.passes,
        )

    # -- the loop --------------------------------------------------------------------------

    def serve_forever(self) -> None:
        sweep_interval = min(
            _SWEEP_INTERVAL, self.config.idle_timeout / 3, self.config.frame_timeout / 3
        )
        next_sweep = time.monotonic() + sweep_interval
        next_admin_check = time.monotonic() + _ADMIN_CHECK_INTERVAL
        select = self.readiness.selector.select
        while not self.stopping:
            timeout = max(0.0, min(next_sweep, next_admin_check) - time.monotonic())
            if (
                self.dirty
                or self.inboxes.pending_rows
                or self.readiness.ready
                or self.store.pending
                or self.inboxes.deliveries_due()
            ):
                # The write pass queued more work (a resumed backlog, deliveries to record,
                # staged frames), or input left over by a read budget waits where select
                # may not see it.
                timeout = 0.0
            else:
                if self.timers:
                    timeout = min(timeout, self.timers.next_due() - time.monotonic())
                if self.acceptor.paused_until:
                    timeout = min(timeout, self.acceptor.paused_until - time.monotonic())
                timeout = max(0.0, timeout)
            events = select(timeout)
            self.now = time.monotonic()
            self.wall = int(time.time())
            self.passes += 1
            left_over = self.readiness.take_ready()
            for key, mask in events:
                target = key.data
                if target is None:
                    self.acceptor.accept(key.fileobj)  # type: ignore[arg-type]
                elif target is self.hasher:
                    self.hasher.run_callbacks()
                else:
                    self._service(target, mask)
            for conn in left_over:
                if conn.read_pass != self.passes and conn.state is ConnState.OPEN:
                    self._service(conn, selectors.EVENT_READ)
            if self.intake.spent or self.intake.paused:
                self.maintenance.check_input_budget()
            if self.timers and self.timers.next_due() <= self.now:
                self._fire_timers()
            self.acceptor.resume_if_due(self.now)
            if self.now >= next_sweep:
                next_sweep = self.now + sweep_interval
                self.maintenance.sweep()
                self.maintenance.housekeeping()
            if self.now >= next_admin_check:
                next_admin_check = self.now + _ADMIN_CHECK_INTERVAL
                self.maintenance.check_admin_actions()
                self.maintenance.report()
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
        inboxes = self.inboxes
        inboxes.flush_rows()
        if inboxes.deliveries_due():
            delivery.apply_deliveries(self)
        with contextlib.suppress(StoreUnavailable):  # counted by the store: answered below
            store.commit()
        if self.outage.lost_writes():
            self.outage.writes_lost(self)
        inboxes.committed()
        self.devices.committed()
        self.room_copies = 0
        if self.dirty:
            dirty, self.dirty = self.dirty, set()
            for conn in dirty:
                conn.release_staged()
            for conn in dirty:
                self._write(conn)
        if inboxes.deliveries_due():
            # v1 rows just written: deleted now, in the next pass's transaction, so that
            # pass's handlers (a new login's backlog) already see them gone.
            delivery.apply_deliveries(self)
        if self.to_reap:
            reap, self.to_reap = self.to_reap, []
            for conn in reap:
                self._reap(conn)

    # -- accept and handshake --------------------------------------------------------------

    def logged_in(self, conn: Connection) -> None:
        """``conn`` became a session: it leaves admission and may send frames up to
        ``max_frame`` (the login handler calls this)."""
        self.admission.remove(conn)
        conn.decoder.max_frame = self.config.max_frame

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
                self.acceptor.peek_then_wrap(conn)
            elif state is ConnState.HANDSHAKE:
                self.acceptor.handshake(conn)
        except StoreUnavailable:  # the store's condition, not a bug: relay.outage's business
            self.outage.request_failed(self, conn)
        except Exception:
            self._internal_error(conn, "serving it")

    def _internal_error(self, conn: Connection, doing: str) -> None:
        """A bug met while ``doing`` something for ``conn`` (called from an ``except``):
        log the traceback once, Reset UNKNOWN_ERROR that connection, keep the loop going."""
        log.exception(
            "conn=%d peer=%s uid=%d internal error while %s", conn.id, conn.peer, conn.uid, doing
        )
        try:
            self.reset(conn, pb.Reset.UNKNOWN_ERROR, "internal error in the relay")
        except Exception:
            log.exception(
                "conn=%d peer=%s could not be reset after an internal error; closing it",
                conn.id,
                conn.peer,
            )
            self.close(conn, "internal error in the relay")

    def _read(self, conn: Connection) -> None:
        conn.want_write = False
        config = self.config
        if conn.pending_bytes > config.high_water:
            self.readiness.block_reads(conn)
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
            room_messages = self.room_messages
            self._dispatch(conn, frames)
            if result is ReadResult.MORE:
                self._more_room_messages(conn, len(frames), room_messages)
        if conn.state is not ConnState.OPEN:
            return
        if result is ReadResult.MORE:
            if frames or byte_budget:
                self.readiness.ready.add(conn)
            else:
                self.readiness.pause_input(conn)  # over the input budget, holding input
        elif result is ReadResult.EOF:
            self.close(conn, "peer closed the connection")
            return
        elif result is ReadResult.WANT_WRITE:
            conn.want_write = True
            self.dirty.add(conn)
        if conn.pending_bytes > config.high_water:
            self.readiness.block_reads(conn)

    def _more_room_messages(self, conn: Connection, handled: int, room_messages: int) -> None:
        """A read of nothing but room messages (a room sender; ``room_messages`` was the
        count before it) goes on with the frames ``conn``'s decoder holds, ``frames_per_pass``
        at a time, up to ``room_frames_per_pass`` in the pass and while the pass's room copies
        stay under ``copies_per_pass``: each member's work of the pass (its Acks, one TLS
        write) is shared by up to 4x the messages. No further bytes are read, and it stops
        before any frame that is not a MESSAGE (those keep the 2 ms bound of the first
        read)."""
        config = self.config
        decoder = conn.decoder
        while (
            self.room_messages - room_messages == handled
            and handled < config.room_frames_per_pass
            and self.room_copies < config.copies_per_pass
            and conn.state is ConnState.OPEN
            and decoder.has_frame
        ):
            take = min(config.frames_per_pass, config.room_frames_per_pass - handled)
            try:
                frames = decoder.feed(b"", take)
            except ProtocolError as exc:
                self.reset(conn, exc.code, exc.reason)
                return
            cut = next((i for i, frame in enumerate(frames) if frame[0] != _MESSAGE), None)
            if cut is not None:
                decoder.unread(frames[cut:])
                self._dispatch(conn, frames[:cut])
                break
            handled += len(frames)
            self._dispatch(conn, frames)
        if decoder.buffered != conn.input_held:
            self.intake.count(conn, self.now)

    # -- read-side bounds: backpressure, the input budget, incomplete frames ---------------

    def _dispatch(self, conn: Connection, frames: list[Frame]) -> None:
        """Handle ``frames`` in order; past :data:`_HANDLING_TIME_PER_PASS` the rest go back
        into the decoder and wait for the next pass, whatever each frame costs (MESSAGE
        frames excepted: see :data:`_MESSAGE`)."""
        handlers = self.handlers
        clock = time.perf_counter
        deadline = clock() + _HANDLING_TIME_PER_PASS
        copies_budget = self.config.copies_per_pass
        try:
            for index, (frame_type, payload) in enumerate(frames):
                if conn.state is not ConnState.OPEN:
                    return
                if index and (
                    clock() > deadline
                    if frame_type != _MESSAGE
                    else self.room_copies >= copies_budget
                ):
                    conn.decoder.unread(frames[index:])
                    self.intake.count(conn, self.now)
                    self.readiness.ready.add(conn)
                    return
                handler = handlers.get(frame_type)
                try:
                    if handler is None:
                        type_info(frame_type)  # raises "unknown frame type N"
                        raise ProtocolError(f"frame type {frame_type} is not accepted by the relay")
                    if not conn.uid and not type_info(frame_type).allowed_before_login:
                        self.reset(
                            conn,
                            pb.Reset.NOT_LOGGED_IN,
                            f"log in first ({FrameType(frame_type).name} before LOGIN)",
                        )
                        return
                    handler(self, conn, payload)
                except ProtocolError as exc:
                    self.reset(conn, exc.code, exc.reason)
                    return
        finally:
            if conn.pending_acks:
                # Acks of this read, one chunk (written after the commit like everything
                # else). A connection being reset drops them: its client re-sends those ids
                # and gets the same Acks from the dedup window.
                if conn.state is ConnState.OPEN:
                    self._queue_acks(conn)
                    self.dirty.add(conn)
                conn.pending_acks.clear()

    def _drain_closing(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
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
        if conn.pending_acks:
            self._queue_acks(conn)
        conn.queue(frame)
        self.dirty.add(conn)

    @staticmethod
    def _queue_acks(conn: Connection) -> None:
        """The OK Acks a handler collected in ``conn.pending_acks`` (one per durable message
        of the read being dispatched) go on the queue as one chunk."""
        acks = conn.pending_acks
        conn.queue(b"".join(acks))
        acks.clear()

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
            self.acceptor.handshake(conn)
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
            self.readiness.unblock_reads(conn, self.now)
        if done:
            if conn.state is ConnState.CLOSING:
                self.close(conn, conn.close_reason)
                return
            self.readiness.watch(conn, writing=False)
            if conn.paused or conn.catching_up:
                delivery.resume(self, conn)
        else:
            self.readiness.watch(conn, writing=True)

    @staticmethod
    def _alive(conn: Connection) -> bool:
        return conn.state is not ConnState.CLOSED

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
            log.info(
                "conn=%d peer=%s uid=%d reset %s: %d bytes of output not yet written "
                "dropped so the Reset goes next",
                conn.id,
                conn.peer,
                conn.uid,
                name,
                dropped,
            )
        self.send_message(conn, FrameType.RESET, pb.Reset(code=code, msg=reason[:200]))
        conn.state = ConnState.CLOSING
        conn.close_reason = f"reset {name}: {reason}"
        self.readiness.forget(conn, self.now)
        self._detach_session(conn)
        conn.sent_mark = conn.bytes_taken_by_peer()
        conn.reset_at = self.now
        self.add_timer(_CLOSE_GRACE, TIMER_CLOSE, conn)

    def close(self, conn: Connection, reason: str) -> None:
        """The one teardown path: unregister, close the socket, end the session, log once."""
        if conn.state is ConnState.CLOSED:
            return
        conn.state = ConnState.CLOSED
        log.info(
            "conn=%d peer=%s uid=%d closed: %s", conn.id, conn.peer, conn.uid, reason or "closed"
        )
        self.to_reap.append(conn)
        with contextlib.suppress(KeyError, ValueError):
            self.readiness.selector.unregister(conn.sock)
        with contextlib.suppress(OSError):
            conn.sock.close()
        self.trimmer.freed(conn.pending_bytes)
        conn.discard_output()
        self.readiness.forget(conn, self.now)
        self.admission.remove(conn)
        self._detach_session(conn)

    def _detach_session(self, conn: Connection) -> None:
        if conn.box and conn.uid:
            self.devices.seen(conn.box, self.wall)
        if self.sessions.detach(conn):
            presence.user_changed(self, conn.uid)

    def _reap(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        self.dirty.discard(conn)

    def add_timer(self, delay: float, kind: str, conn: Connection) -> None:
        self.timers.add(self.now + delay, kind, conn.id)

    def _fire_timers(self) -> None:
        connections = self.connections
        for kind, conn_id in self.timers.pop_due(self.now):
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
        if kind == TIMER_HANDSHAKE and conn.state in (ConnState.PEEKING, ConnState.HANDSHAKE):
            self.close(conn, "handshake timeout")
        elif kind == TIMER_LOGIN and conn.state is ConnState.OPEN and not conn.uid:
            if conn.auth_pending:  # its password check waits in line: the relay is slow
                self.add_timer(self.config.login_timeout, TIMER_LOGIN, conn)
                return
            self.reset(conn, pb.Reset.TIMEOUT, f"no login within {self.config.login_timeout:g} s")
        elif kind == TIMER_CLOSE and conn.state is ConnState.CLOSING:
            # A peer still reading gets the rest (and the Reset), within limits.
            taken = conn.bytes_taken_by_peer()
            if taken > conn.sent_mark and self.now - conn.reset_at < _CLOSE_LIMIT:
                conn.sent_mark = taken
                self.add_timer(_CLOSE_GRACE, TIMER_CLOSE, conn)
            else:
                self.close(conn, conn.close_reason + " (peer did not read the Reset)")

    def reset_apart(self, conn: Connection, code: pb.Reset.Code.ValueType, reason: str) -> None:
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
        self.acceptor.stop()
        for conn in list(self.connections.values()):
            if conn.state is ConnState.OPEN:
                self.reset(conn, pb.Reset.SERVER_SHUTDOWN, "relay is shutting down")
            elif conn.state is not ConnState.CLOSING:
                self.close(conn, "relay is shutting down")
        self.end_iteration()
        deadline = time.monotonic() + _CLOSE_GRACE
        while (
            any(c.has_pending() and c.state is ConnState.CLOSING for c in self.connections.values())
            and time.monotonic() < deadline
        ):
            for key, mask in self.readiness.selector.select(0.05):
                if isinstance(key.data, Connection):
                    self._service(key.data, mask)
            self.end_iteration()
        for conn in list(self.connections.values()):
            self.close(conn, conn.close_reason or "relay is shutting down")
        self.end_iteration()
        self.log_stats()
        self.store.close()
        self.hasher.close()
        self.readiness.selector.close()
