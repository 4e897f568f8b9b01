"""File transfer end to end: two real client sessions through the real relay over TLS.

Covers offer/accept/complete (bit-identical), decline, cancel from either side, resume
after the receiver is SIGKILLed, after the sender restarts and after the relay restarts,
offers to an offline receiver, v1 FILE in both directions, losses repaired by go-back-N
(a relay with a tiny buffer drops chunks), relay refusals, hostile names, and a 200 MiB
file with the relay's memory bounded. No timing assertions: WAIT only bounds a hang.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import threading
from pathlib import Path
from typing import TypeVar

import pytest

from protocol import FrameType
from protocol import chat_pb2 as pb
from tests.files import random_file, sha256_of
from tests.harness import RelayProcess
from tests.tui.client.sessions import WAIT, buddies, make_session
from tests.tui.client.sessions import TransferPeer as Peer
from tests.wire import WireClient
from tui.client import MessageReceived
from tui.client.transfer import TransferError, TransferState
from tui.client.transfer.events import (
    TransferCancelled,
    TransferCompleted,
    TransferDeclined,
    TransferFailed,
    TransferOffered,
    TransferProgress,
    TransferUpdated,
)
from tui.client.transfer.logic import TransferOptions

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
E = TypeVar("E")
PACED = TransferOptions(max_rate=8 * MIB)  # slow enough to interrupt a 16 MiB transfer


async def pair(
    relay: RelayProcess, tmp: Path, *, sender: TransferOptions | None = None
) -> tuple[Peer, Peer]:
    """alice (sender) and bob (receiver), registered, online and buddies."""
    alice, bob = Peer(relay, tmp, "alice", sender), Peer(relay, tmp, "bob")
    for peer in (alice, bob):
        await peer.session.register()
        await peer.session.start()
    await buddies(alice.session, bob.session)
    await alice.session.list_buddies()
    await bob.session.list_buddies()
    return alice, bob


def part_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.endswith(".parley-part")]


async def test_offer_accept_complete_bit_identical(relay: RelayProcess, tmp_path: Path) -> None:
    alice, bob = await pair(relay, tmp_path)
    source = tmp_path / "photo album.tar.gz"
    digest = random_file(source, 3 * MIB + 777)
    (bob.downloads / "photo album.tar.gz").write_bytes(b"bob's own file")
    sent = await alice.manager.offer(bob.uid, source)
    assert (sent.state, sent.size, sent.sha256) == (TransferState.OFFERED, 3 * MIB + 777, digest)
    offered = (await bob.next(TransferOffered)).transfer
    assert (offered.name, offered.size, offered.peer, offered.sha256) == (
        "photo album.tar.gz",
        sent.size,
        alice.uid,
        digest,
    )
    assert not offered.outgoing and offered.transfer_id == sent.transfer_id
    accepted = await bob.manager.accept(offered.id)
    assert accepted.state is TransferState.ACTIVE
    done = await bob.next(TransferCompleted)
    assert done.path == bob.downloads / "photo album (1).tar.gz"  # never overwrites
    assert sha256_of(done.path) == digest
    assert (bob.downloads / "photo album.tar.gz").read_bytes() == b"bob's own file"
    assert part_files(bob.downloads) == []
    finished = await alice.next(TransferCompleted)
    assert finished.path == source and finished.transfer.offset == sent.size
    assert alice.manager.get(sent.id).state is TransferState.COMPLETED  # type: ignore[union-attr]
    assert bob.manager.transfers()[0].state is TransferState.COMPLETED
    await alice.close()
    await bob.close()


async def test_concurrent_transfers_both_ways_and_an_empty_file(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice, bob = await pair(relay, tmp_path)
    files = {}
    for index, size in enumerate([0, 1, 2 * MIB, 5 * MIB + 3]):
        path = tmp_path / f"a{index}.bin"
        files[path.name] = random_file(path, size)
        await alice.manager.offer(bob.uid, path)
    back = tmp_path / "back.bin"
    back_digest = random_file(back, 4 * MIB)
    await bob.manager.offer(alice.uid, back)

    async def accept_all(peer: Peer, count: int) -> list[TransferCompleted]:
        for _ in range(count):
            offered = await peer.next(TransferOffered)
            await peer.manager.accept(offered.transfer.id)
        return [
            await peer.next(TransferCompleted, lambda e: not e.transfer.outgoing)
            for _ in range(count)
        ]

    received, returned = await asyncio.gather(accept_all(bob, 4), accept_all(alice, 1))
    assert {e.path.name: sha256_of(e.path) for e in received} == files
    assert sha256_of(returned[0].path) == back_digest
    await alice.close()
    await bob.close()


async def test_decline_tells_the_sender(relay: RelayProcess, tmp_path: Path) -> None:
    alice, bob = await pair(relay, tmp_path)
    source = tmp_path / "unwanted.bin"
    random_file(source, 1000)
    sent = await alice.manager.offer(bob.uid, source)
    offered = await bob.next(TransferOffered)
    bob.manager.decline(offered.transfer.id)
    declined = await alice.next(TransferDeclined)
    assert declined.by_peer and declined.transfer.id == sent.id
    assert declined.transfer.state is TransferState.DECLINED
    with pytest.raises(TransferError):
        await bob.manager.accept(offered.transfer.id)
    assert list(bob.downloads.iterdir()) == []
    await alice.close()
    await bob.close()


@pytest.mark.parametrize("who", ["sender", "receiver"])
async def test_cancel_from_either_side(relay: RelayProcess, tmp_path: Path, who: str) -> None:
    alice, bob = await pair(relay, tmp_path, sender=PACED)
    source = tmp_path / "long.bin"
    random_file(source, 16 * MIB)
    sent = await alice.manager.offer(bob.uid, source)
    offered = await bob.next(TransferOffered)
    await bob.manager.accept(offered.transfer.id)
    await bob.next(TransferProgress, lambda e: e.bytes >= MIB)
    assert len(part_files(bob.downloads)) == 1
    canceller, other = (alice, bob) if who == "sender" else (bob, alice)
    local_id = sent.id if who == "sender" else offered.transfer.id
    cancelled = await canceller.manager.cancel(local_id, "changed my mind")
    assert cancelled.state is TransferState.CANCELLED
    told = await other.next(TransferCancelled)
    assert told.by_peer and "changed my mind" in told.reason
    assert told.transfer.state is TransferState.CANCELLED
    for _ in range(100):  # the receiver's part file goes away with the transfer
        if not part_files(bob.downloads):
            break
        await asyncio.sleep(0.05)
    assert list(bob.downloads.iterdir()) == []
    await alice.close()
    await bob.close()


FINAL_EVENTS = (TransferCompleted, TransferFailed, TransferCancelled, TransferDeclined)
FINAL_EVENTS_ANY = TransferCompleted | TransferFailed | TransferCancelled | TransferDeclined


async def test_both_sides_cancel_at_once_one_final_event_each(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice, bob = await pair(relay, tmp_path, sender=PACED)
    source = tmp_path / "contested.bin"
    random_file(source, 16 * MIB)
    sent = await alice.manager.offer(bob.uid, source)
    offered = await bob.next(TransferOffered)
    await bob.manager.accept(offered.transfer.id)
    await bob.next(TransferProgress, lambda e: e.bytes >= MIB)
    ended = await asyncio.gather(
        alice.manager.cancel(sent.id, "mine"), bob.manager.cancel(offered.transfer.id, "no, mine")
    )
    assert all(t.state is TransferState.CANCELLED for t in ended)
    await asyncio.sleep(0.5)  # let each side's FILE_CANCEL reach the other (not a timing claim)
    await alice.close()
    await bob.close()
    for peer in (alice, bob):
        finals = []
        while not peer.events.empty():
            event = peer.events.get_nowait()
            if isinstance(event, FINAL_EVENTS):
                finals.append(event)
        assert len(finals) == 1, finals
    assert list(bob.downloads.iterdir()) == []


async def test_resume_after_the_receiver_is_killed(relay: RelayProcess, tmp_path: Path) -> None:
    alice, bob = await pair(relay, tmp_path, sender=PACED)
    await bob.close()  # bob continues in a process of its own, which we will SIGKILL
    source = tmp_path / "resumable.bin"
    digest = random_file(source, 16 * MIB)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.e2e.transfer_peer",
        relay.host,
        str(relay.port),
        str(relay.fingerprint),
        "bob",
        "pw-bob",
        str(tmp_path / "bob"),
        str(bob.downloads),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), WAIT) == b"READY\n"
        sent = await alice.manager.offer(bob.uid, source)
        while True:
            line = (await asyncio.wait_for(proc.stdout.readline(), WAIT)).split()
            if line[0] == b"PROGRESS" and int(line[1]) >= 4 * MIB:
                break
        proc.kill()  # SIGKILL mid-transfer: nothing gets to clean up
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    [part] = part_files(bob.downloads)
    on_disk = part.stat().st_size
    assert 4 * MIB <= on_disk < 16 * MIB

    revived = Peer(relay, tmp_path, "bob")  # same data dir: picks up the persisted transfer
    await revived.session.start()
    resumed = await revived.next(TransferUpdated, lambda e: e.transfer.start_offset > 0)
    assert resumed.transfer.start_offset >= 4 * MIB  # from the part file, not from zero
    done = await revived.next(TransferCompleted)
    assert sha256_of(done.path) == digest and done.path == bob.downloads / "resumable.bin"
    finished = await alice.next(TransferCompleted)
    assert finished.transfer.id == sent.id
    assert finished.transfer.start_offset == resumed.transfer.start_offset  # sender restarted
    assert part_files(bob.downloads) == []
    await alice.close()
    await revived.close()


async def test_resume_after_the_sender_restarts(relay: RelayProcess, tmp_path: Path) -> None:
    alice, bob = await pair(relay, tmp_path, sender=PACED)
    source = tmp_path / "big.bin"
    digest = random_file(source, 16 * MIB)
    sent = await alice.manager.offer(bob.uid, source)
    offered = await bob.next(TransferOffered)
    await bob.manager.accept(offered.transfer.id)
    await bob.next(TransferProgress, lambda e: e.bytes >= 4 * MIB)
    await alice.close()  # the sender's app quits mid-transfer

    again = Peer(relay, tmp_path, "alice", PACED)
    assert again.manager.get(sent.id).state is TransferState.ACTIVE  # type: ignore[union-attr]
    await again.session.start()
    resumed = await again.next(TransferUpdated, lambda e: e.transfer.start_offset > 0)
    assert resumed.transfer.start_offset >= 4 * MIB  # the receiver re-accepted at its offset
    done = await bob.next(TransferCompleted)
    assert sha256_of(done.path) == digest
    await again.next(TransferCompleted)
    await again.close()
    await bob.close()


async def test_resume_after_the_relay_restarts(relay: RelayProcess, tmp_path: Path) -> None:
    alice, bob = await pair(relay, tmp_path, sender=PACED)
    source = tmp_path / "through-a-crash.bin"
    digest = random_file(source, 16 * MIB)
    await alice.manager.offer(bob.uid, source)
    offered = await bob.next(TransferOffered)
    await bob.manager.accept(offered.transfer.id)
    await bob.next(TransferProgress, lambda e: e.bytes >= 4 * MIB)
    relay.restart()  # SIGKILL + start on the same port: both sessions reconnect
    resumed = await alice.next(TransferUpdated, lambda e: e.transfer.start_offset > 0)
    assert resumed.transfer.start_offset >= 4 * MIB
    done = await bob.next(TransferCompleted)
    assert sha256_of(done.path) == digest
    await alice.next(TransferCompleted)
    await alice.close()
    await bob.close()


async def test_offer_reaches_an_offline_receiver(relay: RelayProcess, tmp_path: Path) -> None:
    alice, bob = await pair(relay, tmp_path)
    await bob.close()
    source = tmp_path / "while-you-were-out.txt"
    digest = random_file(source, 100_000)
    await alice.manager.offer(bob.uid, source)
    back = Peer(relay, tmp_path, "bob")
    await back.session.start()
    offered = await back.next(TransferOffered)  # from the backlog
    assert offered.transfer.name == "while-you-were-out.txt"
    await back.manager.accept(offered.transfer.id)
    assert sha256_of((await back.next(TransferCompleted)).path) == digest
    await alice.next(TransferCompleted)
    await alice.close()
    await back.close()


def v1_client(relay: RelayProcess, name: str) -> WireClient:
    client = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
    client.register(name)
    client.login(name, version=1)
    return client


async def test_v1_file_is_offered_like_any_other(relay: RelayProcess, tmp_path: Path) -> None:
    bob = Peer(relay, tmp_path, "bob")
    await bob.session.register()
    await bob.session.start()
    carol = await asyncio.to_thread(v1_client, relay, "carol")
    try:
        await asyncio.to_thread(carol.add_buddy, bob.uid)
        await bob.session.add_buddy(carol.uid)
        data = os.urandom(300_000)
        for name in ("../../notes.txt", "declined.bin"):
            carol.send(
                FrameType.MESSAGE,
                pb.Message(uid=bob.uid, type=pb.Message.FILE, msg=name, data=data),
            )
        first = (await bob.next(TransferOffered)).transfer
        assert (first.legacy, first.name, first.size, first.peer) == (
            True,
            "notes.txt",
            len(data),
            carol.uid,
        )
        done = await bob.manager.accept(first.id)
        assert done.state is TransferState.COMPLETED and done.path == bob.downloads / "notes.txt"
        assert done.path.read_bytes() == data
        second = (await bob.next(TransferOffered)).transfer
        assert bob.manager.decline(second.id).state is TransferState.DECLINED
        assert sorted(p.name for p in bob.downloads.iterdir()) == ["notes.txt"]
    finally:
        carol.close()
        await bob.close()


async def test_sending_to_a_v1_peer(relay: RelayProcess, tmp_path: Path) -> None:
    bob = Peer(relay, tmp_path, "bob")
    await bob.session.register()
    await bob.session.start()
    carol = await asyncio.to_thread(v1_client, relay, "carol")
    try:
        await asyncio.to_thread(carol.add_buddy, bob.uid)
        await bob.session.add_buddy(carol.uid)
        [buddy] = await bob.session.list_buddies()
        assert buddy.protocol_version == 0
        small = tmp_path / "small.txt"
        small.write_bytes(b"hello v1")
        sent = await bob.manager.offer(carol.uid, small)
        assert sent.legacy
        message = await asyncio.to_thread(carol.next_message, WAIT)
        assert (message.type, message.msg, message.data) == (
            pb.Message.FILE,
            "small.txt",
            b"hello v1",
        )
        done = await bob.next(TransferCompleted)
        assert done.transfer.id == sent.id
        large = tmp_path / "large.bin"
        random_file(large, bob.manager.options.v1_max_file + 1)
        with pytest.raises(TransferError, match="protocol v1"):
            await bob.manager.offer(carol.uid, large)
    finally:
        carol.close()
        await bob.close()


@pytest.fixture
def lossy_relay(tmp_path: Path) -> RelayProcess:
    # Ephemeral messages to a client are dropped above half the high-water mark: 128 KiB
    # here, far below a 1 MiB window, so chunks are dropped and must be sent again.
    process = RelayProcess(tmp_path / "lossy-relay", extra_args=["--high-water", "262144"])
    process.start()
    return process


async def test_dropped_chunks_are_sent_again(lossy_relay: RelayProcess, tmp_path: Path) -> None:
    try:
        alice, bob = await pair(lossy_relay, tmp_path)
        digests = {}
        for index in range(2):
            path = tmp_path / f"lossy{index}.bin"
            digests[path.name] = random_file(path, 6 * MIB + index)
            await alice.manager.offer(bob.uid, path)
        for _ in range(2):
            await bob.manager.accept((await bob.next(TransferOffered)).transfer.id)
        got = [await bob.next(TransferCompleted) for _ in range(2)]
        assert {e.path.name: sha256_of(e.path) for e in got} == digests
        sent = [await alice.next(TransferCompleted) for _ in range(2)]
        assert sum(e.transfer.sent_bytes for e in sent) > sum(e.transfer.size for e in sent)
        await alice.close()
        await bob.close()
    finally:
        lossy_relay.stop()


async def test_relay_refuses_a_file_too_large(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path / "strict-relay", extra_args=["--max-file-size", "1000"])
    relay.start()
    try:
        alice, bob = await pair(relay, tmp_path)
        source = tmp_path / "too-big.bin"
        random_file(source, 2000)
        await alice.manager.offer(bob.uid, source)
        failed = await alice.next(TransferFailed)
        assert "larger than it allows" in failed.reason
        assert failed.transfer.state is TransferState.FAILED
        await alice.close()
        await bob.close()
    finally:
        relay.stop()


async def test_hostile_offered_name_stays_in_the_chosen_directory(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice, bob = await pair(relay, tmp_path)
    cases = {
        "../../.bashrc": "bashrc",
        "/etc/passwd": "passwd",
        "a\x1b]0;pwned\x07[bold]x[/].txt": "].txt",
        "x" * 4000: "x" * 255,
    }
    for hostile, expected in cases.items():
        info = pb.FileInfo(
            transfer_id=abs(hash(hostile)) % 2**62 + 1,
            size=10,
            sha256=hashlib.sha256(b"0123456789").digest(),
        )
        alice.session.send(bob.uid, pb.Message.FILE_OFFER, text=hostile, file=info)
        offered = (await bob.next(TransferOffered)).transfer
        assert "\x1b" not in offered.offered_name and "\x07" not in offered.offered_name
        accepted = await bob.manager.accept(offered.id)
        assert accepted.path == bob.downloads / expected
        assert accepted.part_path is not None and accepted.part_path.parent == bob.downloads
        await bob.manager.cancel(accepted.id)
    assert list(bob.downloads.iterdir()) == []
    await alice.close()
    await bob.close()


async def test_200_mib_bit_identical_with_relay_memory_bounded(
    relay: RelayProcess, tmp_path: Path
) -> None:
    alice, bob = await pair(relay, tmp_path)
    source = tmp_path / "200mib.bin"
    digest = random_file(source, 200 * MIB)
    baseline = relay.rss_bytes()
    peak = baseline
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.02):
            peak = max(peak, relay.rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        await alice.manager.offer(bob.uid, source)
        await bob.manager.accept((await bob.next(TransferOffered)).transfer.id)
        done = await bob.next(TransferCompleted)
        await alice.next(TransferCompleted)
    finally:
        stop.set()
        sampler.join()
    assert sha256_of(done.path) == digest
    assert peak - baseline <= 32 * MIB, f"relay RSS grew by {(peak - baseline) / MIB:.1f} MiB"
    done.path.unlink()  # pytest keeps recent temporary directories: do not keep 400 MiB
    source.unlink()
    await alice.close()
    await bob.close()


async def test_a_cancel_racing_the_final_verification_leaves_consistent_state(
    relay: RelayProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sender's cancel that arrives while the receiver verifies and moves a complete file
    must not leave the file on disk under a CANCELLED record. The receiver's final move is
    slowed (its engine runs in this process) so every cancel lands inside that window.
    """
    import tui.client.transfer.receive as transfer_recv

    real_finalize = transfer_recv.finalize

    async def slow_finalize(*args: object, **kwargs: object) -> Path:
        await asyncio.sleep(0.3)
        return await real_finalize(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(transfer_recv, "finalize", slow_finalize)
    bob = Peer(relay, tmp_path, "bob")
    alice = make_session(relay, tmp_path, "alice")  # a plain session: no transfer engine
    for session in (alice, bob.session):
        await session.register()
        await session.start()
    await buddies(alice, bob.session)
    assert bob.uid is not None and alice.uid is not None
    empty_digest = hashlib.sha256(b"").digest()
    events = alice.events()
    for transfer_id in range(1, 7):
        alice.send(
            bob.uid,
            pb.Message.FILE_OFFER,
            text=f"empty-{transfer_id}.txt",
            file=pb.FileInfo(transfer_id=transfer_id, size=0, sha256=empty_digest),
        )
    offers = [await bob.next(TransferOffered) for _ in range(6)]
    for offer in offers:
        await bob.manager.accept(offer.transfer.id)
    accepts = 0
    while accepts < 6:  # cancel each transfer the moment its accept arrives
        event = await events.next(WAIT)
        if (
            isinstance(event, MessageReceived)
            and event.entry.type == pb.Message.FILE_ACCEPT
            and event.entry.file
        ):
            accepts += 1
            alice.send(
                bob.uid,
                pb.Message.FILE_CANCEL,
                text="too late",
                file=pb.FileInfo(transfer_id=event.entry.file.transfer_id),
            )
    finals = [await bob.next(FINAL_EVENTS_ANY) for _ in range(6)]
    assert len({f.transfer.id for f in finals}) == 6
    for offer in offers:
        record = bob.manager.get(offer.transfer.id)
        assert record is not None
        # Every byte was in before the cancel: the transfer completes, file and record agree.
        assert record.state is TransferState.COMPLETED
        assert (bob.downloads / offer.transfer.name).exists()
    assert part_files(bob.downloads) == []
    await alice.close()
    await bob.close()
