"""Login screen against a real relay: register, trust on first use, remembered server,
refusals (wrong password, declined trust, changed certificate, unreachable relay), sizes."""

from __future__ import annotations

import socket
from pathlib import Path

from certs import format_fingerprint
from tests.harness import RelayProcess
from tests.tui.conftest import PASSWORD, app_config, log_in, screen_text, wait_until
from tui.app import ParleyApp
from tui.client.trust import TrustStore
from tui.dialogs.fingerprint_changed import FingerprintChangedDialog
from tui.dialogs.trust import TrustDialog
from tui.screens.login import LoginScreen
from tui.screens.main import MainScreen
from tui.settings import load_remembered
from tui.widgets.buddy_list import BuddyList
from tui.widgets.composer import Composer
from tui.widgets.conversation import ConversationView
from tui.widgets.status_bar import StatusBar


async def test_register_trust_prompt_then_log_in_again(relay: RelayProcess, tmp_path: Path) -> None:
    config = app_config(tmp_path, relay, host=None, port=None)
    # First run: server typed in, account registered, fingerprint shown and accepted.
    app = ParleyApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), "login")
        server = app.screen.query_one("#server")
        server.value = f"{relay.host}:{relay.port}"  # type: ignore[attr-defined]
        await pilot.click("#username")
        await pilot.press(*"alice")
        await pilot.click("#password")
        await pilot.press(*PASSWORD)
        await pilot.click("#register")
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: isinstance(app.screen, TrustDialog), "trust prompt")
        assert relay.fingerprint is not None
        await wait_until(pilot, lambda: relay.fingerprint in screen_text(app), "screen text")
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main screen")
        status = app.screen.query_one(StatusBar)
        await wait_until(pilot, lambda: "connected" in status.state_text, "connected")
        await wait_until(pilot, lambda: "alice" in screen_text(app), "screen text")
        short = relay.fingerprint.split(":", 1)[1][:12]  # the status bar's short form
        await wait_until(pilot, lambda: short in screen_text(app), "short fingerprint")
        await pilot.press("ctrl+q")
    assert TrustStore(config.known_relays).lookup(relay.host, relay.port) == relay.fingerprint
    remembered = load_remembered(config.settings_path)
    assert remembered is not None and (remembered.host, remembered.user) == (relay.host, "alice")

    # Second run: server and user prefilled, password only, no prompt this time.
    app = ParleyApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), "login")
        assert app.screen.query_one("#username").value == "alice"  # type: ignore[attr-defined]
        assert app.focused is not None and app.focused.id == "password"
        await pilot.press(*PASSWORD)
        await pilot.press("enter")
        await wait_until(pilot, lambda: not isinstance(app.screen, LoginScreen), "progress")
        assert isinstance(app.screen, MainScreen)


async def test_wrong_password_and_unknown_user_are_explained(
    relay: RelayProcess, tmp_path: Path
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(100, 30)) as pilot:
        await log_in(pilot, app, "alice")
        await pilot.press("ctrl+q")
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), "login")
        login = app.screen
        assert isinstance(login, LoginScreen)
        login.query_one("#username").value = "alice"  # type: ignore[attr-defined]
        login.query_one("#password").value = "wrong"  # type: ignore[attr-defined]
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: "wrong password" in login.message_text, "refusal")
        assert not login.busy
        login.query_one("#username").value = "nobody"  # type: ignore[attr-defined]
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: "Register a new account" in login.message_text, "hint")


async def test_declining_the_fingerprint_refuses(relay: RelayProcess, tmp_path: Path) -> None:
    config = app_config(tmp_path, relay)
    app = ParleyApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), "login")
        login = app.screen
        assert isinstance(login, LoginScreen)
        login.query_one("#username").value = "alice"  # type: ignore[attr-defined]
        login.query_one("#password").value = PASSWORD  # type: ignore[attr-defined]
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: isinstance(app.screen, TrustDialog), "trust prompt")
        await pilot.press("enter")  # Cancel has the focus: Enter does not trust
        await wait_until(pilot, lambda: "not trusted" in login.message_text, "refusal")
    assert not config.known_relays.exists() or not config.known_relays.read_text().strip()


async def test_changed_fingerprint_is_a_blocking_red_warning(
    relay: RelayProcess, tmp_path: Path
) -> None:
    config = app_config(tmp_path, relay)
    wrong = format_fingerprint(bytes(32))
    TrustStore(config.known_relays).add(relay.host, relay.port, wrong)
    app = ParleyApp(config)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), "login")
        login = app.screen
        assert isinstance(login, LoginScreen)
        login.query_one("#username").value = "alice"  # type: ignore[attr-defined]
        login.query_one("#password").value = PASSWORD  # type: ignore[attr-defined]
        await pilot.press("ctrl+l")
        await wait_until(
            pilot, lambda: isinstance(app.screen, FingerprintChangedDialog), "the warning"
        )
        dialog = app.screen
        assert [button.id for button in dialog.query("Button")] == ["close"]  # nothing to trust
        text = screen_text(app)
        assert "HAS CHANGED" in text and wrong in text and (relay.fingerprint or "?") in text
        await pilot.press("y")  # not an answer here
        assert app.screen is dialog
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is login, "back to the login screen")
        assert "REFUSED" in login.message_text
    assert TrustStore(config.known_relays).lookup(relay.host, relay.port) == wrong


async def test_unreachable_relay(tmp_path: Path, relay: RelayProcess) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = ParleyApp(app_config(tmp_path, relay, port=port))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), "login")
        login = app.screen
        assert isinstance(login, LoginScreen)
        login.query_one("#username").value = "alice"  # type: ignore[attr-defined]
        login.query_one("#password").value = PASSWORD  # type: ignore[attr-defined]
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: "Cannot reach" in login.message_text, "the error")


async def test_layout_from_60x20_to_large(relay: RelayProcess, tmp_path: Path) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(60, 20)) as pilot:
        screen = await log_in(pilot, app, "alice")
        for size in ((60, 20), (80, 24), (200, 60), (60, 20)):
            await pilot.resize_terminal(*size)
            await pilot.pause()
            for widget_type in (BuddyList, ConversationView, Composer, StatusBar):
                region = screen.query_one(widget_type).region
                assert region.width > 0 and region.height > 0, (widget_type, size)
                assert region.right <= size[0] and region.bottom <= size[1]
            view = screen.query_one(ConversationView).region
            assert view.height >= 6, size  # room for a few messages even at 60x20
            await wait_until(pilot, lambda: "connected" in screen_text(app), "screen text")
        await pilot.press("f1")
        await pilot.pause()
        await wait_until(pilot, lambda: "Add buddy" in screen_text(app), "footer bindings")
