"""The transfer engine's state: runs, offers awaiting the relay, events, throttling.

Owns (nothing else reads or writes them): the run maps (by local id and by wire key), the
offers whose relay answer is still awaited, the event hub, the progress/persist throttles
and the engine's background tasks. :mod:`~tui.client.transfer.wire` (session → engine) and
:mod:`~tui.client.transfer.manager` (the public API) hold an engine and go through its
methods; the runs reach it as their host.

Invariants:
- Exactly one run exists per ACTIVE v2 transfer that is being worked on, registered under
  its local id and its wire key ``(peer, transfer_id)``; a run leaves the maps *before*
  its transfer reaches a final state, so nothing is dispatched to a finished run.
- Every state change goes through the store first (:meth:`TransferEngine.end`), then the
  event is emitted with the stored snapshot.
- Progress events are throttled to ``options.progress_interval`` per transfer and offsets
  persisted every ``options.persist_interval``; final states are always emitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from protocol import chat_pb2 as pb
from tui.client.session import ClientSession
from tui.client.store import default_data_dir
from tui.client.supervisor import NotConnected
from tui.client.transfer.events import (
    TransferCompleted,
    TransferEvent,
    TransferFailed,
    TransferHub,
    TransferListener,
    TransferProgress,
    TransferUpdated,
)
from tui.client.transfer.files import remove_quietly
from tui.client.transfer.logic import TransferOptions
from tui.client.transfer.receive import IncomingRun
from tui.client.transfer.send import OutgoingRun
from tui.client.transfer.store import Transfer, TransferState, TransferStore, transfers_path

_M = pb.Message


class TransferEngine:
    """The runs, their persistence and events, and the callbacks the runs use (it is the
    :class:`~tui.client.transfer.send.SendHost` and
    :class:`~tui.client.transfer.receive.ReceiveHost` of every run)."""

    def __init__(
        self,
        session: ClientSession,
        *,
        data_dir: Path | None = None,
        store: TransferStore | None = None,
        options: TransferOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.options = options or TransferOptions()
        self.clock = clock
        self._owns_store = store is None
        self._created: Path | None = None  # the file this engine created (see close)
        if store is None:
            endpoint = session.endpoint
            base = data_dir if data_dir is not None else default_data_dir()
            path = transfers_path(base, endpoint.host, endpoint.port, session.username)
            self._created = None if path.exists() else path
            store = TransferStore.open(path)
        self.store = store
        self._hub = TransferHub()
        self._out: dict[int, OutgoingRun] = {}
        self._in: dict[int, IncomingRun] = {}
        self._in_wire: dict[tuple[int, int], IncomingRun] = {}
        self._out_wire: dict[tuple[int, int], OutgoingRun] = {}
        self._offers: dict[int, int] = {}  # offer msg id → local id, until the relay answers
        self._last_event: dict[int, float] = {}
        self._last_persist: dict[int, float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- events and offers ------------------------------------------------------------

    def add_listener(self, listener: TransferListener) -> Callable[[], None]:
        return self._hub.add_listener(listener)

    def emit(self, event: TransferEvent) -> None:
        self._hub.emit(event)

    def await_offer_outcome(self, msg_id: int, local_id: int) -> None:
        """Remember that the relay's answer to offer ``msg_id`` decides transfer ``local_id``."""
        self._offers[msg_id] = local_id

    def awaits_offer_outcome(self, msg_id: int) -> bool:
        return msg_id in self._offers

    def take_offer(self, msg_id: int) -> int | None:
        """The transfer whose offer ``msg_id`` is answered (or moot), forgetting the offer."""
        return self._offers.pop(msg_id, None)

    # --- runs ----------------------------------------------------------------------------

    def incoming_run(self, local_id: int) -> IncomingRun | None:
        return self._in.get(local_id)

    def incoming_runs(self) -> list[IncomingRun]:
        return list(self._in.values())

    def incoming_run_on_wire(self, peer: int, transfer_id: int) -> IncomingRun | None:
        return self._in_wire.get((peer, transfer_id))

    def outgoing_run_on_wire(self, peer: int, transfer_id: int) -> OutgoingRun | None:
        return self._out_wire.get((peer, transfer_id))

    # --- what runs call ----------------------------------------------------------------

    def peer_ready(self, peer: int) -> bool:
        """Connected, and the peer is online (or not in our buddy list: let the relay say)."""
        if not self.session.connected:
            return False
        buddy = self.session.buddies.get(peer)
        return buddy is None or buddy.online

    def peer_outstanding(self, peer: int) -> int:
        return sum(run.window.outstanding for run in self._out.values() if run.peer == peer)

    def send_chunk(self, peer: int, transfer_id: int, offset: int, data: bytes) -> bool:
        info = pb.FileInfo(transfer_id=transfer_id, offset=offset)
        try:
            return self.session.send_ephemeral(peer, _M.FILE_CHUNK, data=data, file=info)
        except (NotConnected, ConnectionError):
            return False

    def send_progress(self, peer: int, transfer_id: int, offset: int) -> None:
        info = pb.FileInfo(transfer_id=transfer_id, offset=offset)
        with contextlib.suppress(NotConnected, ConnectionError):
            self.session.send_ephemeral(peer, _M.FILE_PROGRESS, file=info)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self.session.drain()

    def send_accept(self, run: IncomingRun) -> None:
        offset = run.received
        self.send_durable(run.transfer, _M.FILE_ACCEPT, offset=offset)
        run.transfer = self.store.update(run.transfer, offset=offset, start_offset=offset)
        self._hub.emit(TransferUpdated(run.transfer))

    def reserved_targets(self) -> list[Path]:
        """Target paths of incoming transfers in progress (no two may pick the same)."""
        return [run.transfer.path for run in self._in.values() if run.transfer.path is not None]

    def outgoing_progress(self, run: OutgoingRun) -> None:
        self._progress(run.transfer, run.acked, run.sent_bytes, run.rate.rate(), run.rate.eta)

    def incoming_progress(self, run: IncomingRun) -> None:
        self._progress(run.transfer, run.writer.written, 0, run.rate.rate(), run.rate.eta)

    def outgoing_done(self, run: OutgoingRun) -> None:
        transfer = run.transfer
        self._forget_run(transfer.id)
        self.spawn(run.stop())
        self._progress(
            transfer, transfer.size, run.sent_bytes, run.rate.rate(), run.rate.eta, force=True
        )
        self.complete(transfer, sent_bytes=run.sent_bytes)

    def outgoing_error(self, run: OutgoingRun, reason: str) -> None:
        self._forget_run(run.transfer.id)
        self.send_durable(run.transfer, _M.FILE_CANCEL, text=reason[:200])
        self.end(
            run.transfer,
            TransferState.FAILED,
            reason,
            lambda t: TransferFailed(t, reason),
            offset=run.acked,
            sent_bytes=run.sent_bytes,
        )

    def incoming_done(self, run: IncomingRun, path: Path) -> None:
        transfer = run.transfer
        self._forget_run(transfer.id)
        self.send_progress(transfer.peer, transfer.transfer_id, transfer.size)
        self._progress(transfer, transfer.size, 0, run.rate.rate(), run.rate.eta, force=True)
        self.complete(transfer, path=path)

    def incoming_error(self, run: IncomingRun, reason: str) -> None:
        self._forget_run(run.transfer.id)
        self.spawn(run.stop(remove_part=True))
        self.send_durable(run.transfer, _M.FILE_CANCEL, text=reason[:200])
        self.end(run.transfer, TransferState.FAILED, reason, lambda t: TransferFailed(t, reason))

    # --- internals -------------------------------------------------------------------------

    def start_outgoing(self, transfer: Transfer, offset: int) -> OutgoingRun:
        run = self._out.get(transfer.id)
        if run is None:
            run = OutgoingRun(self, transfer)
            self._out[transfer.id] = run
            self._out_wire[(transfer.peer, transfer.transfer_id)] = run
            run.start()
        run.transfer = transfer
        run.restart(offset)
        return run

    def start_incoming(self, transfer: Transfer, *, resume: bool) -> IncomingRun:
        run = IncomingRun(self, transfer)
        self._in[transfer.id] = run
        self._in_wire[(transfer.peer, transfer.transfer_id)] = run
        run.start(resume=resume)
        return run

    def send_durable(
        self, transfer: Transfer, kind: int, *, text: str = "", offset: int = 0
    ) -> None:
        info = pb.FileInfo(
            transfer_id=transfer.transfer_id,
            size=transfer.size,
            sha256=transfer.sha256,
            offset=offset,
        )
        self.session.send(transfer.peer, kind, text=text, file=info)

    def _progress(
        self,
        transfer: Transfer,
        offset: int,
        sent: int,
        rate: float,
        eta: Callable[[int], float | None],
        *,
        force: bool = False,
    ) -> None:
        now = self.clock()
        key = transfer.id
        last = self._last_event.get(key, float("-inf"))
        if not force and now - last < self.options.progress_interval:
            return
        self._last_event[key] = now
        remaining = eta(transfer.size - offset)
        if now - self._last_persist.get(key, float("-inf")) >= self.options.persist_interval:
            self._last_persist[key] = now
            self.store.update(transfer, offset=offset, sent_bytes=sent)
        snapshot = replace(transfer, offset=offset, sent_bytes=sent, rate=rate, eta=remaining)
        self._hub.emit(TransferProgress(snapshot, offset, transfer.size, rate, remaining))

    def live(self, transfer: Transfer) -> Transfer:
        """``transfer`` with the live values of its run, if it has one."""
        out, inc = self._out.get(transfer.id), self._in.get(transfer.id)
        if out is not None:
            return replace(
                transfer,
                offset=out.acked,
                sent_bytes=out.sent_bytes,
                rate=out.rate.rate(),
                eta=out.rate.eta(transfer.size - out.acked),
            )
        if inc is not None:
            written = inc.writer.written
            return replace(
                transfer,
                offset=written,
                rate=inc.rate.rate(),
                eta=inc.rate.eta(transfer.size - written),
            )
        return transfer

    def end(
        self,
        transfer: Transfer,
        state: TransferState,
        reason: str,
        event: Callable[[Transfer], TransferEvent],
        **changes: Any,
    ) -> Transfer:
        """Move ``transfer`` to the final ``state`` and emit ``event(snapshot)`` — unless
        it already was final (something else ended it while we were awaiting): then
        nothing changes and nothing is emitted, so each transfer has one final event."""
        self._last_event.pop(transfer.id, None)
        self._last_persist.pop(transfer.id, None)
        current = self.store.get(transfer.id)
        if current is None or current.state.final:
            return current or transfer
        ended = self.store.update(transfer, state=state, reason=reason, **changes)
        self._hub.emit(event(ended))
        return ended

    def complete(self, transfer: Transfer, *, path: Path | None = None, **changes: Any) -> Transfer:
        """:meth:`end` as COMPLETED with the whole size, emitting TransferCompleted with the
        file: ``path`` for a received file (stored with it), the source for a sent one."""
        if path is not None:
            changes["path"] = path
        return self.end(
            transfer,
            TransferState.COMPLETED,
            "",
            lambda t: TransferCompleted(t, path or t.path or Path()),
            offset=transfer.size,
            **changes,
        )

    def _forget_run(self, local_id: int) -> OutgoingRun | IncomingRun | None:
        out = self._out.pop(local_id, None)
        if out is not None:
            self._out_wire.pop((out.peer, out.transfer.transfer_id), None)
            return out
        inc = self._in.pop(local_id, None)
        if inc is not None:
            self._in_wire.pop((inc.peer, inc.transfer.transfer_id), None)
        return inc

    async def stop_run(self, local_id: int, *, remove_part: bool, persist: bool = False) -> None:
        run = self._forget_run(local_id)
        if isinstance(run, OutgoingRun):
            await run.stop()
            if persist:
                self.store.update(run.transfer, offset=run.acked, sent_bytes=run.sent_bytes)
        elif isinstance(run, IncomingRun):
            await run.stop(remove_part=remove_part)
            if persist:
                self.store.update(run.transfer, offset=run.writer.written)
        elif remove_part:
            stored = self.store.get(local_id)
            if stored is not None and not stored.outgoing:
                await remove_quietly(stored.part_path)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def wake_all(self) -> None:
        for run in self._out.values():
            run.wake.set()

    async def close(self) -> None:
        """Stop every run, persisting offsets (ACTIVE transfers stay ACTIVE and resume on
        the next start), cancel the background tasks, drop listeners, close an owned store."""
        for local_id in [*self._out, *self._in]:
            await self.stop_run(local_id, remove_part=False, persist=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._hub.clear()
        if self._owns_store:
            unused = self.session.uid is None and not self.store.all(limit=1)
            self.store.close()
            if unused and self._created is not None:  # the login failed: leave no file
                for suffix in ("", "-wal", "-shm", "-journal"):
                    Path(f"{self._created}{suffix}").unlink(missing_ok=True)
