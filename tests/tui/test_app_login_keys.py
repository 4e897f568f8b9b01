"""The login form by keyboard (issue 15): Enter on a checkbox submits, the button's label
fits at 80 columns, and a burst of keys (user, Tab, password — a paste or a password
manager) lands in the right fields."""

from __future__ import annotations

from pathlib import Path

from textual import events
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input

from tests.harness import RelayProcess
from tests.tui.conftest import PASSWORD, app_config, screen_text, wait_until
from tui.app import ParleyApp
from tui.dialogs.trust import TrustDialog
from tui.screens.login import LoginScreen
from tui.screens.main import MainScreen


async def login_screen(pilot: Pilot[None], app: ParleyApp) -> LoginScreen:
    await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), "login")
    screen = app.screen
    assert isinstance(screen, LoginScreen)
    return screen


def send_burst(app: ParleyApp, keys: list[str]) -> None:
    """All the keys at once, as a terminal delivers a paste: nothing runs in between."""
    driver = app._driver
    assert driver is not None
    for key in keys:
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(app)
        driver.send_message(event)


async def test_enter_on_the_register_checkbox_submits(relay: RelayProcess, tmp_path: Path) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        login = await login_screen(pilot, app)
        await pilot.press(*"alice", "tab", *PASSWORD, "tab")
        register = login.query_one("#register", Checkbox)
        assert app.focused is register
        await pilot.press("space")  # Space toggles
        assert register.value
        await pilot.press("enter")  # Enter submits (and leaves the box ticked)
        await wait_until(pilot, lambda: isinstance(app.screen, TrustDialog), "trust prompt")
        assert register.value
        await pilot.press("y")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "main screen")
        await wait_until(pilot, lambda: "connected" in screen_text(app), "the main screen shown")


async def test_register_label_fits_at_80_columns(relay: RelayProcess, tmp_path: Path) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        login = await login_screen(pilot, app)
        login.query_one("#register", Checkbox).value = True
        await wait_until(pilot, lambda: "Register and log in" in screen_text(app), "full label")
        login.query_one("#register", Checkbox).value = False
        await wait_until(
            pilot, lambda: "Register and" not in screen_text(app), "the label back to Log in"
        )
        assert "Log in" in screen_text(app)


async def test_a_burst_of_user_tab_password_fills_both_fields(
    relay: RelayProcess, tmp_path: Path
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        login = await login_screen(pilot, app)
        user = login.query_one("#username", Input)
        password = login.query_one("#password", Input)
        assert app.focused is user
        send_burst(app, [*"alice", "tab", *"s3cret"])
        await wait_until(pilot, lambda: password.value == "s3cret", "the password typed")
        assert user.value == "alice"

        # A bracketed paste of "user<Tab>password" into the user field fills both too.
        user.value = password.value = ""
        user.focus()
        await pilot.pause()
        app.post_message(events.Paste("bob\thunter2"))
        await wait_until(pilot, lambda: password.value == "hunter2", "the pasted password")
        assert user.value == "bob"
        assert app.focused is password
