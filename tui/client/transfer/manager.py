"""File transfer over a :class:`~tui.client.session.ClientSession` (PROTOCOL.md section 8).

Typical use (create the manager on the event loop and before ``session.start()``, so no
offer in the backlog is missed)::

    manager = TransferManager(session, data_dir=data_dir)
    manager.add_listener(on_transfer_event)     # TransferOffered, …Progress, …Completed
    await session.start()
    sent = await manager.offer(bob_uid, Path("report.pdf"))   # sending
    await manager.accept(offered.id)            # receiving, into the downloads directory
    await manager.close()                       # before session.close()

Every method takes the transfer's *local* id (``Transfer.id``); ``Transfer.transfer_id``
is the wire id. Events: see :mod:`tui.client.transfer.events`. Pass the same ``data_dir``
as the session's: the transfers database lives next to its history database.

Wire protocol: FILE_OFFER (durable; msg = name, file = {transfer_id, size, sha256}) →
FILE_ACCEPT (durable; file.offset = where to start, > 0 to resume) or FILE_DECLINE →
FILE_CHUNK (ephemeral; ≤ 64 KiB at file.offset) answered by FILE_PROGRESS (ephemeral;
file.offset = contiguous bytes received, every ``ack_every`` bytes) → a final
FILE_PROGRESS with the full size once the receiver verified size and SHA-256 and moved the
file into place; FILE_CANCEL (durable; msg = reason) from either side ends it. A v1 peer
sends and gets one FILE message (msg = name, data = the whole file) instead.

Invariants:
- Every transfer is a row of the :class:`~tui.client.transfer.store.TransferStore` before
  any byte of it moves, and its state only moves forward. A restarted app resumes: the
  receiver re-hashes its part file and re-sends FILE_ACCEPT with its offset (also whenever
  it reconnects or sees the sender come back online); the sender restarts from whatever
  offset an accept carries.
- Losses (ephemeral chunks dropped by the relay or by a disconnected session) are repaired
  by the sender (see :class:`~tui.client.transfer.logic.SendWindow`): go-back-N on a
  *duplicate* report — one that does not advance the acknowledged offset; an ordinary
  report is always below what was sent, so "below what was sent" alone cannot mean a
  loss — a one-chunk tail-loss probe after about two RTTs, and a re-send from the
  acknowledged offset after the retransmission timeout (3 s until an RTT is measured).
  The receiver only ever takes the next byte; it answers an out-of-order chunk with such a
  duplicate, and reports ``size - 1`` while it verifies ("all here, checking").
- Received files never overwrite anything and never land outside the chosen directory;
  received names are reduced to safe base names first.
- Nothing here blocks the loop (disk work: :mod:`tui.client.transfer.files`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import platformdirs

from protocol import chat_pb2 as pb
from protocol.validation import safe_basename
from tui.client.history import HistoryEntry
from tui.client.session import ClientSession
from tui.client.transfer.engine import TransferEngine
from tui.client.transfer.events import (
    TransferCancelled,
    TransferDeclined,
    TransferFailed,
    TransferListener,
    TransferUpdated,
)
from tui.client.transfer.files import choose_target, file_signature, hash_file, write_whole
from tui.client.transfer.logic import TransferOptions
from tui.client.transfer.names import part_name
from tui.client.transfer.store import Transfer, TransferState, TransferStore
from tui.client.transfer.wire import TransferWire

_M = pb.Message


class TransferError(Exception):
    """The request cannot be done (unknown transfer, wrong state, v1 peer and a file too
    large for one message, unusable directory…); the message says why, for the user."""


class TransferManager:
    """The public API of file transfer, composed of a :class:`TransferEngine` (runs, state,
    events) and the :class:`TransferWire` that feeds it the session's traffic; see the
    module docstring. Owns the default downloads directory. Construct it on the event
    loop; all methods
    run on the session's loop. Arguments: ``data_dir`` (where the transfers database goes,
    next to the session's history; default: the client's data dir) or an open ``store``;
    ``downloads_dir`` (default target of :meth:`accept`: platformdirs' downloads dir);
    ``options`` (:class:`TransferOptions`)."""

    def __init__(
        self,
        session: ClientSession,
        *,
        data_dir: Path | None = None,
        store: TransferStore | None = None,
        downloads_dir: Path | None = None,
        options: TransferOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = TransferEngine(
            session, data_dir=data_dir, store=store, options=options, clock=clock
        )
        self.session = session
        self.store = self.engine.store
        self.options = self.engine.options
        self.downloads_dir = downloads_dir
        wire = TransferWire(self.engine)
        self._closed = False
        self._detach = wire.attach()
        wire.load()

    # --- reading -------------------------------------------------------------------------

    def add_listener(self, listener: TransferListener) -> Callable[[], None]:
        """Call ``listener(event)`` for every transfer event (synchronously, on the loop;
        it must not block). Returns a function that unsubscribes."""
        return self.engine.add_listener(listener)

    def transfers(self, *, include_final: bool = True, limit: int = 1000) -> list[Transfer]:
        """Transfers, newest first, with live offsets, rates and ETAs."""
        stored = self.store.all(include_final=include_final, limit=limit)
        return [self.engine.live(transfer) for transfer in stored]

    def reserved_targets(self) -> list[Path]:
        """Target paths of incoming transfers in progress (a new target must differ)."""
        return self.engine.reserved_targets()

    def get(self, transfer: int) -> Transfer | None:
        """The transfer with local id ``transfer`` (live values), or None."""
        stored = self.store.get(transfer)
        return self.engine.live(stored) if stored is not None else None

    # --- sending -------------------------------------------------------------------------

    async def offer(self, peer: int, path: Path | str) -> Transfer:
        """Offer the file at ``path`` to buddy ``peer``, or to a room (``peer`` = the room's
        negative id: each member who accepts gets a transfer of its own, and the room
        offer stays OFFERED until cancelled); returns the OFFERED transfer. The
        file is hashed first (off the loop). ``TransferError`` for something that is not a
        readable regular file, and for a v1 peer when the file does not fit one message.
        The relay may still refuse (size, open transfers…): a TransferFailed event says so.
        Works offline too: the offer goes out when the session connects."""
        source = Path(path).expanduser().absolute()
        try:
            if not await asyncio.to_thread(source.is_file):
                raise TransferError(f"{source} is not a regular file")
            size, mtime = await asyncio.to_thread(file_signature, source)
        except OSError as exc:
            raise TransferError(f"cannot read {source}: {exc.strerror or exc}") from exc
        name = safe_basename(source.name)
        buddy = self.session.buddies.get(peer)
        if buddy is not None and buddy.protocol_version == 0:
            return await self._offer_v1(peer, source, name, size, mtime)
        try:
            digest, hashed = await hash_file(source)
            unchanged = await asyncio.to_thread(file_signature, source) == (size, mtime)
        except OSError as exc:
            raise TransferError(f"cannot read {source}: {exc.strerror or exc}") from exc
        if hashed != size or not unchanged:
            raise TransferError(f"{source} changed while it was being read; try again")
        transfer_id = self._new_transfer_id(peer)
        info = pb.FileInfo(transfer_id=transfer_id, size=size, sha256=digest)
        entry = self.session.send(peer, _M.FILE_OFFER, text=name, file=info)
        return self._record_offer(entry, peer, transfer_id, source, name, size, digest, mtime)

    async def _offer_v1(
        self, peer: int, source: Path, name: str, size: int, mtime: int
    ) -> Transfer:
        limit = self.options.v1_max_file
        if size > limit:
            raise TransferError(
                f"this buddy uses an older Parley (protocol v1), which can only receive a "
                f"file as one message of at most {limit:,} bytes, and {name} is {size:,} "
                "bytes: send a smaller file, or ask them to upgrade"
            )
        data = await asyncio.to_thread(source.read_bytes)
        if len(data) != size:
            raise TransferError(f"{source} changed while it was being read; try again")
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).digest())
        entry = self.session.send(peer, _M.FILE, text=name, data=data)
        return self._record_offer(entry, peer, 0, source, name, size, digest, mtime, legacy=True)

    def _record_offer(
        self,
        entry: HistoryEntry,
        peer: int,
        transfer_id: int,
        source: Path,
        name: str,
        size: int,
        digest: bytes,
        mtime: int,
        *,
        legacy: bool = False,
    ) -> Transfer:
        """Store the outgoing transfer whose offer ``entry`` was just queued, and announce it."""
        transfer = self.store.add(
            Transfer(
                0,
                True,
                peer,
                transfer_id,
                name,
                name,
                size,
                digest,
                TransferState.OFFERED,
                path=source,
                legacy=legacy,
                offer_msg_id=entry.msg_id,
                source_mtime=mtime,
            )
        )
        self.engine.await_offer_outcome(entry.msg_id, transfer.id)
        self.engine.emit(TransferUpdated(transfer))
        return transfer

    def _new_transfer_id(self, peer: int) -> int:
        while True:
            candidate = secrets.randbits(63)
            if candidate and self.store.find(True, peer, candidate) is None:
                return candidate

    # --- receiving -----------------------------------------------------------------------

    async def accept(
        self, transfer: int, directory: Path | str | None = None, name: str | None = None
    ) -> Transfer:
        """Accept an offered file into ``directory`` (default: the downloads directory) as
        ``name`` (default: the offered name). Either name is reduced to a safe base name,
        and an existing file is never overwritten: ``name (1).ext``… is used instead.
        Returns the ACTIVE transfer (``path`` = intended target; the final path comes with
        TransferCompleted), or for a v1 file the COMPLETED one. ``TransferError`` if it is
        not an open offer or the directory is unusable."""
        current = self._require(transfer, outgoing=False, states={TransferState.OFFERED})
        target_dir = self._directory(directory)
        wanted = name or current.name
        if current.legacy:
            return await self._accept_v1(current, target_dir, wanted)
        with contextlib.suppress(OSError):
            free = (await asyncio.to_thread(shutil.disk_usage, target_dir)).free
            if free < current.size:
                raise TransferError(
                    f"{target_dir} has {free:,} bytes free, the file needs {current.size:,}"
                )
        current = self._require(transfer, outgoing=False, states={TransferState.OFFERED})
        try:  # a few lstat() calls, done here so that no other accept can take the name
            target = choose_target(target_dir, wanted, self.engine.reserved_targets())
        except FileExistsError as exc:
            raise TransferError(str(exc)) from exc
        part = target_dir / part_name(target.name, str(current.id))
        accepted = self.store.update(
            current, state=TransferState.ACTIVE, path=target, part_path=part, offset=0
        )
        self.engine.start_incoming(accepted, resume=False)
        self.engine.emit(TransferUpdated(accepted))
        return accepted

    async def _accept_v1(self, transfer: Transfer, directory: Path, name: str) -> Transfer:
        entry = None
        if transfer.history_id is not None:
            entry = self.session.store.get(transfer.history_id)
        if entry is None:
            reason = "the file's data is no longer in the local history"
            return self.engine.end(
                transfer, TransferState.FAILED, reason, lambda t: TransferFailed(t, reason)
            )
        try:
            path = await write_whole(directory, name, entry.data, self.engine.reserved_targets())
        except OSError as exc:
            raise TransferError(f"cannot write into {directory}: {exc.strerror or exc}") from exc
        return self.engine.complete(transfer, path=path)

    def decline(self, transfer: int) -> Transfer:
        """Decline an offered file; a v2 sender is told (FILE_DECLINE), a v1 one cannot be."""
        current = self._require(transfer, outgoing=False, states={TransferState.OFFERED})
        if not current.legacy:
            self.engine.send_durable(current, _M.FILE_DECLINE)
        return self.engine.end(
            current,
            TransferState.DECLINED,
            "declined",
            lambda t: TransferDeclined(t, by_peer=False),
        )

    def _directory(self, directory: Path | str | None) -> Path:
        if directory is None:
            default = self.downloads_dir or Path(platformdirs.user_downloads_dir())
            with contextlib.suppress(OSError):
                default.mkdir(parents=True, exist_ok=True)
            directory = default
        path = Path(directory).expanduser().absolute()
        if not path.is_dir():
            raise TransferError(f"{path} is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise TransferError(f"{path} is not writable")
        return path

    # --- either side -----------------------------------------------------------------------

    async def cancel(self, transfer: int, reason: str = "") -> Transfer:
        """Cancel an unfinished transfer, either direction; the peer is told (FILE_CANCEL
        with ``reason``). An incoming offer not yet accepted is declined instead. A v1 file
        already handed to the relay cannot be taken back: it is only marked cancelled."""
        current = self._require(
            transfer, outgoing=None, states={TransferState.OFFERED, TransferState.ACTIVE}
        )
        if not current.outgoing and current.state is TransferState.OFFERED:
            return self.decline(transfer)
        if current.offer_msg_id is not None:
            self.engine.take_offer(current.offer_msg_id)
        await self.engine.stop_run(current.id, remove_part=True)
        latest = self.store.get(current.id)
        if latest is None or latest.state.final:
            return latest or current  # the peer ended it while we were stopping
        if not current.legacy and current.peer > 0:  # a room takes no FILE_CANCEL
            self.engine.send_durable(current, _M.FILE_CANCEL, text=reason[:200])
        why = reason or "cancelled"
        return self.engine.end(
            current,
            TransferState.CANCELLED,
            why,
            lambda t: TransferCancelled(t, by_peer=False, reason=why),
        )

    def forget(self, transfer: int) -> bool:
        """Drop a finished transfer from the list (files are not touched); False if it is
        unknown or not finished."""
        return self.store.delete(transfer)

    async def close(self) -> None:
        """Stop every run, persisting offsets (ACTIVE transfers stay ACTIVE and resume on
        the next start), and detach from the session. Idempotent; call it before
        ``session.close()``."""
        if self._closed:
            return
        self._closed = True
        for detach in self._detach:
            detach()
        await self.engine.close()

    def _require(
        self, transfer: int, *, outgoing: bool | None, states: set[TransferState]
    ) -> Transfer:
        current = self.store.get(transfer)
        if current is None or (outgoing is not None and current.outgoing != outgoing):
            direction = {None: "", True: "outgoing ", False: "incoming "}[outgoing]
            raise TransferError(f"no {direction}transfer {transfer}")
        if current.state not in states:
            raise TransferError(f"transfer {transfer} is {current.state.name.lower()}")
        return current
