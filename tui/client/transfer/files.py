"""Disk side of file transfers: hashing, chunked reading, part files, the final move.

Invariants:
- Nothing here blocks the event loop: every read, write, fsync, hash and rename runs in a
  worker thread (``asyncio.to_thread``); the coroutines only wait for them.
- Memory is bounded whatever the file size: a :class:`ChunkReader` holds at most two blocks
  (``READ_BLOCK`` bytes each) plus one being prefetched; a :class:`PartWriter` holds only
  the bytes queued and not yet written (its ``backlog``, which the caller bounds).
- A part file is written strictly in order (appends at ``written``) and hashed as it is
  written, so ``PartWriter.digest()`` is the SHA-256 of exactly the bytes on disk.
- :func:`finalize` never overwrites an existing file: it hard-links the verified part file
  to a free name (``link`` fails on an existing name) and then removes the part; where hard
  links are impossible it falls back to an existence check plus ``os.replace``.
- A part file that fails verification is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path

from tui.client.transfer.names import part_name, unique_name

READ_BLOCK = 1024 * 1024
WRITE_BATCH = 1024 * 1024


class SourceChanged(OSError):
    """The file being sent is shorter than offered, or was modified since the offer."""


class VerificationFailed(ValueError):
    """The received bytes do not match the offered size or SHA-256."""


def _hash_sync(path: Path, limit: int | None) -> tuple[bytes, int]:
    digest = hashlib.sha256()
    total = 0
    with open(path, "rb", buffering=0) as fh:
        while limit is None or total < limit:
            want = READ_BLOCK if limit is None else min(READ_BLOCK, limit - total)
            block = fh.read(want)
            if not block:
                break
            digest.update(block)
            total += len(block)
    return digest.digest(), total


async def hash_file(path: Path, limit: int | None = None) -> tuple[bytes, int]:
    """(SHA-256, bytes hashed) of the first ``limit`` bytes of ``path`` (all when None)."""
    return await asyncio.to_thread(_hash_sync, path, limit)


def file_signature(path: Path) -> tuple[int, int]:
    """(size, mtime in ns): how the sender notices that its source changed."""
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


class ChunkReader:
    """Reads ``[offset, offset+length)`` of a file of known ``size`` in blocks, off the loop,
    prefetching the next block. ``SourceChanged`` if the file turns out shorter."""

    def __init__(self, path: Path, size: int, block: int = READ_BLOCK) -> None:
        self.path = path
        self.size = size
        self.block = block
        self._fd: int | None = None
        self._blocks: dict[int, bytes] = {}
        self._prefetch: tuple[int, asyncio.Task[bytes]] | None = None

    async def open(self) -> None:
        if self._fd is None:
            self._fd = await asyncio.to_thread(os.open, self.path, os.O_RDONLY)

    def _read_block_sync(self, start: int) -> bytes:
        assert self._fd is not None
        want = min(self.block, self.size - start)
        data = os.pread(self._fd, want, start)
        if len(data) != want:
            raise SourceChanged(f"{self.path} is shorter than when it was offered")
        return data

    async def _get_block(self, start: int) -> bytes:
        cached = self._blocks.get(start)
        if cached is not None:
            return cached
        if self._prefetch is not None and self._prefetch[0] == start:
            task = self._prefetch[1]
            self._prefetch = None
            data = await task
        else:
            await self.open()
            data = await asyncio.to_thread(self._read_block_sync, start)
        if len(self._blocks) >= 2:
            del self._blocks[next(iter(self._blocks))]  # the oldest
        self._blocks[start] = data
        return data

    def _start_prefetch(self, start: int) -> None:
        if start >= self.size or start in self._blocks:
            return
        if self._prefetch is not None:
            if self._prefetch[0] == start:
                return
            self._prefetch[1].cancel()  # a rewind made it useless; the thread just finishes
        task = asyncio.create_task(asyncio.to_thread(self._read_block_sync, start))
        task.add_done_callback(_consume)
        self._prefetch = (start, task)

    async def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset + length > self.size:
            raise ValueError("read outside the file")
        start = offset - offset % self.block
        block = await self._get_block(start)
        piece = block[offset - start : offset - start + length]
        if len(piece) < length:  # crosses into the next block (offsets after a rewind)
            piece += await self.read(start + self.block, length - len(piece))
        elif offset + length >= start + self.block // 2:
            self._start_prefetch(start + self.block)
        return piece

    async def close(self) -> None:
        if self._prefetch is not None:
            self._prefetch[1].cancel()
            self._prefetch = None
        self._blocks.clear()
        fd, self._fd = self._fd, None
        if fd is not None:
            await asyncio.to_thread(os.close, fd)


def _consume(task: asyncio.Task[bytes]) -> None:
    if not task.cancelled():
        task.exception()


class PartWriter:
    """Appends to a part file in a worker thread, hashing what it writes.

    ``write(data)`` only queues (never blocks); ``written`` is what is on disk; ``backlog``
    what is queued. ``on_written(written)`` is called on the loop after each batch.
    A write error is kept in ``error`` and raised by :meth:`flush`/:meth:`digest`.
    """

    def __init__(self, path: Path, on_written: Callable[[int], None] | None = None) -> None:
        self.path = path
        self.written = 0
        self.backlog = 0
        self.error: BaseException | None = None
        self._on_written = on_written
        self._fd: int | None = None
        self._hash = hashlib.sha256()
        self._queue: deque[bytes] = deque()
        self._task: asyncio.Task[None] | None = None

    def _open_sync(self, resume: bool, limit: int) -> int:
        flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags if resume else flags | os.O_TRUNC, 0o600)
        try:
            size = min(os.fstat(fd).st_size, limit) if resume else 0
            if resume:
                os.ftruncate(fd, size)  # a part file never holds more than we can account for
                hashed = _hash_into(self.path, size, self._hash)
                if hashed != size:
                    raise SourceChanged(f"{self.path} changed while being read")
            os.lseek(fd, size, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return size

    async def open(self, *, resume: bool, limit: int) -> int:
        """Create (or, with ``resume``, reopen and re-hash) the part file; returns how many
        bytes it already holds (at most ``limit``: anything beyond is cut off)."""
        self.written = await asyncio.to_thread(self._open_sync, resume, limit)
        return self.written

    def write(self, data: bytes) -> None:
        if self._fd is None:
            raise RuntimeError("part file is not open")
        self._queue.append(data)
        self.backlog += len(data)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_loop())

    def _write_sync(self, batch: Iterable[bytes]) -> int:
        assert self._fd is not None
        total = 0
        for data in batch:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            self._hash.update(data)
            total += len(data)
        return total

    async def _flush_loop(self) -> None:
        while self._queue and self.error is None:
            batch: list[bytes] = []
            size = 0
            while self._queue and size < WRITE_BATCH:
                batch.append(self._queue.popleft())
                size += len(batch[-1])
            try:
                await asyncio.to_thread(self._write_sync, batch)
            except OSError as exc:
                self.error = exc
                self._queue.clear()
                self.backlog = 0
            else:
                self.written += size
                self.backlog -= size
            if self._on_written is not None:
                self._on_written(self.written)

    async def flush(self) -> None:
        """Wait until everything queued is on disk (``OSError`` if a write failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self.error is not None:
            raise self.error

    async def digest(self) -> bytes:
        """SHA-256 of everything written, after flushing and fsync."""
        await self.flush()
        assert self._fd is not None
        await asyncio.to_thread(os.fsync, self._fd)
        return self._hash.copy().digest()

    async def close(self) -> None:
        """Stop: wait for the batch in progress (threads cannot be cancelled), then close."""
        self._queue.clear()
        with contextlib.suppress(BaseException):
            await self.flush()
        fd, self._fd = self._fd, None
        if fd is not None:
            await asyncio.to_thread(os.close, fd)


def _hash_into(path: Path, limit: int, digest: hashlib._Hash) -> int:
    """Feed the first ``limit`` bytes of ``path`` to ``digest``; returns how many it read."""
    total = 0
    with open(path, "rb", buffering=0) as fh:
        while total < limit:
            block = fh.read(min(READ_BLOCK, limit - total))
            if not block:
                break
            digest.update(block)
            total += len(block)
    return total


def choose_target(directory: Path, name: str, reserved: Iterable[Path] = ()) -> Path:
    """A path in ``directory`` for ``name`` (made safe) that neither exists nor is reserved
    by another transfer in progress."""
    taken_names = {p.name for p in reserved if p.parent == directory}

    def taken(candidate: str) -> bool:
        return candidate in taken_names or os.path.lexists(directory / candidate)

    return directory / unique_name(name, taken)


def _finalize_sync(part: Path, target: Path, reserved: list[Path]) -> Path:
    for _ in range(1000):
        try:
            os.link(part, target)
        except FileExistsError:
            target = choose_target(target.parent, target.name, reserved)
            continue
        except OSError as exc:  # no hard links here (FAT, some network file systems)
            if exc.errno not in {
                errno.EPERM,
                errno.ENOTSUP,
                errno.EOPNOTSUPP,
                errno.EXDEV,
                errno.EMLINK,
                errno.ENOSYS,
            }:
                raise
            if os.path.lexists(target):
                target = choose_target(target.parent, target.name, reserved)
                continue
            os.replace(part, target)
            return target
        os.unlink(part)
        return target
    raise FileExistsError(f"could not find a free name for {target.name!r}")


async def finalize(part: Path, target: Path, reserved: Iterable[Path] = ()) -> Path:
    """Move the verified ``part`` to ``target`` or, if that name is taken by now, to the
    next free ``name (n).ext``; returns the final path. Never overwrites."""
    return await asyncio.to_thread(_finalize_sync, part, target, list(reserved))


async def remove_quietly(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(os.unlink, path)


def _write_whole_sync(directory: Path, name: str, data: bytes, reserved: list[Path]) -> Path:
    target = choose_target(directory, name, reserved)
    part = target.with_name(part_name(target.name, "v1"))
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        return _finalize_sync(part, target, reserved)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(part)
        raise


async def write_whole(
    directory: Path, name: str, data: bytes, reserved: Iterable[Path] = ()
) -> Path:
    """Write a whole (v1) file under a free name in ``directory``; returns its path."""
    return await asyncio.to_thread(_write_whole_sync, directory, name, data, list(reserved))
