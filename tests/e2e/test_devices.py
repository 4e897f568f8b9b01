"""Devices on the real relay (PROTOCOL.md section 9): several sessions per user, one inbox
per device, outgoing copies, send-only sessions, receipts once, expiry, and nothing acked
lost across a SIGKILL while three devices exchange."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tests.harness import RelayProcess
from tests.waiting import wait_until
from tests.wire import WireClient, make_buddies


def _client(relay: RelayProcess) -> WireClient:
    return WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)


def _device(
    relay: RelayProcess, name: str, device: str, *, since_seq: int = 0, send_only: bool = False
) -> WireClient:
    conn = _client(relay)
    response = conn.login(name, version=2, device=device, since_seq=since_seq, send_only=send_only)
    assert response.code == pb.LoginResponse.SUCCESS, response
    return conn


def _accounts(relay: RelayProcess) -> tuple[int, int]:
    """alice and bob, buddies; returns their uids."""
    alice, bob = _client(relay), _client(relay)
    alice.register("alice")
    bob.register("bob")
    alice.login("alice", version=2)
    bob.login("bob", version=2)
    make_buddies(alice, bob)
    uids = alice.uid, bob.uid
    alice.close()
    bob.close()
    return uids


def _messages(conn: WireClient, count: int) -> list[pb.Message]:
    return [conn.next_message() for _ in range(count)]


def _text(conn: WireClient, to: int, text: str, msg_id: int) -> pb.Ack:
    """Send a text and return its Ack (receipts of earlier messages skipped)."""
    conn.send_text(to, text, msg_id=msg_id)
    while True:
        ack = conn.expect(FrameType.ACK, pb.Ack, skip=(FrameType.LIST_BUDDY, FrameType.SYNC))
        if not ack.delivered:
            assert (ack.id, ack.code) == (msg_id, pb.Ack.OK), ack
            return ack


def test_every_device_gets_every_message_and_the_others_outgoing_copies(
    relay: RelayProcess,
) -> None:
    alice_uid, bob_uid = _accounts(relay)
    tui = _device(relay, "alice", "tui@box")
    tail = _device(relay, "alice", "tail@box")
    script = _device(relay, "alice", "", send_only=True)
    bob = _device(relay, "bob", "tui@other")

    _text(bob, alice_uid, "to both", 1)
    for device in (tui, tail):
        got = device.next_message()
        assert (got.uid, got.msg, got.outgoing, got.seq) == (bob_uid, "to both", False, 1)

    _text(tui, bob_uid, "from the tui", 2)
    assert bob.next_message().msg == "from the tui"
    copy = tail.next_message()
    assert (copy.uid, copy.msg, copy.outgoing, copy.id, copy.seq) == (
        bob_uid,
        "from the tui",
        True,
        2,
        2,
    )

    _text(script, bob_uid, "from a script", 3)  # send-only: Acked, and never kicked anyone
    assert bob.next_message().msg == "from a script"
    for device, seq in ((tui, 2), (tail, 3)):
        copy = device.next_message()
        assert (copy.msg, copy.outgoing, copy.uid, copy.seq) == (
            "from a script",
            True,
            bob_uid,
            seq,
        )

    # Nothing else came to anyone: no copy to the sending device, nothing to send-only.
    for device in (tui, tail, script, bob):
        device.round_trip()
    script.send(FrameType.SYNC, pb.Sync(since_seq=0))
    assert script.expect(FrameType.SYNC, pb.Sync, skip=(FrameType.LIST_BUDDY,)).head_seq == 0


def test_a_second_login_on_a_device_kicks_only_that_device(relay: RelayProcess) -> None:
    _, bob_uid = _accounts(relay)
    tui = _device(relay, "alice", "tui@box")
    tail = _device(relay, "alice", "tail@box")
    script = _device(relay, "alice", "", send_only=True)
    tui_again = _device(relay, "alice", "tui@box")
    reset = tui.expect_closed()
    assert reset is not None and reset.code == pb.Reset.KICKED
    assert "tui@box" in reset.msg
    _text(tui_again, bob_uid, "still here", 1)
    assert tail.next_message().msg == "still here"  # tail and the script were not kicked
    _text(script, bob_uid, "me too", 2)


def test_v1_sessions_keep_the_original_rule_and_never_see_outgoing_copies(
    relay: RelayProcess,
) -> None:
    alice_uid, bob_uid = _accounts(relay)
    tui = _device(relay, "alice", "tui@box")
    old = _client(relay)
    assert old.login("alice", version=1).code == pb.LoginResponse.SUCCESS
    old_again = _client(relay)
    assert old_again.login("alice", version=1).code == pb.LoginResponse.SUCCESS
    reset = old.expect_closed()
    assert reset is not None and reset.code == pb.Reset.KICKED  # v1 among v1: as ever
    bob = _device(relay, "bob", "tui@other")

    _text(tui, bob_uid, "v2.1 speaking", 1)
    bob.next_message()
    old_again.send_text(bob_uid, "v1 speaking")
    assert bob.next_message().msg == "v1 speaking"
    copy = tui.next_message()  # what the v1 session sent reaches the named device...
    assert (copy.msg, copy.outgoing) == ("v1 speaking", True)
    _text(bob, alice_uid, "to everyone", 2)
    got = old_again.next_message()  # ...but the v1 session gets only what is sent to it
    assert (got.msg, got.outgoing) == ("to everyone", False)
    assert tui.next_message().msg == "to everyone"


def test_the_receipt_comes_once_whichever_device_acks_first(relay: RelayProcess) -> None:
    _, bob_uid = _accounts(relay)
    alice = _device(relay, "alice", "tui@box")
    first, second = _device(relay, "bob", "tui@b"), _device(relay, "bob", "tail@b")
    _text(alice, bob_uid, "read me", 9)
    for device in (second, first):  # the second device acks first
        got = device.next_message()
        device.send(FrameType.ACK, pb.Ack(seq=got.seq))
        device.round_trip()
    receipts = []
    alice.send(FrameType.LIST_USER, pb.ListUserRequest(limit=1))
    while True:
        frame_type, message = alice.recv()
        if frame_type == FrameType.LIST_USER:
            break
        if frame_type == FrameType.ACK:
            receipts.append(message)
    assert [(r.id, r.delivered, r.peer) for r in receipts] == [(9, True, bob_uid)]


def test_a_device_offline_for_a_while_gets_its_backlog_alone(relay: RelayProcess) -> None:
    alice_uid, _ = _accounts(relay)
    tui = _device(relay, "alice", "tui@box")
    tail = _device(relay, "alice", "tail@box")
    bob = _device(relay, "bob", "tui@other")
    _text(bob, alice_uid, "m1", 1)
    got = tail.next_message()
    tail.send(FrameType.ACK, pb.Ack(seq=got.seq))
    tail.round_trip()
    tail.close()
    for number in range(2, 6):
        _text(bob, alice_uid, f"m{number}", number)
    assert [m.msg for m in _messages(tui, 5)] == ["m1", "m2", "m3", "m4", "m5"]
    tail = _device(relay, "alice", "tail@box", since_seq=1)
    backlog = _messages(tail, 4)
    assert [(m.seq, m.msg) for m in backlog] == [(2, "m2"), (3, "m3"), (4, "m4"), (5, "m5")]
    tail.expect(FrameType.SYNC, pb.Sync, skip=(FrameType.LIST_BUDDY,))


def test_presence_follows_the_receiving_sessions(relay: RelayProcess) -> None:
    alice_uid, _ = _accounts(relay)
    bob = _device(relay, "bob", "tui@other")

    def alice_online() -> bool:
        """alice's state in bob's list as of now (the answer to a LIST_BUDDY, which comes
        after every push queued before it, and before the LIST_USER answer)."""
        bob.send(FrameType.LIST_BUDDY, pb.ListBuddyRequest())
        bob.send(FrameType.LIST_USER, pb.ListUserRequest(limit=1))
        latest = None
        while True:
            frame_type, message = bob.recv()
            if frame_type == FrameType.LIST_USER:
                break
            if frame_type == FrameType.LIST_BUDDY:
                latest = message
        assert latest is not None
        return next(u.online for u in latest.users if u.uid == alice_uid)

    script = _device(relay, "alice", "", send_only=True)
    assert not alice_online()  # a send-only session is nobody's presence
    tui = _device(relay, "alice", "tui@box")
    tail = _device(relay, "alice", "tail@box")
    assert alice_online()
    closed_before = relay.logs().count(" closed: ")
    tui.close()
    asyncio.run(
        wait_until(lambda: relay.logs().count(" closed: ") > closed_before, "the tui's close")
    )
    assert alice_online()  # the tail still receives
    tail.send(FrameType.RESET, pb.Reset())
    tail.expect_closed()
    asyncio.run(wait_until(lambda: not alice_online(), "alice shown offline"))
    script.round_trip()  # the send-only session lives on


def test_a_bad_device_name_is_a_protocol_error(relay: RelayProcess) -> None:
    _accounts(relay)
    for device in ("x" * 65, "tui\x1b[31m", "two\nlines"):
        conn = _client(relay)
        conn.send(
            FrameType.LOGIN,
            pb.LoginRequest(username="alice", password="pw", protocol_version=2, device=device),
        )
        reset = conn.expect_closed()
        assert reset is not None and reset.code == pb.Reset.PROTOCOL_MISMATCH
        assert "device" in reset.msg
    assert _device(relay, "alice", "ü" * 64).uid  # 64 printable characters are fine


def test_a_device_not_seen_for_the_expiry_time_is_forgotten_with_its_messages(
    tmp_path: Path,
) -> None:
    with RelayProcess(tmp_path) as relay:
        alice_uid, _ = _accounts(relay)
        tui = _device(relay, "alice", "tui@box")
        old = _device(relay, "alice", "laptop")
        old.close()
        bob = _device(relay, "bob", "tui@other")
        for number in range(1, 4):
            _text(bob, alice_uid, f"m{number}", number)
        _messages(tui, 3)
        relay.stop()
    db = sqlite3.connect(tmp_path / "parley.db")
    (box,) = db.execute("SELECT box FROM devices WHERE name = 'laptop'").fetchone()
    assert db.execute("SELECT count(*) FROM inbox_runs WHERE recipient = ?", (box,)).fetchone()[0]
    with db:
        db.execute("UPDATE devices SET last_seen = last_seen - 31 * 86400 WHERE box = ?", (box,))
    db.close()

    def laptop_gone() -> bool:
        with sqlite3.connect(tmp_path / "parley.db") as check:
            devices = check.execute("SELECT count(*) FROM devices WHERE box = ?", (box,))
            runs = check.execute("SELECT count(*) FROM inbox_runs WHERE recipient = ?", (box,))
            return devices.fetchone()[0] == 0 and runs.fetchone()[0] == 0

    with RelayProcess(tmp_path) as relay:
        asyncio.run(wait_until(laptop_gone, "the expired device's rows deleted"))
        relay.wait_for_log(r"device 'laptop' of uid=\d+ forgotten")
        tui = _device(relay, "alice", "tui@box")  # the device seen lately stays
        laptop = _device(relay, "alice", "laptop")  # a new device: nothing of the old one
        laptop.round_trip()
        tui.round_trip()


@pytest.mark.parametrize("seed", [5, 11])
def test_sigkill_during_a_three_device_exchange_loses_nothing_acked(
    tmp_path: Path, seed: int
) -> None:
    """bob has three receiving devices; alice sends from two devices while the relay is
    killed twice. Every message alice got an OK Ack for reaches each of bob's devices, in
    one seq order per device without gaps or duplicates, and each of alice's devices gets
    what the other sent as outgoing copies (and never its own)."""
    rng = random.Random(seed)
    bob_names = ("tui@b", "tail@b", "laptop")
    alice_names = ("tui@a", "tail@a")
    seen: dict[str, dict[int, str]] = {name: {} for name in (*bob_names, *alice_names)}
    acked: dict[str, set[str]] = {name: set() for name in alice_names}
    texts: dict[int, str] = {}
    with RelayProcess(tmp_path) as relay:
        _, bob_uid = _accounts(relay)
        for round_number in range(3):
            last = round_number == 2
            devices = {
                name: _device(
                    relay,
                    "bob" if name in bob_names else "alice",
                    name,
                    since_seq=max(seen[name], default=0),
                )
                for name in seen
            }
            for name, conn in devices.items():
                if rng.random() < 0.5 and seen[name]:  # some devices ack what they have
                    conn.send(FrameType.ACK, pb.Ack(seq=max(seen[name])))
            for _ in range(80):
                sender = rng.choice(alice_names)
                msg_id = len(texts) + 1
                texts[msg_id] = f"r{round_number}-{msg_id}-{sender}"
                devices[sender].send_text(bob_uid, texts[msg_id], msg_id=msg_id)
            if not last:
                # Kill once some Acks came back, with more in flight.
                _drain(devices["tui@a"], texts, acked["tui@a"], seen["tui@a"], acks=10)
                assert relay.process is not None
                relay.process.send_signal(signal.SIGKILL)
                relay.process.wait()
            for name, conn in devices.items():
                conn.send(FrameType.PING, pb.Ping(nonce=7))
                _drain(conn, texts, acked.get(name, set()), seen[name])
            if not last:
                relay.restart()
        for name in seen:  # a last login of each device fetches what is left
            conn = _device(
                relay,
                "bob" if name in bob_names else "alice",
                name,
                since_seq=max(seen[name], default=0),
            )
            conn.send(FrameType.PING, pb.Ping(nonce=7))
            _drain(conn, texts, set(), seen[name])
    every_ack = acked["tui@a"] | acked["tail@a"]
    assert len(every_ack) >= 80, "the last round should have been acked whole"
    for name, got in seen.items():
        assert sorted(got) == list(range(1, len(got) + 1)), f"{name}: gaps in its seqs"
        assert len(set(got.values())) == len(got), f"{name} got a message twice"
    for name in bob_names:
        assert every_ack <= set(seen[name].values()), f"{name} lost acked messages"
    for name, other in (("tui@a", "tail@a"), ("tail@a", "tui@a")):
        assert acked[other] <= set(seen[name].values()), f"{name} lacks outgoing copies"
        assert not acked[name] & set(seen[name].values()), f"{name} got its own sends"


def _drain(
    conn: WireClient,
    texts: dict[int, str],
    acked: set[str],
    seen: dict[int, str],
    acks: int | None = None,
) -> None:
    """Record OK Acks (as texts) and messages (by seq) until ``acks`` Acks came, or else
    until the Pong of nonce 7, or the connection ends (a killed relay)."""
    got_acks = 0
    while acks is None or got_acks < acks:
        try:
            frame_type, message = conn.recv(timeout=20)
        except (ConnectionError, OSError, EOFError):
            return
        if frame_type == FrameType.PING and message.nonce == 7:
            return
        if frame_type == FrameType.MESSAGE:
            assert seen.get(message.seq, message.msg) == message.msg
            seen[message.seq] = message.msg
        elif frame_type == FrameType.ACK and message.code == pb.Ack.OK and not message.delivered:
            acked.add(texts[message.id])
            got_acks += 1
        elif frame_type == FrameType.RESET:
            return


def test_devices_per_user_are_bounded(tmp_path: Path) -> None:
    """A user cannot multiply the copies of every message sent to it: beyond the limit, a
    new device forgets the least recently seen idle one; if all are in use, no login."""
    with RelayProcess(tmp_path, extra_args=["--max-devices-per-user", "2"]) as relay:
        _accounts(relay)  # alice's first device, "" (the set-up's login), idle now
        laptop = _device(relay, "alice", "laptop")  # two devices: the limit, nothing goes
        laptop.close()
        live = _device(relay, "alice", "tui")  # a third: "", the least recently seen, goes
        relay.wait_for_log(r"uid=\d+: a device forgotten to make room for 'tui'")
        tail = _device(relay, "alice", "tail")  # tui is live: the idle laptop goes
        relay.wait_for_log(r"uid=\d+: a device forgotten to make room for 'tail'")
        refused = _client(relay)
        refused.send(
            FrameType.LOGIN,
            pb.LoginRequest(username="alice", password="pw", protocol_version=2, device="x"),
        )
        reset = refused.expect_closed()
        assert reset is not None and reset.code == pb.Reset.RATE_LIMITED
        assert "devices in use" in reset.msg
        live.round_trip()  # the live devices are untouched
        tail.round_trip()
        with sqlite3.connect(tmp_path / "parley.db") as db:
            names = {row[0] for row in db.execute("SELECT name FROM devices")}
        assert "x" not in names and {"tui", "tail"} <= names and "laptop" not in names
