"""The disk side of transfers on real files: hashing, chunked reads, part files, resume,
verification (a mismatch removes the partial file), and the transfers database.

The receive-run tests drive :class:`IncomingRun` with a recording host instead of a
session: the network half is covered end to end in tests/e2e/test_file_transfer.py."""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from tui.client.transfer.files import (
    ChunkReader,
    PartWriter,
    SourceChanged,
    hash_file,
)
from tui.client.transfer.logic import CHUNK_SIZE, TransferOptions
from tui.client.transfer.receive import IncomingRun
from tui.client.transfer.store import Transfer, TransferState, TransferStore, transfers_path

MIB = 1024 * 1024


def random_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


async def test_hash_file(tmp_path: Path) -> None:
    data = random_file(tmp_path / "f", 3 * MIB + 17)
    assert await hash_file(tmp_path / "f") == (hashlib.sha256(data).digest(), len(data))
    assert await hash_file(tmp_path / "f", 100) == (hashlib.sha256(data[:100]).digest(), 100)


async def test_chunk_reader_reads_any_range_and_notices_truncation(tmp_path: Path) -> None:
    data = random_file(tmp_path / "f", 5 * MIB + 3)
    reader = ChunkReader(tmp_path / "f", len(data), block=MIB)
    for offset, length in [
        (0, CHUNK_SIZE),
        (MIB - 10, CHUNK_SIZE),
        (5 * MIB - 5, 8),
        (123_456, 1),
        (2 * MIB, CHUNK_SIZE),
    ]:
        assert await reader.read(offset, length) == data[offset : offset + length]
    assert len(reader._blocks) <= 2  # bounded memory
    with pytest.raises(ValueError):
        await reader.read(len(data), 1)
    await reader.close()
    os.truncate(tmp_path / "f", MIB)
    shrunk = ChunkReader(tmp_path / "f", len(data), block=MIB)
    with pytest.raises(SourceChanged):
        await shrunk.read(3 * MIB, CHUNK_SIZE)
    await shrunk.close()


async def test_part_writer_hashes_what_it_writes_and_resumes(tmp_path: Path) -> None:
    data = os.urandom(3 * MIB)
    part = tmp_path / ".x.parley-part"
    written: list[int] = []
    writer = PartWriter(part, written.append)
    assert await writer.open(resume=False, limit=len(data)) == 0
    for offset in range(0, 2 * MIB, CHUNK_SIZE):
        writer.write(data[offset : offset + CHUNK_SIZE])
    await writer.flush()
    assert writer.written == 2 * MIB and writer.backlog == 0 and written[-1] == 2 * MIB
    await writer.close()
    # Resume: the part file is re-hashed, then appended to.
    resumed = PartWriter(part)
    assert await resumed.open(resume=True, limit=len(data)) == 2 * MIB
    resumed.write(data[2 * MIB :])
    assert await resumed.digest() == hashlib.sha256(data).digest()
    await resumed.close()
    assert part.read_bytes() == data
    assert (part.stat().st_mode & 0o777) == 0o600


async def test_resume_cuts_a_part_file_longer_than_the_offer(tmp_path: Path) -> None:
    part = tmp_path / ".y.parley-part"
    part.write_bytes(b"z" * 1000)
    writer = PartWriter(part)
    assert await writer.open(resume=True, limit=600) == 600
    await writer.close()
    assert part.stat().st_size == 600


class RecordingHost:
    """Stands in for the TransferManager (the run's only collaborator besides the disk)."""

    def __init__(self) -> None:
        self.options = TransferOptions()
        self.progress: list[int] = []
        self.accepts: list[int] = []
        self.done: list[Path] = []
        self.errors: list[str] = []
        self.finished = asyncio.Event()

    def clock(self) -> float:
        return asyncio.get_running_loop().time()

    def send_progress(self, peer: int, transfer_id: int, offset: int) -> None:
        self.progress.append(offset)

    def send_accept(self, run: IncomingRun) -> None:
        self.accepts.append(run.received)

    def reserved_targets(self) -> list[Path]:
        return []

    def incoming_progress(self, run: IncomingRun) -> None:
        pass

    def incoming_done(self, run: IncomingRun, path: Path) -> None:
        self.done.append(path)
        self.finished.set()

    def incoming_error(self, run: IncomingRun, reason: str) -> None:
        self.errors.append(reason)
        self.finished.set()


def incoming(tmp_path: Path, data: bytes, sha256: bytes | None = None) -> Transfer:
    return Transfer(
        id=1,
        outgoing=False,
        peer=2,
        transfer_id=99,
        name="file.bin",
        offered_name="file.bin",
        size=len(data),
        sha256=sha256 if sha256 is not None else hashlib.sha256(data).digest(),
        state=TransferState.ACTIVE,
        path=tmp_path / "file.bin",
        part_path=tmp_path / ".file.bin.1.parley-part",
    )


async def feed(run: IncomingRun, data: bytes, start: int = 0) -> None:
    while not run.ready:
        await asyncio.sleep(0.001)
    for offset in range(start, len(data), CHUNK_SIZE):
        run.on_chunk(offset, data[offset : offset + CHUNK_SIZE])


async def test_received_file_is_verified_and_moved_into_place(tmp_path: Path) -> None:
    data = os.urandom(MIB + 1234)
    host = RecordingHost()
    run = IncomingRun(host, incoming(tmp_path, data))
    run.start(resume=False)
    await feed(run, data)
    await asyncio.wait_for(host.finished.wait(), 30)
    assert host.errors == [] and host.done == [tmp_path / "file.bin"]
    assert (tmp_path / "file.bin").read_bytes() == data
    assert not (tmp_path / ".file.bin.1.parley-part").exists()
    assert host.accepts == [0]
    assert host.progress == [256 * 1024, 512 * 1024, 768 * 1024, MIB, len(data) - 1]
    assert run.cursor.reported == len(data)  # confirmed only after verification


async def test_hash_mismatch_removes_the_partial_file(tmp_path: Path) -> None:
    data = os.urandom(MIB)
    host = RecordingHost()
    run = IncomingRun(host, incoming(tmp_path, data, sha256=hashlib.sha256(b"other").digest()))
    run.start(resume=False)
    await feed(run, data)
    await asyncio.wait_for(host.finished.wait(), 30)
    assert host.done == [] and len(host.errors) == 1 and "SHA-256 mismatch" in host.errors[0]
    assert list(tmp_path.iterdir()) == []  # neither the target nor the part file
    assert MIB not in host.progress  # the full size was never confirmed


async def test_out_of_order_chunks_are_ignored_and_reported(tmp_path: Path) -> None:
    data = os.urandom(MIB)
    host = RecordingHost()
    run = IncomingRun(host, incoming(tmp_path, data))
    run.start(resume=False)
    await feed(run, data[: 2 * CHUNK_SIZE])
    run.on_chunk(3 * CHUNK_SIZE, data[3 * CHUNK_SIZE : 4 * CHUNK_SIZE])  # 2 was lost
    assert host.progress == [2 * CHUNK_SIZE, 2 * CHUNK_SIZE]  # advance, then duplicate
    run.on_chunk(0, data[:CHUNK_SIZE])  # an old one: ignored (same gap, rate-limited)
    assert run.received == 2 * CHUNK_SIZE and host.progress == [2 * CHUNK_SIZE] * 2
    await run.stop(remove_part=True)
    assert list(tmp_path.iterdir()) == []


async def test_resumed_run_continues_from_the_part_file(tmp_path: Path) -> None:
    data = os.urandom(2 * MIB)
    transfer = incoming(tmp_path, data)
    assert transfer.part_path is not None
    transfer.part_path.write_bytes(data[: MIB + 5])
    host = RecordingHost()
    run = IncomingRun(host, transfer)
    run.start(resume=True)
    await feed(run, data, start=MIB + 5)
    await asyncio.wait_for(host.finished.wait(), 30)
    assert host.accepts == [MIB + 5]  # FILE_ACCEPT carries where to restart
    assert host.errors == [] and (tmp_path / "file.bin").read_bytes() == data


async def test_existing_target_is_never_overwritten(tmp_path: Path) -> None:
    data = os.urandom(1000)
    (tmp_path / "file.bin").write_bytes(b"mine")
    host = RecordingHost()
    run = IncomingRun(host, incoming(tmp_path, data))
    run.start(resume=False)
    await feed(run, data)
    await asyncio.wait_for(host.finished.wait(), 30)
    assert host.done == [tmp_path / "file (1).bin"]
    assert (tmp_path / "file.bin").read_bytes() == b"mine"


# --- the transfers database -------------------------------------------------------------


def test_store_round_trip_and_final_states_are_final(tmp_path: Path) -> None:
    path = transfers_path(tmp_path, "relay.example", 1025, "Alice")
    assert path.parent == tmp_path and path.name.startswith("transfers-")
    store = TransferStore.open(path)
    added = store.add(
        Transfer(
            0,
            True,
            5,
            (1 << 64) - 1,
            "a.bin",
            "a.bin",
            10,
            b"h" * 32,
            TransferState.OFFERED,
            path=tmp_path / "a.bin",
            offer_msg_id=(1 << 63) + 5,
        )
    )
    assert added.id > 0
    assert store.find(True, 5, (1 << 64) - 1) == added
    assert store.find_by_offer((1 << 63) + 5) == added
    with pytest.raises(sqlite3.IntegrityError):
        store.add(added)  # same wire id
    active = store.update(added, state=TransferState.ACTIVE, offset=4)
    assert (active.state, active.offset, active.path) == (
        TransferState.ACTIVE,
        4,
        tmp_path / "a.bin",
    )
    done = store.update(active, state=TransferState.COMPLETED, offset=10)
    assert store.update(done, state=TransferState.ACTIVE).state is TransferState.COMPLETED
    assert list(store.unfinished()) == []
    store.close()
    reopened = TransferStore.open(path)
    assert reopened.get(added.id) == done
    assert reopened.all() == [done] and reopened.all(include_final=False) == []
    assert reopened.delete(added.id) and reopened.get(added.id) is None
    reopened.close()
    assert (path.stat().st_mode & 0o777) == 0o600
