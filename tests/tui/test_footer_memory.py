"""The key footer (tui/widgets/footer.py) is one widget that shows and does what Textual's
``Footer`` did: Textual's rebuilt a widget per key on every focus change, leaked them at
first (about 0.4 MiB per focus change) and cost 1.5–2 MiB of a client's RSS even without
the leak (bench/bench_tui_memory.py)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import Footer as TextualFooter
from textual.widgets import Input

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, wait_until
from tests.tui.pilot import screen_text
from tui.app import ParleyApp
from tui.dialogs.user_search import UserSearchDialog
from tui.screens.login import LoginScreen
from tui.widgets.footer import Footer

FOCUS_CHANGES = 40


def live_widgets() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Widget))


async def test_focus_changes_change_the_hints_not_the_widgets(
    relay: RelayProcess, tmp_path: Path
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, LoginScreen), "the login screen")
        footers = list(app.screen.query(TextualFooter))  # Textual's name: matches Parley's too
        assert footers and all(isinstance(footer, Footer) for footer in footers)
        assert " ^l Log in " in screen_text(app).splitlines()[-1]
        screen = await log_in(pilot, app, "alice")
        footer = screen.query_one(Footer)
        assert not footer.children
        hints = set()
        counts = []
        for change in range(FOCUS_CHANGES):
            screen.focus_next()
            await pilot.pause()
            hints.add(tuple(entry.description for entry in footer.entries))
            if change in (9, FOCUS_CHANGES - 1):
                counts.append(live_widgets())
        assert len(hints) > 1  # the hints follow the focus
        assert counts[0] == counts[1], f"widgets alive: {counts}"
        await app.action_quit()


async def test_a_click_on_a_key_runs_its_binding(relay: RelayProcess, tmp_path: Path) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await log_in(pilot, app, "alice")
        footer = screen.query_one(Footer)
        await wait_until(pilot, lambda: "Add buddy" in screen_text(app), "the footer's keys")
        x = screen_text(app).splitlines()[-1].index("^n Add buddy")
        await pilot.click(Footer, offset=(x + 1, 0))
        await wait_until(
            pilot, lambda: isinstance(app.screen, UserSearchDialog), "the add-buddy dialog"
        )
        assert footer.entries  # still there under the dialog
        await app.action_quit()


class KeysApp(App[None]):
    """Many keys, one of them shown but disabled, and the command palette's key."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f2", "first", "First action"),
        Binding("f3", "second", "Second thing"),
        Binding("f6", "off", "Disabled here"),
        Binding("f7", "third", "Third"),
        Binding("f8", "third", "Same action"),  # an action is shown once
        Binding("f9", "hidden", "Hidden", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[str] = []
        self.bells = 0

    def compose(self) -> ComposeResult:
        yield Input()
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if action == "off" else True

    def action_first(self) -> None:
        self.ran.append("first")

    def action_third(self) -> None:
        self.ran.append("third")

    def bell(self) -> None:
        self.bells += 1


async def test_keys_are_laid_out_cut_before_the_palette_and_clickable() -> None:
    app = KeysApp()
    async with app.run_test(size=(70, 5)) as pilot:
        await pilot.pause()
        line = screen_text(app).splitlines()[-1]
        assert line.startswith(" f2 First action  f3 Second thing  f6 Disabled here  f7 Th")
        assert line.endswith("▏^p palette ") and len(line) == 70
        assert "Hidden" not in line and "Same action" not in line
        footer = app.query_one(Footer)
        assert [e.key for e in footer.entries] == ["f2", "f3", "f6", "f7", "ctrl+p"]
        await pilot.click(Footer, offset=(line.index("f2") + 1, 0))
        await pilot.click(Footer, offset=(line.index("f6") + 1, 0))  # disabled: the bell
        await pilot.click(Footer, offset=(line.index("Th"), 0))  # the cut key still works
        await pilot.pause()
        assert app.ran == ["first", "third"]
        assert app.bells == 1
        await pilot.click(Footer, offset=(line.index("▏") + 2, 0))
        await wait_until(pilot, lambda: app.screen is not app.screen_stack[0], "the palette")
        await app.action_quit()
