"""Issue 11, items 6 and 10e, against a real relay over real TLS: the login throttle counts
checks that are still running, never locks an owner out from other addresses nor out of a
valid token, speaks only codes a v1 client knows; registrations are limited per address;
look-alike and invisible usernames are refused.

Distinct peer addresses come from binding the client socket to 127.0.0.2, 127.0.0.3, ...
(all of 127.0.0.0/8 is loopback on Linux).
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from pathlib import Path

from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tests.harness import RelayProcess
from tests.wire import WireClient

FREE_FAILURES = 5  # the relay's default login_failures_before_throttle
_SCRYPT_STAT = re.compile(r"stats: .*\bscrypt=(\d+)")


def _client(relay: RelayProcess, source_address: str | None = None) -> WireClient:
    return WireClient(
        relay.host,
        relay.port,
        fingerprint=relay.fingerprint,
        timeout=60.0,
        source_address=source_address,
    )


def _scrypt_computations(relay: RelayProcess) -> int:
    """The relay's count of scrypt computations so far, from a fresh SIGUSR1 stats line."""
    seen = len(_SCRYPT_STAT.findall(relay.logs()))
    assert relay.process is not None
    relay.process.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 30.0
    while len(found := _SCRYPT_STAT.findall(relay.logs())) == seen:
        assert time.monotonic() < deadline, f"no stats line after SIGUSR1:\n{relay.logs()}"
        time.sleep(0.02)
    return int(found[-1])


def _register(relay: RelayProcess, name: str, password: str) -> None:
    c = _client(relay)
    assert c.register(name, password).code == pb.RegisterResponse.SUCCESS
    c.close()


def _owner_token(relay: RelayProcess, name: str, password: str) -> str:
    c = _client(relay)
    assert c.login(name, password, version=2).code == pb.LoginResponse.SUCCESS
    c.close()
    return c.token


def _guess(c: WireClient, name: str, version: int = 2) -> pb.LoginResponse:
    c.send(
        FrameType.LOGIN, pb.LoginRequest(username=name, password="wrong", protocol_version=version)
    )
    return c.expect(FrameType.LOGIN, pb.LoginResponse)


def test_concurrent_wrong_passwords_get_no_more_checks_than_the_limit(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay", extra_args=["--login-timeout", "600"]) as relay:
        _register(relay, "alice", "right")
        before = _scrypt_computations(relay)
        clients = [_client(relay) for _ in range(300)]
        request = pb.LoginRequest(username="alice", password="wrong", protocol_version=2)
        # All 300 wait in the relay's sockets before it reads any (it is stopped meanwhile):
        # it handles them in one burst, however slowly this machine sends.
        assert relay.process is not None
        relay.process.send_signal(signal.SIGSTOP)
        try:
            for c in clients:
                c.send(FrameType.LOGIN, request)
        finally:
            relay.process.send_signal(signal.SIGCONT)
        codes = Counter(c.expect(FrameType.LOGIN, pb.LoginResponse).code for c in clients)
        assert codes == {
            pb.LoginResponse.PASSWORD_ERROR: FREE_FAILURES,
            pb.LoginResponse.RATE_LIMITED: 300 - FREE_FAILURES,
        }
        assert _scrypt_computations(relay) - before == FREE_FAILURES
        for c in clients:
            c.close()


def test_throttled_v1_login_gets_a_code_of_the_original_protocol(relay: RelayProcess) -> None:
    _register(relay, "alice", "right")
    c = _client(relay)
    for _ in range(FREE_FAILURES + 1):  # the last one is refused unchecked, in v1 words
        assert _guess(c, "alice", version=1).code == pb.LoginResponse.PASSWORD_ERROR
    refused = c.login("alice", "right", version=1)
    # v1's LoginResponse codes are SUCCESS, USER_NOT_FOUND and PASSWORD_ERROR: no RATE_LIMITED.
    assert refused.code == pb.LoginResponse.PASSWORD_ERROR and refused.retry_after_ms > 0
    v2 = c.login("alice", "right", version=2)
    assert v2.code == pb.LoginResponse.RATE_LIMITED and v2.retry_after_ms > 0


def test_guessing_from_other_addresses_does_not_lock_the_owner_out(relay: RelayProcess) -> None:
    _register(relay, "alice", "right")
    token = _owner_token(relay, "alice", "right")
    for host in range(2, 12):  # ten attacking addresses, eight guesses each
        attacker = _client(relay, source_address=f"127.0.0.{host}")
        codes = [_guess(attacker, "alice").code for _ in range(FREE_FAILURES + 3)]
        assert codes[-1] == pb.LoginResponse.RATE_LIMITED  # the guesser is slowed down
        attacker.close()
    by_password = _client(relay)  # the owner, at its own address 127.0.0.1
    assert by_password.login("alice", "right", version=2).code == pb.LoginResponse.SUCCESS
    by_password.close()
    by_token = _client(relay)
    response = by_token.login("alice", "", version=2, token=token)
    assert response.code == pb.LoginResponse.SUCCESS


def test_a_valid_token_is_never_throttled(relay: RelayProcess) -> None:
    _register(relay, "alice", "right")
    token = _owner_token(relay, "alice", "right")
    guesser = _client(relay)  # same address as the owner: the password is throttled there
    codes = [_guess(guesser, "alice").code for _ in range(FREE_FAILURES + 2)]
    assert codes[-1] == pb.LoginResponse.RATE_LIMITED
    assert guesser.login("alice", "right", version=2).code == pb.LoginResponse.RATE_LIMITED
    owner = _client(relay)
    response = owner.login("alice", "", version=2, token=token)
    assert response.code == pb.LoginResponse.SUCCESS and response.token == token


def test_registrations_are_limited_per_address_per_minute(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "relay", extra_args=["--registrations-per-minute", "3"]) as relay:
        c = _client(relay)
        for name in ("ann", "ben", "cat"):
            assert c.register(name).code == pb.RegisterResponse.SUCCESS
        assert c.register("dan").code == pb.RegisterResponse.RATE_LIMITED
        # Refusals that cost no hashing are answered as such and do not count.
        assert c.register("ann").code == pb.RegisterResponse.USER_EXISTS
        assert c.register("bad name").code == pb.RegisterResponse.INVALID_USERNAME
        other = _client(relay, source_address="127.0.0.2")
        assert other.register("dan").code == pb.RegisterResponse.SUCCESS


def test_look_alike_and_invisible_usernames_are_refused(relay: RelayProcess) -> None:
    c = _client(relay)
    assert c.register("alice", "right").code == pb.RegisterResponse.SUCCESS
    for look_alike in ("\u0430lice", "\uff41\uff4c\uff49\uff43\uff45", "\u0391lice"):
        # Cyrillic a; fullwidth letters; Greek capital alpha (uniqueness ignores case)
        assert c.register(look_alike, "pw").code == pb.RegisterResponse.USER_EXISTS, look_alike
    for invisible in ("\u3164", "\u115f\u1160", "\uffa0", "a\u200b", "\u2060bob"):
        assert c.register(invisible, "pw").code == pb.RegisterResponse.INVALID_USERNAME
    # Login looks the exact name up: a look-alike name never reaches alice's account.
    assert c.login("\u0430lice", "right").code == pb.LoginResponse.USER_NOT_FOUND
    assert c.login("ALICE", "right").code == pb.LoginResponse.SUCCESS


def test_many_users_behind_one_address_log_in_at_once(relay: RelayProcess) -> None:
    """A shared box (everyone on 127.0.0.1) or a relay restart: 60 v1 users send their
    password logins at the same moment, three times the per-address failure allowance. They
    are not guessing, so none is throttled (v1 would see that as PASSWORD_ERROR)."""
    names = [f"crowd{i:02d}" for i in range(20 * 3)]
    for name in names:
        _register(relay, name, f"pw-{name}")
    clients = [_client(relay) for _ in names]
    for c, name in zip(clients, names, strict=True):
        c.send(FrameType.LOGIN, pb.LoginRequest(username=name, password=f"pw-{name}"))
    codes = Counter(c.expect(FrameType.LOGIN, pb.LoginResponse).code for c in clients)
    assert codes == {pb.LoginResponse.SUCCESS: len(names)}
    for c in clients:
        c.close()
