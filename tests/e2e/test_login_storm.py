"""A storm of password logins waits in line instead of being refused (issue 16, target 6).

With ``--max-pending-hashes 8``, 300 connections send their password LOGIN at the same
moment (half v1, half v2). Before the login queue, every login beyond the 8 in the hash
worker was refused (v2 RATE_LIMITED, v1 PASSWORD_ERROR) and the client had to retry; now
each connection gets exactly one LoginResponse, SUCCESS, without sending anything again.
A logged-in bystander is answered (Ping) while the storm is being worked through. Nothing
is timed: the timeouts below only bound hangs.
"""

from __future__ import annotations

from pathlib import Path

from protocol import chat_pb2 as pb
from protocol.types import FrameType
from tests.harness import RelayProcess
from tests.wire import WireClient

STORM = 300
HANG = 120.0  # upper bound against hangs only, never a performance claim


def test_a_storm_of_password_logins_all_succeed_without_retry(tmp_path: Path) -> None:
    relay = RelayProcess(
        tmp_path / "relay",
        plaintext=True,
        extra_args=["--max-pending-hashes", "8", "--max-waiting-logins", "1000"],
    )
    relay.start()
    clients: list[WireClient] = []
    try:
        names = [f"storm{i:03d}" for i in range(STORM)]
        registrar = WireClient(relay.host, relay.port, tls=False)
        clients.append(registrar)
        for name in names:  # one at a time: registrations are not queued
            assert registrar.register(name, f"pw-{name}").code == pb.RegisterResponse.SUCCESS
        assert registrar.register("bystander", "pw").code == pb.RegisterResponse.SUCCESS
        bystander = WireClient(relay.host, relay.port, tls=False, timeout=HANG)
        clients.append(bystander)
        assert bystander.login("bystander", "pw", version=2).code == pb.LoginResponse.SUCCESS

        storm = [WireClient(relay.host, relay.port, tls=False, timeout=HANG) for _ in names]
        clients.extend(storm)
        for i, (client, name) in enumerate(zip(storm, names, strict=True)):
            client.send(
                FrameType.LOGIN,
                pb.LoginRequest(username=name, password=f"pw-{name}", protocol_version=1 + i % 2),
            )
        # The bystander is answered while the storm is in the relay (no login read yet).
        for nonce in range(1, 4):
            bystander.send(FrameType.PING, pb.Ping(nonce=nonce))
            assert bystander.expect(FrameType.PING, pb.Ping).nonce == nonce

        codes: dict[int, int] = {}
        for client in storm:
            response = client.expect(FrameType.LOGIN, pb.LoginResponse)
            codes[response.code] = codes.get(response.code, 0) + 1
            if response.code == pb.LoginResponse.SUCCESS:
                client.expect(FrameType.LIST_BUDDY, pb.ListBuddyResponse, skip=())
        assert codes == {pb.LoginResponse.SUCCESS: STORM}
        bystander.send(FrameType.PING, pb.Ping(nonce=99))
        assert bystander.expect(FrameType.PING, pb.Ping).nonce == 99
    finally:
        for client in clients:
            client.close()
        relay.stop()
    assert not [line for line in relay.log_lines if "Traceback" in line]


def test_logins_beyond_the_waiting_bound_are_refused_with_codes_their_protocol_has(
    tmp_path: Path,
) -> None:
    """One job in the worker, one waiting: of a burst of 20, some are refused, v1 with
    PASSWORD_ERROR (the original protocol has no RATE_LIMITED), v2 with RATE_LIMITED. The
    production hash cost keeps the first check busy while the burst arrives."""
    relay = RelayProcess(
        tmp_path / "relay",
        plaintext=True,
        extra_args=[
            *("--max-pending-hashes", "1", "--max-waiting-logins", "1"),
            *("--scrypt-n", "16384"),
        ],
    )
    relay.start()
    clients: list[WireClient] = []
    try:
        burst = 20
        names = [f"user{i:02d}" for i in range(burst)]
        registrar = WireClient(relay.host, relay.port, tls=False)
        clients.append(registrar)
        for name in names:
            assert registrar.register(name, "pw").code == pb.RegisterResponse.SUCCESS
        storm = [WireClient(relay.host, relay.port, tls=False, timeout=HANG) for _ in names]
        clients.extend(storm)
        for i, (client, name) in enumerate(zip(storm, names, strict=True)):
            client.send(
                FrameType.LOGIN,
                pb.LoginRequest(username=name, password="pw", protocol_version=1 + i % 2),
            )
        seen: dict[tuple[int, int], int] = {}
        for i, client in enumerate(storm):
            response = client.expect(FrameType.LOGIN, pb.LoginResponse)
            key = (1 + i % 2, response.code)
            seen[key] = seen.get(key, 0) + 1
        codes = pb.LoginResponse
        assert set(seen) <= {
            (1, codes.SUCCESS),
            (1, codes.PASSWORD_ERROR),
            (2, codes.SUCCESS),
            (2, codes.RATE_LIMITED),
        }
        refused = seen.get((1, codes.PASSWORD_ERROR), 0) + seen.get((2, codes.RATE_LIMITED), 0)
        assert refused > 0  # 2 of 20 fit in while the first check runs
        assert seen.get((1, codes.SUCCESS), 0) + seen.get((2, codes.SUCCESS), 0) >= 2
    finally:
        for client in clients:
            client.close()
        relay.stop()
