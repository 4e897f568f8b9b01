"""Protocol v2 on the relay: acks after commit, dedup, receipts, Sync, quota, rate limit,
slow consumers, token logins that cost no scrypt."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tests.harness import RelayProcess
from tests.wire import WireClient, make_buddies


def client(relay: RelayProcess) -> WireClient:
    return WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)


def pair(
    relay: RelayProcess, a_version: int = 2, b_version: int = 2
) -> tuple[WireClient, WireClient]:
    a, b = client(relay), client(relay)
    a.register("alice")
    b.register("bob")
    assert a.login("alice", version=a_version).code == pb.LoginResponse.SUCCESS
    assert b.login("bob", version=b_version).code == pb.LoginResponse.SUCCESS
    make_buddies(a, b)
    return a, b


def test_ack_then_delivery_then_receipt(relay: RelayProcess) -> None:
    alice, bob = pair(relay)
    alice.send_text(bob.uid, "hello", msg_id=77)
    ack = alice.expect(FrameType.ACK, pb.Ack)
    assert (ack.id, ack.code, ack.delivered) == (77, pb.Ack.OK, False)
    assert ack.seq == 1 and ack.timestamp > 0
    got = bob.next_message()
    assert (got.msg, got.seq, got.id, got.uid) == ("hello", 1, 77, alice.uid)
    bob.send(FrameType.ACK, pb.Ack(seq=got.seq))
    receipt = alice.expect(FrameType.ACK, pb.Ack)
    assert (receipt.id, receipt.delivered, receipt.peer) == (77, True, bob.uid)


def test_resend_of_the_same_id_stores_nothing_and_returns_the_same_ack(relay: RelayProcess) -> None:
    alice, bob = pair(relay)
    alice.send_text(bob.uid, "once", msg_id=5)
    first = alice.expect(FrameType.ACK, pb.Ack)
    alice.send_text(bob.uid, "once", msg_id=5)
    second = alice.expect(FrameType.ACK, pb.Ack)
    assert (first.seq, first.timestamp) == (second.seq, second.timestamp)
    assert bob.next_message().msg == "once"
    alice.send_text(bob.uid, "next", msg_id=6)
    assert bob.next_message().msg == "next"  # the duplicate was never pushed


def test_dedup_survives_a_relay_crash(tmp_path: Path) -> None:
    with RelayProcess(tmp_path) as relay:
        alice, bob = pair(relay)
        alice.send_text(bob.uid, "before crash", msg_id=1000)
        first = alice.expect(FrameType.ACK, pb.Ack)
        relay.restart()
        again = client(relay)
        again.login("alice", version=2)
        again.send_text(bob.uid, "before crash", msg_id=1000)
        assert again.expect(FrameType.ACK, pb.Ack).seq == first.seq


def test_v2_requires_message_ids(relay: RelayProcess) -> None:
    alice, bob = pair(relay)
    alice.send_text(bob.uid, "no id")
    assert alice.expect(FrameType.ACK, pb.Ack).code == pb.Ack.INVALID


def test_too_large_text_is_refused(relay: RelayProcess) -> None:
    alice, bob = pair(relay)
    alice.send_text(bob.uid, "x" * (64 * 1024 + 1), msg_id=1)
    assert alice.expect(FrameType.ACK, pb.Ack).code == pb.Ack.TOO_LARGE


def test_backlog_after_since_seq_then_sync_then_live(relay: RelayProcess) -> None:
    alice, bob = pair(relay)
    bob.close()
    for i in range(1, 11):
        alice.send_text(bob.uid, f"m{i}", msg_id=i)
        alice.expect(FrameType.ACK, pb.Ack)
    again = client(relay)
    response = again.login("bob", version=2, since_seq=4)
    assert response.head_seq == 10
    got = [again.recv() for _ in range(6)]
    assert [(t, m.seq) for t, m in got] == [(FrameType.MESSAGE, s) for s in range(5, 11)]
    sync = again.expect(FrameType.SYNC, pb.Sync, skip=(FrameType.LIST_BUDDY,))
    assert sync.head_seq == 10
    alice.send_text(again.uid, "live", msg_id=11)
    assert again.next_message().seq == 11
    # Sync on request replays from since_seq (nothing acked yet, so rows are still there).
    again.send(FrameType.SYNC, pb.Sync(since_seq=9))
    assert [again.next_message().seq for _ in range(2)] == [10, 11]
    assert again.expect(FrameType.SYNC, pb.Sync).head_seq == 11


def test_acked_rows_are_dropped(relay: RelayProcess) -> None:
    alice, bob = pair(relay)
    for i in range(1, 4):
        alice.send_text(bob.uid, f"m{i}", msg_id=i)
    assert [bob.next_message().seq for _ in range(3)] == [1, 2, 3]
    bob.send(FrameType.ACK, pb.Ack(seq=2))
    bob.round_trip()
    bob.close()
    again = client(relay)
    again.login("bob", version=2)  # since_seq 0: only what was not acknowledged remains
    assert again.next_message().seq == 3


def test_inbox_quota(tmp_path: Path) -> None:
    with RelayProcess(tmp_path, extra_args=["--inbox-quota", "3"]) as relay:
        alice, bob = pair(relay)
        bob.close()
        codes = []
        for i in range(1, 6):
            alice.send_text(bob.uid, f"m{i}", msg_id=i)
            codes.append(alice.expect(FrameType.ACK, pb.Ack).code)
        assert codes == [pb.Ack.OK] * 3 + [pb.Ack.QUOTA_EXCEEDED] * 2


def test_rate_limit(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text("[relay]\nrate_limit = 1\nrate_burst = 3\n")
    with RelayProcess(tmp_path / "data", extra_args=["--config", str(config)]) as relay:
        alice, bob = pair(relay)
        for i in range(1, 7):
            alice.send_text(bob.uid, f"m{i}", msg_id=i)
        codes = [alice.expect(FrameType.ACK, pb.Ack).code for _ in range(6)]
        assert codes.count(pb.Ack.OK) in (3, 4)
        assert codes[-1] == pb.Ack.RATE_LIMITED


def test_rate_limit_resets_v1_senders(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text("[relay]\nrate_limit = 1\nrate_burst = 2\n")
    with RelayProcess(tmp_path / "data", extra_args=["--config", str(config)]) as relay:
        alice, bob = pair(relay, a_version=1)
        for i in range(5):
            alice.send_text(bob.uid, f"m{i}")
        reset = alice.expect_closed()
        assert reset is not None and reset.code == pb.Reset.RATE_LIMITED


def test_slow_v2_consumer_is_paused_and_resumed_from_the_store(tmp_path: Path) -> None:
    with RelayProcess(tmp_path, extra_args=["--high-water", "32768"]) as relay:
        alice, bob = pair(relay)
        total = 4000  # ~4 MB that bob does not read yet: far above the 32 KiB high-water mark
        for i in range(1, total + 1):
            alice.send_text(bob.uid, f"{i:05d}" + "y" * 1000, msg_id=i)
        acks = [alice.expect(FrameType.ACK, pb.Ack) for _ in range(total)]
        assert all(a.code == pb.Ack.OK for a in acks)  # the sender is never held back
        assert relay.process is not None
        relay.process.send_signal(signal.SIGUSR1)
        assert int(relay.wait_for_log(r"stats: .*paused=(\d+)").group(1)) >= 1
        # Bob now reads: everything arrives, in order, once, with no disconnect.
        seqs = [bob.next_message(timeout=20).seq for _ in range(total)]
        assert seqs == list(range(1, total + 1))
        assert "SLOW_CONSUMER" not in relay.logs()


def test_token_reconnects_cost_no_scrypt(relay: RelayProcess) -> None:
    tokens = {}
    for i in range(20):
        c = client(relay)
        c.register(f"user{i}")
        c.login(f"user{i}", version=2)
        tokens[f"user{i}"] = c.token
        c.close()
    relay.restart()
    assert relay.process is not None
    for name, token in tokens.items():
        c = client(relay)
        assert c.login(name, password="", version=2, token=token).code == (pb.LoginResponse.SUCCESS)
    relay.process.send_signal(signal.SIGUSR1)
    stats = relay.wait_for_log(r"stats: .*scrypt=(\d+)")
    assert int(stats.group(1)) == 0
    assert re.search(r"login uid=\d+ v2 \(token\)", relay.logs())


def test_v1_and_v2_interoperate(relay: RelayProcess) -> None:
    alice, bob = pair(relay, a_version=2, b_version=1)
    alice.send_text(bob.uid, "to v1", msg_id=1)
    assert alice.expect(FrameType.ACK, pb.Ack).code == pb.Ack.OK
    assert bob.next_message().msg == "to v1"
    receipt = alice.expect(FrameType.ACK, pb.Ack)  # v1: delivered once written to its socket
    assert receipt.delivered and receipt.id == 1
    bob.send_text(alice.uid, "to v2")
    assert alice.next_message().msg == "to v2"


def _offer(client: WireClient, to: int, msg_id: int, transfer_id: int, size: int) -> pb.Ack:
    client.send(
        FrameType.MESSAGE,
        pb.Message(
            uid=to,
            type=pb.Message.FILE_OFFER,
            msg="f.bin",
            id=msg_id,
            file=pb.FileInfo(transfer_id=transfer_id, size=size, sha256=b"\0" * 32),
        ),
    )
    while True:  # receipts and forwarded messages may come first
        ack = client.expect(
            FrameType.ACK, pb.Ack, skip=(FrameType.LIST_BUDDY, FrameType.SYNC, FrameType.MESSAGE)
        )
        if ack.id == msg_id:
            return ack


def test_file_limits_size_and_concurrent_transfers(tmp_path: Path) -> None:
    args = ["--max-file-size", "1000", "--max-transfers", "2"]
    with RelayProcess(tmp_path, extra_args=args) as relay:
        alice, bob = pair(relay)
        assert _offer(alice, bob.uid, 1, 10, 1001).code == pb.Ack.TOO_LARGE
        assert _offer(alice, bob.uid, 2, 11, 1000).code == pb.Ack.OK
        assert _offer(alice, bob.uid, 3, 12, 10).code == pb.Ack.OK
        assert _offer(alice, bob.uid, 4, 13, 10).code == pb.Ack.RATE_LIMITED
        # Bob declines one and finishes the other: alice may offer again.
        bob.send(
            FrameType.MESSAGE,
            pb.Message(
                uid=alice.uid, type=pb.Message.FILE_DECLINE, id=50, file=pb.FileInfo(transfer_id=11)
            ),
        )
        bob.send(
            FrameType.MESSAGE,
            pb.Message(
                uid=alice.uid,
                type=pb.Message.FILE_PROGRESS,
                file=pb.FileInfo(transfer_id=12, offset=10),
            ),
        )
        bob.round_trip()
        assert _offer(alice, bob.uid, 5, 14, 10).code == pb.Ack.OK
        assert _offer(alice, bob.uid, 6, 15, 10).code == pb.Ack.OK
        assert _offer(alice, bob.uid, 7, 16, 10).code == pb.Ack.RATE_LIMITED


def test_ephemeral_messages_are_forwarded_never_stored(relay: RelayProcess) -> None:
    alice, bob = pair(relay)
    alice.send(FrameType.MESSAGE, pb.Message(uid=bob.uid, type=pb.Message.INPUTING))
    typing = bob.next_message()
    assert typing.type == pb.Message.INPUTING and typing.seq == 0 and typing.uid == alice.uid
    bob.close()
    alice.send(FrameType.MESSAGE, pb.Message(uid=bob.uid, type=pb.Message.INPUTING))
    alice.send_text(bob.uid, "after", msg_id=1)
    alice.expect(FrameType.ACK, pb.Ack)
    again = client(relay)
    again.login("bob", version=2)
    first = again.next_message()
    assert (first.type, first.msg) == (pb.Message.MESSAGE, "after")


def test_retry_after_delivery_and_crash_returns_the_original_ack(tmp_path: Path) -> None:
    with RelayProcess(tmp_path) as relay:
        alice, bob = pair(relay)
        alice.send_text(bob.uid, "delivered", msg_id=4242)
        first = alice.expect(FrameType.ACK, pb.Ack)
        got = bob.next_message()
        bob.send(FrameType.ACK, pb.Ack(seq=got.seq))  # the row is dropped from the inbox
        assert alice.expect(FrameType.ACK, pb.Ack).delivered
        relay.restart()
        again = client(relay)
        again.login("alice", version=2)
        again.send_text(bob.uid, "delivered", msg_id=4242)  # the Ack was "lost": retry
        ack = again.expect(FrameType.ACK, pb.Ack)
        assert (ack.seq, ack.timestamp) == (first.seq, first.timestamp)
        bob2 = client(relay)
        bob2.login("bob", version=2)
        with pytest.raises(TimeoutError):
            bob2.next_message(timeout=0.5)  # nothing stored twice
