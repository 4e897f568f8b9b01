"""``parley send`` / ``parley tail`` over the relay's Unix socket (PROTOCOL.md section 11),
against the real relay: no --host, no password option, no fingerprint.

The local account is this test process's own Unix user (the relay creates it at the first
local login); bob is a network account on TLS, so both transports meet in one exchange.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.parley_cli import cli_args
from tests.harness import RelayProcess
from tests.tui.client.sessions import FAST, buddies, make_session
from tui.client import ClientSession, Endpoint, TrustPolicy
from tui.client.cli import EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, main
from tui.client.local_socket import SOCKET_ENV, local_login_name


def _local_session(relay: RelayProcess, data_dir: Path) -> ClientSession:
    assert relay.unix_socket is not None
    return ClientSession(
        Endpoint.local(str(relay.unix_socket)),
        local_login_name(),
        None,
        trust=TrustPolicy.plaintext(),
        data_dir=data_dir,
        options=FAST,
    )


async def _befriend_bob(relay: RelayProcess, tmp_path: Path) -> None:
    """Create the local account (first local login) and bob, and make them buddies."""
    me = _local_session(relay, tmp_path / "lib-local")
    bob = make_session(relay, tmp_path, "bob")
    await bob.register()
    for session in (me, bob):
        await session.start()
    await buddies(me, bob)
    await me.close()
    await bob.close()


def _bob_over_tls(relay: RelayProcess, tmp_path: Path) -> list[str]:
    return cli_args(relay, tmp_path, "bob", tmp_path / "cli-bob")


def test_send_and_tail_over_the_socket_without_a_password(
    socket_relay: RelayProcess,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SOCKET_ENV, str(socket_relay.unix_socket))
    monkeypatch.delenv("PARLEY_USER", raising=False)
    asyncio.run(_befriend_bob(socket_relay, tmp_path))
    local = ["--data-dir", str(tmp_path / "cli-local")]
    # Each parley tail is its own device (PROTOCOL.md section 9), receiving what is sent
    # once it exists: both log in once first.
    assert main(["tail", *_bob_over_tls(socket_relay, tmp_path), "--once"]) == EXIT_OK
    assert main(["tail", *local, "--once"]) == EXIT_OK
    assert capsys.readouterr().out == ""

    assert main(["send", *local, "bob", "from the box"]) == EXIT_OK
    assert "sent to bob" in capsys.readouterr().out
    assert main(["tail", *_bob_over_tls(socket_relay, tmp_path), "--once"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.rstrip().endswith(f"{local_login_name()}: from the box")

    me = local_login_name()
    assert main(["send", *_bob_over_tls(socket_relay, tmp_path), me, "over TLS"]) == EXIT_OK
    capsys.readouterr()
    assert main(["tail", *local, "--count", "2"]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(f"{me} → bob: from the box")  # its own, sent by parley send
    assert lines[1].endswith("bob: over TLS")


def test_a_missing_socket_is_unreachable_and_a_password_needs_a_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SOCKET_ENV, str(tmp_path / "no-relay.sock"))
    monkeypatch.delenv("PARLEY_USER", raising=False)
    tail_args = ["tail", "--once", "--data-dir", str(tmp_path / "d"), "--timeout", "5"]
    assert main(tail_args) == EXIT_UNREACHABLE
    assert "cannot reach the relay" in capsys.readouterr().err
    (tmp_path / "pw").write_text("x\n")
    assert main(["tail", "--password-file", str(tmp_path / "pw")]) == EXIT_USAGE
