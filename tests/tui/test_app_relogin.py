"""Around a login (issue 15): the password changed on the relay while the TUI runs — instead
of retrying the old password forever (F5, "take the session back"), the app goes back to the
login form, says why, and logs in with the new password; the last open chat is reopened
after logging in."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Input

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, wait_until
from tests.tui.test_app_chat import make_buddies
from tui.app import ParleyApp
from tui.client.events import ConnectionState
from tui.client.session import ClientSession
from tui.screens.login import LoginScreen


async def test_password_changed_on_the_relay_asks_for_the_new_one(
    relay: RelayProcess, tmp_path: Path
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        first = await log_in(pilot, app, "alice")
        old_session = first.session
        changed = relay.admin("user", "passwd", "alice", "--password-stdin", stdin="new secret\n")
        assert changed.returncode == 0, changed.stderr

        def on_login_form() -> bool:
            return isinstance(app.screen, LoginScreen) and "password was changed" in (
                app.screen.message_text
            )

        await wait_until(pilot, on_login_form, "the login form saying why")
        assert app.screen.query_one("#username", Input).value == "alice"
        assert app.session is None
        await wait_until(pilot, lambda: old_session.state is ConnectionState.OFFLINE, "closed")

        second = await log_in(pilot, app, "alice", register=False, password="new secret")
        assert second.session is not old_session
        await wait_until(pilot, lambda: second.session.connected, "connected again")


async def test_the_last_open_chat_is_reopened_after_login(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    config = app_config(tmp_path, relay)
    app = ParleyApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await log_in(pilot, app, "alice")
        await make_buddies(screen, bob)
        await wait_until(pilot, lambda: bob.uid in screen.chat.buddies, "bob in the list")
        screen.open_conversation(bob.uid or 0)
        await pilot.press(*"see you tomorrow", "enter")
        await wait_until(pilot, lambda: screen.session.store.count(bob.uid or 0) == 1, "sent")
        await app.action_quit()

    again = ParleyApp(config)
    async with again.run_test(size=(80, 24)) as pilot:
        screen = await log_in(pilot, again, "alice", register=False)
        await wait_until(pilot, lambda: screen.chat.active == bob.uid, "bob's chat open")
        assert "see you tomorrow" in "\n".join(line.plain for line in screen.view.timeline.lines)


async def test_a_failed_login_leaves_no_history_files(relay: RelayProcess, tmp_path: Path) -> None:
    config = app_config(tmp_path, relay, fingerprint=relay.fingerprint)  # no trust prompt
    app = ParleyApp(config)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login form")
        login = app.screen
        assert isinstance(login, LoginScreen)
        login.query_one("#username", Input).value = "nobody"
        login.query_one("#password", Input).value = "wrong password"
        await pilot.press("ctrl+l")
        await wait_until(pilot, lambda: "Register" in login.message_text, "the refusal")
        await wait_until(pilot, lambda: not app.workers, "the login worker done")
    left = sorted(p.name for p in config.data_dir.rglob("*.sqlite3*"))
    assert left == [], left
