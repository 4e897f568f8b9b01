"""The TUI as one of several devices of its user (PROTOCOL.md section 9), against the real
relay: kicked by a login on its own device it says so and takes the session back on a key;
a message sent with the real ``parley send`` shows at once in the open chat as alice's own.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from tests.harness import RelayProcess
from tests.tui.client.sessions import wait_for
from tests.tui.conftest import FAST, PASSWORD, app_config, log_in, screen_text, wait_until
from tui.app import ParleyApp
from tui.cli import build_parser, config_from_args, main
from tui.client import cli as scripting
from tui.client.connection import Endpoint
from tui.client.events import ConnectionState, MessageReceived, ResetReceived
from tui.client.local_socket import SOCKET_ENV
from tui.client.session import ClientSession
from tui.client.trust import TrustPolicy
from tui.dialogs.kicked import KickedDialog
from tui.screens.main import MainScreen
from tui.state.roster import RowKind


async def befriend(pilot_screen: MainScreen, peer: ClientSession) -> None:
    session = pilot_screen.session
    assert session.uid is not None and peer.uid is not None
    await session.add_buddy(peer.uid)
    await peer.add_buddy(session.uid)


def is_buddy(screen: MainScreen, uid: int) -> bool:
    return any(row.uid == uid and row.kind is RowKind.BUDDY for row in screen.buddy_list.rows)


async def test_a_kicked_tui_offers_to_take_the_session_back(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay, device="tui@test"))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await log_in(pilot, app, "alice")
        assert screen.session.device == "tui@test"
        await befriend(screen, bob)
        assert bob.uid is not None and screen.session.uid is not None
        await wait_until(pilot, lambda: is_buddy(screen, bob.uid or 0), "bob as a buddy")

        # alice logs in elsewhere on the same device: the relay kicks the TUI.
        assert relay.fingerprint is not None
        elsewhere = ClientSession(
            Endpoint(relay.host, relay.port),
            "alice",
            PASSWORD,
            trust=TrustPolicy.pinned(relay.fingerprint),
            data_dir=tmp_path / "elsewhere",
            options=FAST,
            device="tui@test",
        )
        elsewhere_events = elsewhere.events()
        await elsewhere.start()
        await wait_until(pilot, lambda: isinstance(app.screen, KickedDialog), "the kick notice")
        await wait_until(
            pilot, lambda: "This session was taken over" in screen_text(app), "its text"
        )
        text = screen_text(app)
        assert "tui@test" in text and "Take it back" in text
        assert screen.session.state is ConnectionState.OFFLINE

        # One key takes it back: the TUI logs in again, which kicks the other session.
        await pilot.press("t")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "the dialog gone")
        kicked = await wait_for(
            elsewhere_events, ResetReceived, lambda e: e.code == pb.Reset.KICKED
        )
        assert "tui@test" in kicked.reason
        await wait_until(
            pilot, lambda: screen.session.state is ConnectionState.CONNECTED, "connected again"
        )

        # And chat works again, both ways.
        screen.open_conversation(bob.uid)
        bob_events = bob.events()
        await pilot.press(*"back again")
        await pilot.press("enter")
        got = await wait_for(
            bob_events, MessageReceived, lambda e: e.entry.type == pb.Message.MESSAGE
        )
        assert got.entry.text == "back again"
        bob.send_text(screen.session.uid, "welcome back")
        await wait_until(pilot, lambda: "bob: welcome back" in screen_text(app), "bob's answer")
        await elsewhere.close()


async def test_a_parley_send_message_appears_in_the_open_chat(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    config = app_config(tmp_path, relay)
    app = ParleyApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await log_in(pilot, app, "alice")
        assert screen.session.device.startswith("tui@")
        await befriend(screen, bob)
        assert bob.uid is not None
        await wait_until(pilot, lambda: is_buddy(screen, bob.uid or 0), "bob as a buddy")
        screen.open_conversation(bob.uid)

        # `parley send` from a shell of the same user, same data dir (as on a shared box).
        password = tmp_path / "alice.pw"
        password.write_text(PASSWORD + "\n")
        assert relay.fingerprint is not None
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tui.cli",
            "send",
            "--host",
            relay.host,
            "--port",
            str(relay.port),
            "--user",
            "alice",
            "--password-file",
            str(password),
            "--fingerprint",
            relay.fingerprint,
            "--data-dir",
            str(config.data_dir),
            "bob",
            "sent from a script",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await process.communicate()
        assert process.returncode == 0, err.decode()

        def shown() -> list[tuple[str, bool]]:
            return [(e.text, e.outgoing) for e in screen.view.timeline.entries]

        await wait_until(pilot, lambda: shown() == [("sent from a script", True)], "the message")
        await wait_until(
            pilot, lambda: "alice: sent from a script" in screen_text(app), "shown as alice's"
        )
        assert screen.chat.unread.get(bob.uid) == 0
        # The TUI stays connected (send-only never kicks), and the message is stored once.
        assert screen.session.state is ConnectionState.CONNECTED
        stored = screen.session.store.page(bob.uid, types=[pb.Message.MESSAGE])
        assert [(e.text, e.outgoing) for e in stored] == [("sent from a script", True)]


def test_device_flags_of_parley_and_parley_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SOCKET_ENV, raising=False)
    parser = build_parser()
    assert config_from_args(parser.parse_args([])).device is None  # tui@<host>, first free
    assert config_from_args(parser.parse_args(["--device", "laptop"])).device == "laptop"
    with pytest.raises(SystemExit) as usage:
        main(["--device", "x" * 65])
    assert usage.value.code == 2 and "--device" in capsys.readouterr().err
    tail = ["tail", "--plaintext", "--user", "a", "--password-env", "PW", "--once"]
    monkeypatch.setenv("PW", "secret")
    assert scripting.main([*tail, "--device", "bad\tname"]) == scripting.EXIT_USAGE
    assert "--device" in capsys.readouterr().err
    scripting.build_parser().parse_args(["send", "bob", "hi"])  # send has no --device
    with pytest.raises(SystemExit):
        scripting.build_parser().parse_args(["send", "--device", "x", "bob", "hi"])
