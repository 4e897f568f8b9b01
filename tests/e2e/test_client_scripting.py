"""``parley send`` / ``parley tail`` (tui.client.cli.main) against the real relay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.parley_cli import cli_args
from tests.harness import RelayProcess
from tests.tui.client.sessions import buddies, make_session
from tui.client.cli import EXIT_OK, EXIT_REFUSED, EXIT_TRUST, main


async def _accounts(relay: RelayProcess, tmp_path: Path, *, befriend: bool) -> None:
    alice = make_session(relay, tmp_path, "alice")
    bob = make_session(relay, tmp_path, "bob")
    for s in (alice, bob):
        await s.register()
        await s.start()
    if befriend:
        await buddies(alice, bob)
    await alice.close()
    await bob.close()


def _common(relay: RelayProcess, tmp_path: Path, user: str) -> list[str]:
    return cli_args(relay, tmp_path, user, tmp_path / "cli" / user)


def test_send_then_tail_once(
    relay: RelayProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_accounts(relay, tmp_path, befriend=True))
    # parley tail is its own device (tail@<host>, PROTOCOL.md section 9): it receives what
    # is sent once it exists, so it logs in once before the message is sent.
    assert main(["tail", *_common(relay, tmp_path, "bob"), "--once"]) == EXIT_OK
    assert capsys.readouterr().out == ""
    assert (
        main(["send", *_common(relay, tmp_path, "alice"), "bob", "build \x1b[31mgreen"]) == EXIT_OK
    )
    assert "sent to bob" in capsys.readouterr().out
    assert main(["tail", *_common(relay, tmp_path, "bob"), "--once"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.rstrip().endswith("alice: build [31mgreen")
    assert "\x1b" not in out  # terminal escapes from the network are stripped
    assert main(["tail", *_common(relay, tmp_path, "bob"), "--once"]) == EXIT_OK
    assert capsys.readouterr().out == ""  # already shown: not again


def test_send_to_a_stranger_is_refused(
    relay: RelayProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_accounts(relay, tmp_path, befriend=False))
    assert main(["send", *_common(relay, tmp_path, "alice"), "bob", "hi"]) == EXIT_REFUSED
    assert "not your buddy" in capsys.readouterr().err
    assert main(["send", *_common(relay, tmp_path, "alice"), "nobody", "hi"]) == EXIT_REFUSED


def test_wrong_fingerprint_exit_code(
    relay: RelayProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _common(relay, tmp_path, "alice")
    args[args.index("--fingerprint") + 1] = "SHA256:" + "A" * 43
    assert main(["send", *args, "bob", "hi"]) == EXIT_TRUST
    assert "REFUSED" in capsys.readouterr().err
