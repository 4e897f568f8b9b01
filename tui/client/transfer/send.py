"""The sending side of one v2 transfer: a pump task that streams FILE_CHUNKs.

Invariants:
- Bytes outstanding never exceed the transfer's window (:class:`SendWindow`) nor, summed
  over every transfer to the same peer, the host's ``peer_window``.
- The pump sends only while the session is connected and the peer online; otherwise it
  waits on ``wake`` (set by progress, accepts and presence changes), a probe or stall
  deadline, or at most a second. It never loops without yielding to the event loop.
- Chunks are read off the loop (:class:`ChunkReader`); after each send the pump awaits the
  connection's drain, so the session's write buffer stays near its high-water mark.
- Completion is decided only by a FILE_PROGRESS carrying the full size (the receiver sends
  it after verifying); the pump itself never declares success.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from tui.client.aio import wait_event
from tui.client.transfer.files import ChunkReader, SourceChanged, file_signature
from tui.client.transfer.logic import RateEstimator, SendWindow, TransferOptions
from tui.client.transfer.store import Transfer

log = logging.getLogger(__name__)


class SendHost(Protocol):
    """What a run needs from the manager."""

    options: TransferOptions

    def clock(self) -> float: ...
    def peer_ready(self, peer: int) -> bool: ...
    def peer_outstanding(self, peer: int) -> int: ...
    def send_chunk(self, peer: int, transfer_id: int, offset: int, data: bytes) -> bool: ...
    async def drain(self) -> None: ...
    def outgoing_progress(self, run: OutgoingRun) -> None: ...
    def outgoing_done(self, run: OutgoingRun) -> None: ...
    def outgoing_error(self, run: OutgoingRun, reason: str) -> None: ...


class OutgoingRun:
    """Live state of one accepted outgoing transfer (the stored row is ``transfer``)."""

    def __init__(self, host: SendHost, transfer: Transfer) -> None:
        assert transfer.path is not None
        options = host.options
        self.host = host
        self.transfer = transfer
        self.window = SendWindow(
            transfer.size,
            window=options.window,
            chunk=options.chunk_size,
            stall_timeout=options.stall_timeout,
        )
        self.window.restart(transfer.offset, host.clock())
        self.reader = ChunkReader(transfer.path, transfer.size)
        self.rate = RateEstimator()
        self.sent_bytes = transfer.sent_bytes
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.finished = False
        self._pace_until = 0.0

    @property
    def peer(self) -> int:
        return self.transfer.peer

    @property
    def acked(self) -> int:
        return self.window.acked

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._pump(), name=f"send-{self.transfer.id}")

    def restart(self, offset: int) -> None:
        """FILE_ACCEPT (again): the receiver has ``offset`` bytes; go on from there."""
        self.window.restart(offset, self.host.clock())
        self.rate.update(self.host.clock(), self.window.acked)
        self.wake.set()

    def on_progress(self, offset: int) -> None:
        now = self.host.clock()
        if offset >= self.window.size:
            self.window.on_progress(self.window.size, now)
            self.finished = True
            self.rate.update(now, self.window.acked)
            self.host.outgoing_done(self)
            return
        if self.window.on_progress(offset, now):
            log.debug("transfer %d: go back to %d", self.transfer.id, offset)
        self.rate.update(now, self.window.acked)
        self.host.outgoing_progress(self)
        self.wake.set()

    async def _wait(self, timeout: float | None) -> None:
        await wait_event(self.wake, timeout)

    async def _pump(self) -> None:
        host, window = self.host, self.window
        try:
            await self._check_source()
            while not self.finished:
                self.wake.clear()
                if not host.peer_ready(self.peer):
                    window.touch(host.clock())  # nothing can be in flight to an absent peer
                    await self._wait(1.0)
                    continue
                budget = host.options.peer_window - host.peer_outstanding(self.peer)
                length = min(window.sendable(), budget)
                if length <= 0:
                    await self._idle()
                    continue
                offset = window.next
                data = await self.reader.read(offset, length)
                if self.finished or window.next != offset:
                    continue  # a restart or a rewind happened while reading
                if not host.send_chunk(self.peer, self.transfer.transfer_id, offset, data):
                    # The connection is going away; a cached read does not yield, so wait
                    # here or the loop never gets to notice (and we would spin).
                    await self._wait(0.05)
                    continue
                window.sent(offset, len(data), host.clock())
                self.sent_bytes += len(data)
                await host.drain()
                await self._pace(len(data))
        except asyncio.CancelledError:
            raise
        except (SourceChanged, OSError) as exc:
            host.outgoing_error(self, f"cannot read {self.transfer.name}: {exc}")
        finally:
            await self.reader.close()

    async def _pace(self, sent: int) -> None:
        """Honour ``options.max_rate``: sleep until the wire may take the next bytes."""
        rate = self.host.options.max_rate
        if rate <= 0:
            return
        now = self.host.clock()
        self._pace_until = max(self._pace_until, now) + sent / rate
        if self._pace_until - now > 0.001:
            await asyncio.sleep(self._pace_until - now)

    async def _idle(self) -> None:
        """Nothing may be sent: probe the tail, go back after a stall, or wait."""
        host, window = self.host, self.window
        now = host.clock()
        if window.check_stall(now):
            log.info(
                "transfer %d: no progress for %.2f s, resending from %d",
                self.transfer.id,
                window.rto / 2,
                window.acked,
            )
            return
        probe = window.take_probe(now)
        if probe is not None:
            data = await self.reader.read(*probe)
            if host.send_chunk(self.peer, self.transfer.transfer_id, probe[0], data):
                self.sent_bytes += len(data)
            return
        deadlines = [d for d in (window.stall_deadline(), window.probe_deadline()) if d]
        timeout = min(deadlines) - now if deadlines else 1.0
        await self._wait(min(max(timeout, 0.005), 1.0))

    async def _check_source(self) -> None:
        assert self.transfer.path is not None
        size, mtime = await asyncio.to_thread(file_signature, self.transfer.path)
        if size != self.transfer.size or (
            self.transfer.source_mtime is not None and mtime != self.transfer.source_mtime
        ):
            raise SourceChanged(f"{self.transfer.path} was modified since it was offered")

    async def stop(self) -> None:
        """Stop the pump (idempotent); the stored row is the manager's business."""
        self.finished = True
        task, self.task = self.task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
