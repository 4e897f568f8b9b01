"""Issue 11 items 8, 9 and 10 (TLS): private store files, presence only between buddies,
admin commands that end live sessions, AEAD-only TLS without session tickets.

Real relay subprocess, real TLS, real SQLite file; the admin commands run as real
``python -m relay`` processes against the running relay's data dir.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs import KEY_FILE_NAME
from protocol import FrameDecoder
from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tests.harness import RelayProcess
from tests.wire import WireClient, make_buddies

KICK_TIMEOUT = 60.0  # the relay applies admin actions at its periodic sweep (every 5 s)


def client(relay: RelayProcess) -> WireClient:
    return WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)


def logged_in(relay: RelayProcess, name: str, version: int = 2) -> WireClient:
    c = client(relay)
    c.register(name)
    assert c.login(name, version=version).code == pb.LoginResponse.SUCCESS
    return c


def admin(relay: RelayProcess, *args: str, stdin: str = "") -> None:
    """``parley-relay --data-dir <the relay's> ARGS`` in its own process; must succeed."""
    result = relay.admin(*args, stdin=stdin)
    assert result.returncode == 0, result.stderr


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextlib.contextmanager
def permissive_umask() -> Iterator[None]:
    """Children started inside get the common 022 umask whatever the test runner's: the relay
    must make its files private by itself."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def pushes_before_answer(c: WireClient) -> list[pb.ListBuddyResponse]:
    """The LIST_BUDDY pushes ``c`` receives before the answer to a request sent now: any push
    the relay queued before handling the request arrives ahead of its answer."""
    c.send(FrameType.LIST_USER, pb.ListUserRequest(limit=1))
    pushes = []
    while True:
        frame_type, message = c.recv()
        if frame_type == FrameType.LIST_USER:
            return pushes
        if frame_type == FrameType.LIST_BUDDY:
            pushes.append(message)


def online_in_list_user(c: WireClient) -> dict[str, bool]:
    c.send(FrameType.LIST_USER, pb.ListUserRequest())
    response = c.expect(FrameType.LIST_USER, pb.ListUserResponse)
    return {user.username: user.online for user in response.users}


# -- private files -------------------------------------------------------------------------


def test_the_relay_keeps_its_data_dir_and_every_store_file_private(tmp_path: Path) -> None:
    relay = RelayProcess(tmp_path / "relay")
    with permissive_umask():
        relay.start()
    try:
        alice = logged_in(relay, "alice")
        alice.round_trip()  # the registration is committed: the WAL exists
        data = relay.data_dir
        assert mode_of(data) == 0o700
        for name in ("parley.db", "parley.db-wal", "parley.db-shm", KEY_FILE_NAME):
            assert mode_of(data / name) == 0o600, name
    finally:
        relay.stop()


# -- presence only between buddies ---------------------------------------------------------


def test_list_user_shows_online_only_for_buddies_and_the_caller(relay: RelayProcess) -> None:
    alice, bob = logged_in(relay, "alice"), logged_in(relay, "bob")
    carol, dave = logged_in(relay, "carol"), logged_in(relay, "dave")
    make_buddies(alice, bob)
    assert alice.add_buddy(dave.uid) == pb.AddBuddyResponse.PENDING
    assert online_in_list_user(alice) == {"alice": True, "bob": True, "carol": False, "dave": False}
    assert online_in_list_user(dave) == {"alice": False, "bob": False, "carol": False, "dave": True}
    assert online_in_list_user(carol) == {
        "alice": False,
        "bob": False,
        "carol": True,
        "dave": False,
    }


def test_neither_side_of_a_pending_buddy_request_sees_the_others_presence(
    relay: RelayProcess,
) -> None:
    alice, bob = logged_in(relay, "alice"), logged_in(relay, "bob")
    assert alice.add_buddy(bob.uid) == pb.AddBuddyResponse.PENDING
    pushes_before_answer(alice)
    pushes_before_answer(bob)
    assert [(u.username, u.online) for u in alice.buddies().users] == [("bob", False)]
    assert [(u.username, u.online) for u in bob.buddies().users] == [("alice", False)]

    bob.close()  # the requested side leaves and comes back: the requester hears nothing
    bob = client(relay)
    assert bob.login("bob").code == pb.LoginResponse.SUCCESS
    assert pushes_before_answer(alice) == []
    alice.close()  # the requester leaves and comes back: the requested side hears nothing
    alice = client(relay)
    assert alice.login("alice").code == pb.LoginResponse.SUCCESS
    assert pushes_before_answer(bob) == []

    # Once buddies, the same comings and goings are pushed (the check above can see pushes).
    assert bob.add_buddy(alice.uid) == pb.AddBuddyResponse.SUCCESS
    pushes_before_answer(alice)
    bob.close()
    bob = client(relay)
    assert bob.login("bob").code == pb.LoginResponse.SUCCESS
    pushes = pushes_before_answer(alice)
    assert pushes and [(u.username, u.online) for u in pushes[-1].users] == [("bob", True)]


# -- admin commands end live sessions ------------------------------------------------------


def test_user_passwd_ends_the_users_live_session(relay: RelayProcess) -> None:
    alice = logged_in(relay, "alice")
    bob = logged_in(relay, "bob", version=1)
    admin(relay, "user", "passwd", "alice", "--password-stdin", stdin="new secret\n")
    reset = alice.expect_closed(timeout=KICK_TIMEOUT)
    assert reset is not None and reset.code == pb.Reset.KICKED
    assert "password was changed" in reset.msg
    again = client(relay)
    assert again.login("alice", "pw").code == pb.LoginResponse.PASSWORD_ERROR
    assert again.login("alice", "new secret").code == pb.LoginResponse.SUCCESS
    bob.round_trip()  # everyone else goes on


def test_user_remove_ends_the_users_live_session_and_updates_its_buddies(
    relay: RelayProcess,
) -> None:
    alice = logged_in(relay, "alice")
    bob = logged_in(relay, "bob", version=1)
    make_buddies(alice, bob)
    pushes_before_answer(alice)
    admin(relay, "user", "remove", "bob")
    reset = bob.expect_closed(timeout=KICK_TIMEOUT)
    assert reset is not None and reset.code == pb.Reset.KICKED
    assert "removed" in reset.msg
    latest = alice.expect(FrameType.LIST_BUDDY, pb.ListBuddyResponse, skip=())
    assert list(latest.users) == []
    again = client(relay)
    assert again.login("bob").code == pb.LoginResponse.USER_NOT_FOUND


# -- TLS: AEAD suites only, no session tickets ---------------------------------------------


def tls_client_context(maximum: ssl.TLSVersion) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = maximum
    return context


def greeted(relay: RelayProcess, context: ssl.SSLContext) -> ssl.SSLSocket:
    """A TLS connection whose greeting has been read (so any ticket would have arrived)."""
    raw = socket.create_connection((relay.host, relay.port), timeout=10)
    sock = context.wrap_socket(raw, server_hostname=relay.host)
    decoder = FrameDecoder()
    while not (frames := decoder.feed(sock.recv(65536))):
        pass
    assert frames[0][0] == FrameType.RAW
    return sock


# Python's default server list already drops the SHA-1 ones; the SHA-2 CBC suites remained.
@pytest.mark.parametrize(
    "suite", ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384"]
)
def test_a_tls12_client_offering_only_a_cbc_suite_is_refused(
    relay: RelayProcess, suite: str
) -> None:
    context = tls_client_context(ssl.TLSVersion.TLSv1_2)
    context.set_ciphers(suite)
    with (
        socket.create_connection((relay.host, relay.port), timeout=10) as raw,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(raw, server_hostname=relay.host)
    assert client(relay).greeting.startswith("This is a chat server")  # others are served


def test_a_tls12_client_gets_an_aead_suite_and_no_session_ticket(relay: RelayProcess) -> None:
    with greeted(relay, tls_client_context(ssl.TLSVersion.TLSv1_2)) as sock:
        assert sock.version() == "TLSv1.2"
        cipher = sock.cipher()
        assert cipher is not None and ("GCM" in cipher[0] or "CHACHA20" in cipher[0])
        assert sock.session is not None and not sock.session.has_ticket


def test_a_default_tls13_client_works_and_gets_no_session_ticket(relay: RelayProcess) -> None:
    with greeted(relay, tls_client_context(ssl.TLSVersion.MAXIMUM_SUPPORTED)) as sock:
        assert sock.version() == "TLSv1.3"
        assert sock.session is not None and not sock.session.has_ticket
