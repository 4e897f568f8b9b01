"""Every v1 operation and response code against a real relay process over real TLS."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tests.harness import RelayProcess
from tests.wire import WireClient, make_buddies


def client(relay: RelayProcess) -> WireClient:
    return WireClient(
        relay.host, relay.port, tls=not relay.plaintext, fingerprint=relay.fingerprint
    )


def logged_in(relay: RelayProcess, name: str, version: int = 1) -> WireClient:
    c = client(relay)
    assert c.register(name).code == pb.RegisterResponse.SUCCESS
    assert c.login(name, version=version).code == pb.LoginResponse.SUCCESS
    return c


def test_greeting_names_the_peer(relay: RelayProcess) -> None:
    assert client(relay).greeting == "This is a chat server. Hello, 127.0.0.1!"


def test_register_codes(relay: RelayProcess) -> None:
    c = client(relay)
    first = c.register("alice")
    assert first.code == pb.RegisterResponse.SUCCESS and first.uid == 1
    assert c.register("ALICE").code == pb.RegisterResponse.USER_EXISTS
    assert c.register("bad name").code == pb.RegisterResponse.INVALID_USERNAME
    assert c.register("x" * 33).code == pb.RegisterResponse.INVALID_USERNAME
    assert c.register("bob", password="").code == pb.RegisterResponse.INVALID_PASSWORD
    # Two registrations in one segment: the second arrives while the first is hashing.
    c.send_raw(
        b"".join(
            bytes(f)
            for f in (
                _frame(FrameType.REGISTER, pb.RegisterRequest(username="carol", password="p")),
                _frame(FrameType.REGISTER, pb.RegisterRequest(username="dave", password="p")),
            )
        )
    )
    codes = {c.expect(FrameType.REGISTER, pb.RegisterResponse).code for _ in range(2)}
    assert codes == {pb.RegisterResponse.SUCCESS, pb.RegisterResponse.RATE_LIMITED}


def _frame(frame_type: int, message: pb.RegisterRequest) -> bytes:
    from protocol import encode_frame

    return encode_frame(frame_type, message)


def test_registration_closed(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text("[relay]\nregistration_open = false\n")
    with RelayProcess(tmp_path / "data", extra_args=["--config", str(config)]) as relay:
        assert client(relay).register("alice").code == pb.RegisterResponse.REGISTRATION_CLOSED


def test_login_codes_and_throttling(relay: RelayProcess) -> None:
    c = client(relay)
    c.register("alice", password="right")
    assert c.login("nobody").code == pb.LoginResponse.USER_NOT_FOUND
    other = client(relay)
    for _ in range(5):
        assert other.login("alice", password="wrong").code == pb.LoginResponse.PASSWORD_ERROR
    limited = other.login("alice", password="right")  # v1 has no RATE_LIMITED: login failed
    assert limited.code == pb.LoginResponse.PASSWORD_ERROR
    assert limited.retry_after_ms > 0
    ok = c.login("Alice", password="right", version=2)  # case-insensitive at login too
    assert ok.code in (pb.LoginResponse.SUCCESS, pb.LoginResponse.RATE_LIMITED)


def test_token_login_and_invalid_token(relay: RelayProcess) -> None:
    c = logged_in(relay, "alice", version=2)
    assert c.token
    c.close()
    again = client(relay)
    response = again.login("alice", password="", version=2, token=c.token)
    assert response.code == pb.LoginResponse.SUCCESS and response.token == c.token
    bad = client(relay)
    assert (
        bad.login("alice", password="", version=2, token="forged").code
        == pb.LoginResponse.TOKEN_INVALID
    )
    v1 = client(relay)  # tokens are a v2 feature
    assert v1.login("alice", password="", token=c.token).code == pb.LoginResponse.TOKEN_INVALID


def test_list_users_query_limit_truncated(relay: RelayProcess) -> None:
    c = logged_in(relay, "alice")
    for name in ("bob", "bobby", "carol"):
        client(relay).register(name)
    c.send(FrameType.LIST_USER, pb.ListUserRequest())
    everyone = c.expect(FrameType.LIST_USER, pb.ListUserResponse)
    assert [u.username for u in everyone.users] == ["alice", "bob", "bobby", "carol"]
    assert [u.online for u in everyone.users] == [True, False, False, False]
    assert not everyone.truncated
    c.send(FrameType.LIST_USER, pb.ListUserRequest(query="BOB", limit=1))
    some = c.expect(FrameType.LIST_USER, pb.ListUserResponse)
    assert [u.username for u in some.users] == ["bob"] and some.truncated


def test_buddy_consent_presence_and_removal(relay: RelayProcess) -> None:
    alice = logged_in(relay, "alice", version=2)
    bob = logged_in(relay, "bob", version=2)
    assert alice.add_buddy(bob.uid) == pb.AddBuddyResponse.PENDING
    pushed = bob.expect(FrameType.LIST_BUDDY, pb.ListBuddyResponse, skip=(FrameType.SYNC,))
    assert [(u.username, u.relation) for u in pushed.users] == [("alice", pb.User.REQUEST_RECEIVED)]
    assert alice.add_buddy(alice.uid) == pb.AddBuddyResponse.FAILED
    assert alice.add_buddy(999) == pb.AddBuddyResponse.FAILED
    assert bob.add_buddy(alice.uid) == pb.AddBuddyResponse.SUCCESS
    listed = alice.buddies()
    while listed.users[0].relation != pb.User.BUDDY:  # skip pushes that predate the accept
        listed = alice.buddies()
    assert [(u.username, u.online, u.relation) for u in listed.users] == [
        ("bob", True, pb.User.BUDDY)
    ]
    bob.close()
    offline = alice.expect(FrameType.LIST_BUDDY, pb.ListBuddyResponse, skip=(FrameType.SYNC,))
    while offline.users[0].online:
        offline = alice.expect(FrameType.LIST_BUDDY, pb.ListBuddyResponse, skip=())
    assert [(u.username, u.online) for u in offline.users] == [("bob", False)]
    alice.send(FrameType.REMOVE_BUDDY, pb.RemoveBuddyRequest(uid=bob.uid))
    assert (
        alice.expect(FrameType.REMOVE_BUDDY, pb.RemoveBuddyResponse).code
        == pb.RemoveBuddyResponse.SUCCESS
    )
    alice.send(FrameType.REMOVE_BUDDY, pb.RemoveBuddyRequest(uid=bob.uid))
    assert (
        alice.expect(FrameType.REMOVE_BUDDY, pb.RemoveBuddyResponse).code
        == pb.RemoveBuddyResponse.FAILED
    )
    final = alice.buddies()
    while final.users:
        final = alice.buddies()
    assert list(final.users) == []


def test_v1_sees_only_mutual_buddies(relay: RelayProcess) -> None:
    alice = logged_in(relay, "alice")
    bob = logged_in(relay, "bob")
    alice.add_buddy(bob.uid)
    assert list(bob.buddies().users) == []
    bob.add_buddy(alice.uid)
    listed = bob.buddies()
    assert [(u.username, u.online) for u in listed.users] == [("alice", True)]


def test_two_users_chat_both_ways(relay: RelayProcess) -> None:
    alice = logged_in(relay, "alice")
    bob = logged_in(relay, "bob")
    make_buddies(alice, bob)
    alice.send_text(bob.uid, "hello bob")
    got = bob.next_message()
    assert (got.uid, got.msg, got.type) == (alice.uid, "hello bob", pb.Message.MESSAGE)
    assert got.timestamp > 1_600_000_000
    bob.send_text(alice.uid, "hi alice")
    assert alice.next_message().msg == "hi alice"


def test_sender_identity_comes_from_the_session(relay: RelayProcess) -> None:
    alice = logged_in(relay, "alice")
    bob = logged_in(relay, "bob")
    make_buddies(alice, bob)
    # A forged sender uid inside the payload is overridden: uid is rewritten to alice.
    alice.send(FrameType.MESSAGE, pb.Message(uid=bob.uid, msg="forged", timestamp=1, seq=77))
    got = bob.next_message()
    assert got.uid == alice.uid and got.timestamp > 1 and got.seq != 77


def test_offline_backlog_arrives_at_login_in_order(relay: RelayProcess) -> None:
    alice = logged_in(relay, "alice")
    bob = logged_in(relay, "bob")
    make_buddies(alice, bob)
    bob.close()
    for i in range(50):
        alice.send_text(bob.uid, f"m{i}")
    alice.round_trip()  # everything before it has been processed
    again = client(relay)
    again.login("bob")
    assert [again.next_message().msg for _ in range(50)] == [f"m{i}" for i in range(50)]


def test_v1_backlog_cut_mid_run_is_neither_repeated_nor_reordered(relay: RelayProcess) -> None:
    """A v1 row counts as delivered once its own frame is written, even inside a stored run:
    a client that drops the connection in the middle of a large backlog gets, at its next
    login, exactly the messages after the last frame written (in seq order, none twice)."""
    alice = logged_in(relay, "alice")
    bob = logged_in(relay, "bob")
    make_buddies(alice, bob)
    bob.close()
    total = 2000
    filler = "x" * 4000  # 8 MB in all: more than the socket buffers hold
    for i in range(total):
        alice.send_text(bob.uid, f"{i} {filler}")
    alice.round_trip()
    first = client(relay)
    first.login("bob")
    seen = [int(first.next_message().msg.split()[0]) for _ in range(100)]
    first.close()
    assert seen == list(range(100))
    second = client(relay)
    second.login("bob")
    rest: list[int] = []
    while not rest or rest[-1] != total - 1:
        rest.append(int(second.next_message().msg.split()[0]))
    assert rest[0] > seen[-1]  # nothing written to the first session is sent again
    assert rest == list(range(rest[0], total))  # and the rest comes in order, complete


def test_non_buddy_messages_are_refused(relay: RelayProcess) -> None:
    alice = logged_in(relay, "alice", version=2)
    bob = logged_in(relay, "bob")
    alice.send_text(bob.uid, "spam", msg_id=5)
    ack = alice.expect(FrameType.ACK, pb.Ack)
    assert (ack.id, ack.code) == (5, pb.Ack.NOT_BUDDY)
    alice.send_text(4242, "void", msg_id=6)
    assert alice.expect(FrameType.ACK, pb.Ack).code == pb.Ack.NO_SUCH_USER
    bob.send_text(alice.uid, "v1 spam")  # v1: silently dropped
    bob_list = bob.buddies()
    assert list(bob_list.users) == []
    with pytest.raises(TimeoutError):
        alice.next_message(timeout=0.5)


def test_duplicate_login_kicks_the_first(relay: RelayProcess) -> None:
    first = logged_in(relay, "alice")
    second = client(relay)
    assert second.login("alice").code == pb.LoginResponse.SUCCESS
    reset = first.expect_closed()
    assert reset is not None and reset.code == pb.Reset.KICKED
    second.send(FrameType.LIST_BUDDY, pb.ListBuddyRequest())
    assert second.expect(FrameType.LIST_BUDDY, pb.ListBuddyResponse, skip=()) is not None


def test_login_twice_on_one_connection_is_kicked(relay: RelayProcess) -> None:
    c = logged_in(relay, "alice")
    c.send(FrameType.LOGIN, pb.LoginRequest(username="alice", password="pw"))
    reset = c.expect_closed()
    assert reset is not None and reset.code == pb.Reset.KICKED


def test_client_reset_closes_the_connection(relay: RelayProcess) -> None:
    c = logged_in(relay, "alice")
    c.send(FrameType.RESET, pb.Reset(code=pb.Reset.UNKNOWN_ERROR, msg="bye"))
    assert c.expect_closed() is None
    relay.wait_for_log(r"uid=1 closed: client sent Reset")


def test_plaintext_mode_serves_the_same_protocol(plaintext_relay: RelayProcess) -> None:
    alice = logged_in(plaintext_relay, "alice")
    bob = logged_in(plaintext_relay, "bob")
    make_buddies(alice, bob)
    alice.send_text(bob.uid, "in clear")
    assert bob.next_message().msg == "in clear"
    assert "WITHOUT TLS" in plaintext_relay.logs()
