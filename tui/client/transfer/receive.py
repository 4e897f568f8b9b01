"""The receiving side of one v2 transfer: part file, progress reports, verification.

Invariants:
- Only the chunk at exactly the contiguous offset is taken (:class:`ReceiveCursor`); any
  other chunk is ignored and answered by a rate-limited FILE_PROGRESS with our offset.
- Memory is bounded: while more than ``write_backlog`` bytes wait for the disk, progress
  is withheld (the sender's window then stops it); beyond ``max_write_backlog`` chunks are
  dropped (only a sender that ignores the window gets there).
- The full size is reported only after the part file's size and SHA-256 matched the offer
  and it was moved into place without overwriting anything (:func:`finalize`).
- On resume the part file is re-read and re-hashed (off the loop) before the FILE_ACCEPT
  that tells the sender where to restart; chunks arriving meanwhile are ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Protocol

from tui.client.transfer.files import (
    PartWriter,
    VerificationFailed,
    finalize,
    remove_quietly,
)
from tui.client.transfer.logic import RateEstimator, ReceiveCursor, TransferOptions
from tui.client.transfer.store import Transfer

log = logging.getLogger(__name__)


class ReceiveHost(Protocol):
    """What a run needs from the manager."""

    options: TransferOptions

    def clock(self) -> float: ...
    def send_progress(self, peer: int, transfer_id: int, offset: int) -> None: ...
    def send_accept(self, run: IncomingRun) -> None: ...
    def reserved_targets(self) -> list[Path]: ...
    def incoming_progress(self, run: IncomingRun) -> None: ...
    def incoming_done(self, run: IncomingRun, path: Path) -> None: ...
    def incoming_error(self, run: IncomingRun, reason: str) -> None: ...


class IncomingRun:
    """Live state of one accepted incoming transfer (the stored row is ``transfer``)."""

    def __init__(self, host: ReceiveHost, transfer: Transfer) -> None:
        assert transfer.part_path is not None and transfer.path is not None
        self.host = host
        self.transfer = transfer
        self.cursor = ReceiveCursor(
            transfer.size,
            ack_every=host.options.ack_every,
            gap_interval=host.options.gap_report_interval,
        )
        self.writer = PartWriter(transfer.part_path, self._on_written)
        self.rate = RateEstimator()
        self.ready = False  # part file open (and re-hashed when resuming)
        self.finishing = False
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        self._ack_timer: asyncio.TimerHandle | None = None
        self._last_chunk = 0.0

    @property
    def peer(self) -> int:
        return self.transfer.peer

    @property
    def received(self) -> int:
        return self.cursor.received

    def start(self, *, resume: bool) -> None:
        """Open (or reopen) the part file, then announce where to start (FILE_ACCEPT)."""
        self.task = asyncio.create_task(self._begin(resume), name=f"recv-{self.transfer.id}")

    async def _begin(self, resume: bool) -> None:
        try:
            offset = await self.writer.open(resume=resume, limit=self.transfer.size)
        except OSError as exc:
            self.host.incoming_error(self, f"cannot write {self.transfer.part_path}: {exc}")
            return
        self.cursor.restart(offset)
        self.rate.update(self.host.clock(), offset)
        self.ready = True
        self.host.send_accept(self)
        if offset >= self.transfer.size:
            await self._finish()

    def reannounce(self) -> None:
        """We or the sender came back: tell the sender our offset again."""
        if self.ready and not self.finishing and not self.closed:
            self.host.send_accept(self)

    def on_chunk(self, offset: int, data: bytes) -> None:
        if not self.ready or self.finishing or self.closed:
            return
        cursor, writer, options = self.cursor, self.writer, self.host.options
        if writer.backlog + len(data) > options.max_write_backlog:
            return  # the disk is far behind and the sender ignores our window: drop
        if not cursor.accepts(offset, len(data)):
            for report in cursor.gap_reports(self.host.clock()):
                self.host.send_progress(self.peer, self.transfer.transfer_id, report)
            return
        cursor.take(len(data))
        writer.write(data)
        due = cursor.due_report(held=writer.backlog > options.write_backlog)
        if due is not None:
            self.host.send_progress(self.peer, self.transfer.transfer_id, due)
        elif self._ack_timer is None:
            self._ack_timer = asyncio.get_running_loop().call_later(
                options.ack_delay, self._delayed_ack
            )
        self._last_chunk = self.host.clock()
        if cursor.received >= self.transfer.size:
            self.finishing = True
            self.task = asyncio.create_task(self._finish(), name=f"verify-{self.transfer.id}")

    def _delayed_ack(self) -> None:
        """No report for a while: if chunks stopped coming, report what we have."""
        self._ack_timer = None
        if self.closed or self.finishing:
            return
        quiet = self.host.clock() - self._last_chunk
        delay = self.host.options.ack_delay
        if quiet < delay:  # chunks are still coming: look again later
            self._ack_timer = asyncio.get_running_loop().call_later(
                delay - quiet, self._delayed_ack
            )
            return
        if self.writer.backlog > self.host.options.write_backlog:
            return  # flow control: _on_written reports once the disk catches up
        report = self.cursor.delayed_report()
        if report is not None:
            self.host.send_progress(self.peer, self.transfer.transfer_id, report)

    def _on_written(self, written: int) -> None:
        if self.closed:
            return
        if self.writer.error is not None and not self.finishing:
            self.finishing = True
            self.host.incoming_error(self, f"cannot write the file: {self.writer.error}")
            return
        report = self.cursor.due_report(held=self.writer.backlog > self.host.options.write_backlog)
        if report is not None:
            self.host.send_progress(self.peer, self.transfer.transfer_id, report)
        self.rate.update(self.host.clock(), written)
        self.host.incoming_progress(self)

    async def _finish(self) -> None:
        self.finishing = True
        transfer = self.transfer
        assert transfer.part_path is not None and transfer.path is not None
        started = self.host.clock()
        try:
            digest = await self.writer.digest()
            if self.writer.written != transfer.size:
                raise VerificationFailed(
                    f"size mismatch: got {self.writer.written} bytes, offered {transfer.size}"
                )
            if digest != transfer.sha256:
                raise VerificationFailed("SHA-256 mismatch: the file arrived corrupted")
            await self.writer.close()
            final = await finalize(transfer.part_path, transfer.path, self.host.reserved_targets())
        except (VerificationFailed, OSError) as exc:
            await self.writer.close()
            await remove_quietly(transfer.part_path)
            self.host.incoming_error(self, str(exc))
            return
        log.info(
            "transfer %d: %d bytes verified and in place in %.3f s",
            transfer.id,
            transfer.size,
            self.host.clock() - started,
        )
        self.cursor.confirm_complete()
        self.host.incoming_done(self, final)

    async def stop(self, *, remove_part: bool) -> None:
        """Stop receiving (idempotent): close the part file, optionally delete it."""
        if self.closed:
            return
        self.closed = True
        if self._ack_timer is not None:
            self._ack_timer.cancel()
            self._ack_timer = None
        task, self.task = self.task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await self.writer.close()
        if remove_part:
            await remove_quietly(self.transfer.part_path)
