"""Issue 15: the command palette lists only Parley's commands (not Textual's "Keys",
"Screenshot", "Maximize"); Ctrl+C says how to quit wherever the focus is."""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, wait_until
from tui.app import ParleyApp
from tui.screens.login import LoginScreen


def toasts(app: App[None]) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_palette_holds_only_parleys_commands(relay: RelayProcess, tmp_path: Path) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        await log_in(pilot, app, "alice")
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert "Add buddy" in titles and "Quit" in titles and "Help: keys" in titles
        for textual_own in ("Keys", "Screenshot", "Maximize", "Minimize", "Theme"):
            assert not any(title.startswith(textual_own) for title in titles), titles


async def test_ctrl_c_says_how_to_quit(relay: RelayProcess, tmp_path: Path) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), "login")
        await pilot.press("ctrl+c")  # the user name field has the focus
        await wait_until(pilot, lambda: any("Ctrl+Q" in t for t in toasts(app)), "the hint")
        app.clear_notifications()
        screen = await log_in(pilot, app, "alice")
        for widget in (screen.buddy_list, screen.composer, screen.view):
            widget.focus()
            await pilot.pause()
            await pilot.press("ctrl+c")
            await wait_until(pilot, lambda: any("Ctrl+Q" in t for t in toasts(app)), "hint")
            app.clear_notifications()
        assert app.is_running
