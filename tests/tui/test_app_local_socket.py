"""The TUI on the relay's own box: with the relay's Unix socket found and no --host, it opens
straight into the chat (PROTOCOL.md section 11), against the real relay."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, wait_until
from tui.app import ParleyApp
from tui.cli import build_parser, config_from_args
from tui.client.local_socket import SOCKET_ENV, local_login_name
from tui.screens.main import MainScreen


async def test_opens_straight_into_the_chat_over_the_socket(
    socket_relay: RelayProcess, tmp_path: Path
) -> None:
    # TLS settings stay those of a first start (TOFU, nothing known): over the socket no
    # trust question is asked, so the main screen is reached with nobody answering one.
    config = app_config(
        tmp_path, socket_relay, host=None, port=None, local_socket=socket_relay.unix_socket
    )
    app = ParleyApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        # The main screen is app.screen before its on_mount ran (even before it composed:
        # query, not query_one); quitting then would end the app while it mounts: wait until
        # it is set up (on_mount titles the conversation).
        await wait_until(
            pilot,
            lambda: (
                isinstance(app.screen, MainScreen)
                and any(v.border_title == "Conversation" for v in app.screen.query("#conversation"))
            ),
            "the main screen, mounted",
        )
        session = app.session
        assert session is not None and session.uid is not None
        assert session.endpoint.is_local and session.username == local_login_name()
        await app.action_quit()
    assert not config.known_relays.exists()
    assert not config.settings_path.exists()  # the remembered TLS server is left alone


def test_the_socket_is_used_only_without_a_network_choice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "relay.sock"
    monkeypatch.setenv(SOCKET_ENV, str(path))
    parser = build_parser()
    assert config_from_args(parser.parse_args([])).local_socket == path
    for network in (["--host", "relay.example"], ["--plaintext"]):
        assert config_from_args(parser.parse_args(network)).local_socket is None
