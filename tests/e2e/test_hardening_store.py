"""The relay's store against hostile integers, a flooded inbox and a full disk (issue 11
items 1, 5 and 10): real relay subprocess, real TLS, real SQLite file."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tests.harness import RelayProcess
from tests.wire import WireClient, make_buddies
from tui.client import cli as scripting

U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1
# The frame: Sync{since_seq = 2**64 - 1}, which used to end the relay.
SYNC_SINCE_U64_MAX = bytes.fromhex("0000000b0808ffffffffffffffffff01")


def client(relay: RelayProcess) -> WireClient:
    return WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)


def logged_in(relay: RelayProcess, name: str, version: int = 2) -> WireClient:
    c = client(relay)
    assert c.register(name).code == pb.RegisterResponse.SUCCESS
    assert c.login(name, version=version).code == pb.LoginResponse.SUCCESS
    return c


def buddies(
    relay: RelayProcess, first: str, second: str, version: int = 2
) -> tuple[WireClient, WireClient]:
    a, b = logged_in(relay, first, version), logged_in(relay, second, version)
    make_buddies(a, b)
    return a, b


def still_chatting(a: WireClient, b: WireClient, tag: str) -> None:
    """A round trip of text between two v1 buddies: the relay serves them."""
    a.send_text(b.uid, f"ping {tag}")
    assert b.next_message().msg == f"ping {tag}"
    b.send_text(a.uid, f"pong {tag}")
    assert a.next_message().msg == f"pong {tag}"


def expect_ack(c: WireClient) -> pb.Ack:
    return c.expect(FrameType.ACK, pb.Ack)


def expect_sync(c: WireClient) -> pb.Sync:
    return c.expect(FrameType.SYNC, pb.Sync, skip=(FrameType.LIST_BUDDY,))


# -- integers beyond SQLite's INTEGER (item 1) ---------------------------------------------


def test_sync_since_beyond_any_seq_gets_the_head_and_kills_nothing(relay: RelayProcess) -> None:
    bystander_a, bystander_b = buddies(relay, "by1", "by2", version=1)
    v1 = logged_in(relay, "oldie", version=1)
    v1.send_raw(SYNC_SINCE_U64_MAX)
    assert expect_sync(v1).head_seq == 0  # nothing after "beyond everything"
    v2, peer = buddies(relay, "newbie", "peer")
    v2.send(FrameType.SYNC, pb.Sync(since_seq=U64_MAX))
    assert expect_sync(v2).head_seq == 0
    peer.send_text(v2.uid, "still pushed live", msg_id=1)  # its cursor did not jump ahead
    message = v2.next_message()
    assert (message.msg, message.seq) == ("still pushed live", 1)
    still_chatting(bystander_a, bystander_b, "after the syncs")
    assert relay.process is not None and relay.process.poll() is None


def test_extreme_ids_seqs_sizes_and_offsets_are_answered(relay: RelayProcess) -> None:
    bystander_a, bystander_b = buddies(relay, "by1", "by2", version=1)
    alice, bob = buddies(relay, "alice", "bob")
    late = client(relay)
    late.register("late")
    assert late.login("late", version=2, since_seq=U64_MAX).code == pb.LoginResponse.SUCCESS
    assert expect_sync(late).head_seq == 0

    alice.send_text(bob.uid, "largest id", msg_id=U64_MAX)
    first = expect_ack(alice)
    assert (first.id, first.code, first.seq) == (U64_MAX, pb.Ack.OK, 1)
    alice.send_text(bob.uid, "largest id", msg_id=U64_MAX)  # a retry: found, not stored again
    again = expect_ack(alice)
    assert (again.id, again.code, again.seq, again.timestamp) == (
        U64_MAX,
        pb.Ack.OK,
        1,
        first.timestamp,
    )
    assert bob.next_message().id == U64_MAX
    bob.send(FrameType.ACK, pb.Ack(seq=U64_MAX))  # "I have everything": through what it has
    receipt = expect_ack(alice)
    assert (receipt.id, receipt.delivered, receipt.peer) == (U64_MAX, True, bob.uid)

    huge = pb.FileInfo(transfer_id=U64_MAX, size=U64_MAX, offset=U64_MAX, sha256=bytes(32))
    alice.send(
        FrameType.MESSAGE,
        pb.Message(uid=bob.uid, type=pb.Message.FILE_OFFER, msg="huge", id=7, file=huge),
    )
    assert expect_ack(alice).code == pb.Ack.TOO_LARGE
    offer = pb.FileInfo(transfer_id=U64_MAX, size=10, sha256=bytes(32))
    alice.send(
        FrameType.MESSAGE,
        pb.Message(uid=bob.uid, type=pb.Message.FILE_OFFER, msg="small", id=8, file=offer),
    )
    assert expect_ack(alice).code == pb.Ack.OK
    assert bob.next_message().file.transfer_id == U64_MAX
    bob.send(
        FrameType.MESSAGE,
        pb.Message(
            uid=alice.uid,
            type=pb.Message.FILE_ACCEPT,
            id=U64_MAX,
            file=pb.FileInfo(transfer_id=U64_MAX, offset=U64_MAX),
        ),
    )
    assert expect_ack(bob).code == pb.Ack.OK
    bob.send(
        FrameType.MESSAGE,
        pb.Message(
            uid=alice.uid,
            type=pb.Message.FILE_PROGRESS,
            file=pb.FileInfo(transfer_id=U64_MAX, offset=U64_MAX),
        ),
    )
    assert [alice.next_message().file.offset for _ in range(2)] == [U64_MAX, U64_MAX]

    alice.send(FrameType.ADD_BUDDY, pb.AddBuddyRequest(uid=U32_MAX))
    assert alice.expect(FrameType.ADD_BUDDY, pb.AddBuddyResponse).code == (
        pb.AddBuddyResponse.FAILED
    )
    alice.send(FrameType.LIST_USER, pb.ListUserRequest(limit=U32_MAX))
    assert len(alice.expect(FrameType.LIST_USER, pb.ListUserResponse).users) == 5
    alice.send(FrameType.PING, pb.Ping(nonce=U64_MAX))
    assert alice.expect(FrameType.PING, pb.Ping).nonce == U64_MAX
    still_chatting(bystander_a, bystander_b, "after the extremes")


# -- the offline inbox's byte quota (item 10) ------------------------------------------------


def test_offline_inbox_byte_quota_refuses_what_would_cross_it(tmp_path: Path) -> None:
    quota = 1_000_000
    with RelayProcess(tmp_path / "relay", extra_args=["--inbox-quota-bytes", str(quota)]) as relay:
        alice, bob = buddies(relay, "alice", "bob")
        bob.close()  # offline: everything waits in the store
        data = os.urandom(200_000)

        def send_file(msg_id: int) -> int:
            alice.send(
                FrameType.MESSAGE,
                pb.Message(
                    uid=bob.uid, type=pb.Message.FILE, msg=f"f{msg_id}", data=data, id=msg_id
                ),
            )
            return expect_ack(alice).code

        codes = [send_file(msg_id) for msg_id in range(1, 9)]
        # Four files of ~200 KB fit in 1 MB; a fifth would cross it.
        assert codes == [pb.Ack.OK] * 4 + [pb.Ack.QUOTA_EXCEEDED] * 4
        back = client(relay)
        back.login("bob", version=2)
        assert [back.next_message().msg for _ in range(4)] == ["f1", "f2", "f3", "f4"]
        back.send(FrameType.ACK, pb.Ack(seq=4))  # delivered: their bytes are freed
        back.round_trip()
        assert send_file(9) == pb.Ack.OK


# -- a full disk (item 5) --------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, unmounted afterwards (mounting needs root, as in CI)."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command here: a full disk cannot be made")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 4 MiB tmpfs (root needed): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill_disk(path: Path) -> None:
    """Write ``path`` until its file system has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1):
            chunk = bytes(size)
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


def parley_send(relay: RelayProcess, home: Path, user: str, to: str, text: str) -> int:
    """``parley send`` as a script runs it (the password "pw" from a file)."""
    (home / f"{user}.pw").write_text("pw\n")
    assert relay.fingerprint is not None
    return scripting.main(
        [
            "send",
            "--host",
            relay.host,
            "--port",
            str(relay.port),
            "--user",
            user,
            "--password-file",
            str(home / f"{user}.pw"),
            "--fingerprint",
            relay.fingerprint,
            "--data-dir",
            str(home / "cli" / user),
            "--timeout",
            "3",
            to,
            text,
        ]
    )


def test_full_disk_refuses_durable_messages_serves_the_rest_and_recovers(
    small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with RelayProcess(small_disk / "relay") as relay:
        alice, bob = buddies(relay, "alice", "bob")
        carol = logged_in(relay, "carol", version=1)
        make_buddies(carol, bob)
        eve, frank = buddies(relay, "eve", "frank")
        dave = logged_in(relay, "dave")
        make_buddies(dave, bob)
        dave.close()
        bob.close()  # offline: what is sent to bob waits in the store
        for msg_id in (1, 2):
            alice.send_text(bob.uid, f"before {msg_id}", msg_id=msg_id)
            assert expect_ack(alice).code == pb.Ack.OK
        carol.send_text(bob.uid, "before v1")
        carol.round_trip()
        eve.send_text(frank.uid, "hello", msg_id=1)
        assert expect_ack(eve).code == pb.Ack.OK
        assert frank.next_message().seq == 1

        fill_disk(small_disk / "filler")
        # The first commit that fails: its Ack becomes STORE_FULL, its push is not sent.
        eve.send_text(frank.uid, "lost", msg_id=2)
        ack = expect_ack(eve)
        assert (ack.id, ack.code) == (2, pb.Ack.STORE_FULL)
        # v2: every durable message after it gets STORE_FULL too (nothing is written).
        for msg_id in (10, 11, 12):
            alice.send_text(bob.uid, f"during {msg_id}", msg_id=msg_id)
            ack = expect_ack(alice)
            assert (ack.id, ack.code) == (msg_id, pb.Ack.STORE_FULL)
        # v1 has no refusal: a Reset that says so, never a silent drop.
        carol.send_text(bob.uid, "during v1")
        reset = carol.expect_closed()
        assert reset is not None and reset.code == pb.Reset.UNKNOWN_ERROR
        assert reset.msg == "relay storage is full; message not stored"
        # Everything that needs no write goes on: pings, typing hints, logins, reads.
        eve.send(FrameType.PING, pb.Ping(nonce=7))
        assert eve.expect(FrameType.PING, pb.Ping).nonce == 7
        eve.send(FrameType.MESSAGE, pb.Message(uid=frank.uid, type=pb.Message.INPUTING))
        hint = frank.expect(FrameType.MESSAGE, pb.Message)
        assert (hint.type, hint.uid) == (pb.Message.INPUTING, eve.uid)
        # parley send: a password login, a user lookup, then "full; will retry" (exit 5).
        assert parley_send(relay, small_disk.parent, "dave", "bob", "during script") == (
            scripting.EXIT_UNREACHABLE
        )
        err = capsys.readouterr().err
        assert "parley: the relay's storage is full; will retry\n" in err
        assert "will be re-sent by the next parley session" in err
        assert relay.logs().count("store cannot write") == 1  # once per episode

        os.remove(small_disk / "filler")
        relay.wait_for_log(r"store can write again", timeout=60)  # probed every few seconds
        alice.send_text(bob.uid, "after", msg_id=12)  # the refused id, retried
        assert expect_ack(alice).code == pb.Ack.OK
        eve.send_text(frank.uid, "found", msg_id=2)
        assert expect_ack(eve).code == pb.Ack.OK
        found = frank.next_message()  # not "lost": its push went with the failed commit
        assert (found.msg, found.seq) == ("found", 2)
        carol = client(relay)
        carol.login("carol")
        carol.send_text(bob.uid, "after v1")
        carol.round_trip()
        assert relay.process is not None and relay.process.poll() is None

        relay.restart()  # SIGKILL, then start: only what was committed is there
        bob = client(relay)
        bob.login("bob", version=2)
        assert [bob.next_message().msg for _ in range(5)] == [
            "before 1",
            "before 2",
            "before v1",
            "after",
            "after v1",
        ]
        assert expect_sync(bob).head_seq == 5  # nothing refused took a seq
