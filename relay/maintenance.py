"""The loop's periodic and pressure-driven work: sweeps, housekeeping, admin kicks, the
input budget, the status file and summary line for the admin (:mod:`relay.status`).

Invariants:
- Every piece of work here is bounded per call: expired dedup and token rows are pruned in
  chunks of ``_PRUNE_CHUNK`` (the loop never stalls on it), expired devices in batches of
  :data:`relay.devices.EXPIRY_BATCH`, admin kicks per
  :data:`relay.store.KICKS_PER_CALL`, and sweeps visit only sessions and the connections
  holding input.
- While the store cannot write, housekeeping only rotates the dedup filter and probes the
  store (:mod:`relay.outage`); a write failing here is answered for at the end of the pass,
  like any.
- A connection reset from here goes through :meth:`MaintenanceLoop.reset_apart`: whatever
  that raises stays with that connection.

State owned: when the next prune is due; the status reporter and whether it failed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Protocol

from protocol import chat_pb2 as pb
from relay import presence
from relay.admission import Admission
from relay.connection import Connection, ConnState
from relay.context import Context
from relay.devices import EXPIRY_BATCH
from relay.intake import InputBudget
from relay.memory import MemoryTrimmer
from relay.readiness import Readiness
from relay.status import StatusReporter
from relay.store import StoreUnavailable

log = logging.getLogger("parley.relay")

_PRUNE_CHUNK = 5000  # expired rows deleted per sweep at most: the loop never stalls on it


class MaintenanceLoop(Context, Protocol):
    """What the periodic work uses of the loop: the handlers' context and the read side."""

    intake: InputBudget
    admission: Admission
    trimmer: MemoryTrimmer
    readiness: Readiness
    connections: dict[int, Connection]

    def reset_apart(self, conn: Connection, code: pb.Reset.Code.ValueType, reason: str) -> None: ...


class Maintenance:
    """Periodic and pressure-driven work of one relay (module docstring)."""

    def __init__(self, loop: MaintenanceLoop) -> None:
        self._loop = loop
        self._next_prune = 0.0
        self.status = StatusReporter(loop.config, loop.now, time.time())
        self._report_failed = False

    def report(self) -> None:
        """Once a second: status.json every 2 s, the summary line when due (:mod:`relay.status`:
        no store access but one bounded query per summary). A bug there is logged and the
        relay goes on (logged once): figures for the admin never take the relay down."""
        try:
            self.status.tick(self._loop)
        except Exception:
            if not self._report_failed:
                log.exception("internal error while reporting the relay's status")
            self._report_failed = True

    def housekeeping(self) -> None:
        """Bounded periodic work: rotate the dedup filter; while the store cannot write,
        probe it and nothing else; otherwise prune expired rows in chunks (a write failing
        here is answered for at the end of the pass, like any)."""
        loop = self._loop
        loop.dedup.rotate()
        if not loop.store.available:
            loop.outage.probe(loop)
            return
        with contextlib.suppress(StoreUnavailable):
            if loop.now < self._next_prune:
                return
            pruned = loop.dedup.prune(_PRUNE_CHUNK)
            pruned += loop.store.prune_tokens(loop.wall)
            pruned += self._expire_devices()
            # More left: come back at the next sweep; otherwise in a minute.
            self._next_prune = loop.now + (0.0 if pruned >= _PRUNE_CHUNK else 60.0)

    def _expire_devices(self) -> int:
        """Forget devices not seen for ``device_expiry_days`` (a bounded batch), with what
        their boxes hold; returns a count that asks for another call soon when the batch was
        full."""
        loop = self._loop
        forgotten = loop.devices.expire(
            loop.wall, loop.config.device_expiry_days, set(loop.sessions.by_box)
        )
        for uid, box, name in forgotten:
            loop.inboxes.forget_box(box)
            log.info(
                "device %r of uid=%d forgotten: not seen for %d days",
                name,
                uid,
                loop.config.device_expiry_days,
            )
        return _PRUNE_CHUNK if len(forgotten) >= EXPIRY_BATCH else 0

    def check_admin_actions(self) -> None:
        """Apply what admin commands asked for, unless the store cannot write now (a write
        failing here is answered for at the end of the pass, like any)."""
        if self._loop.store.available:
            with contextlib.suppress(StoreUnavailable):
                self.apply_admin_actions()

    def apply_admin_actions(self) -> None:
        """End the sessions ``parley-relay user passwd|remove`` (another process) asked to
        end, with Reset KICKED and the command's reason; a removed user's online buddies get
        fresh lists. Bounded per call; one PRAGMA when no other process wrote."""
        loop = self._loop
        for uid, reason in loop.store.take_kicks():
            for conn in list(loop.sessions.all_of(uid)):
                loop.reset(conn, pb.Reset.KICKED, reason)
            if loop.store.user_by_uid(uid) is None:
                loop.devices.forget_user(uid)
                loop.rooms.forget_all()  # its memberships went with it, maybe its rooms
                presence.user_removed(loop, uid)

    def sweep(self) -> None:
        """Periodic checks: silent v2 sessions, incomplete frames that stopped arriving (only
        connections holding input are visited), held-back log lines, heap trimming."""
        loop = self._loop
        config = loop.config
        limit = loop.now - config.idle_timeout
        for conn in [c for sessions in loop.sessions.of_user.values() for c in sessions]:
            if conn.version >= 2 and conn.last_rx < limit and conn.state is ConnState.OPEN:
                loop.reset_apart(
                    conn, pb.Reset.TIMEOUT, f"silent for more than {config.idle_timeout:g} s"
                )
        limit = loop.now - config.frame_timeout
        for conn in list(loop.intake.holders):
            if (
                max(conn.last_rx, conn.input_since) < limit
                and not conn.output_blocked
                and not conn.input_paused
                and conn.state is ConnState.OPEN
            ):
                loop.reset_apart(
                    conn,
                    pb.Reset.TIMEOUT,
                    f"a frame incomplete for more than {config.frame_timeout:g} "
                    f"s ({conn.input_held} bytes of it arrived)",
                )
        loop.admission.flush_refusal_log(loop.now)
        loop.trimmer.maybe_trim(loop.now)

    def check_input_budget(self) -> None:
        """Resume paused readers once there is room; if there stays none, reset the largest
        holders of input until there is."""
        loop = self._loop
        for conn in loop.intake.room_again():
            loop.readiness.resume_reading(conn, loop.now)
        evict = loop.intake.to_evict(loop.now)
        if evict:
            log.warning(
                "input budget of %d bytes spent for %g s: resetting the %d largest holders",
                loop.intake.budget,
                loop.intake.grace,
                len(evict),
            )
        for conn in evict:
            loop.reset_apart(
                conn,
                pb.Reset.RATE_LIMITED,
                f"the relay's input buffers are full and this connection held "
                f"the most ({conn.input_held} bytes)",
            )
