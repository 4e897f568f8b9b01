"""Keyboard-only use: pane navigation, the command palette, the switch dialog, help."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Tabs

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, screen_text, wait_until
from tests.tui.test_app_chat import make_buddies, rows
from tui.app import ParleyApp
from tui.client.session import ClientSession
from tui.dialogs.switch_conversation import SwitchConversationDialog
from tui.dialogs.user_search import UserSearchDialog
from tui.screens.help import HelpScreen
from tui.state.roster import RowKind
from tui.widgets.buddy_list import BuddyList
from tui.widgets.composer import Composer
from tui.widgets.conversation import ConversationView


async def test_keyboard_navigation_palette_and_help(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await log_in(pilot, app, "alice")
        await make_buddies(screen, bob)
        await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.BUDDY, "buddy")
        assert isinstance(app.focused, BuddyList)
        await wait_until(pilot, lambda: "Add buddy" in screen_text(app), "footer bindings")

        # Switch conversation from the command palette.
        await pilot.press("ctrl+p")
        await pilot.press(*"switch")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: isinstance(app.screen, SwitchConversationDialog), "switch dialog"
        )
        await pilot.press(*"bo", "enter")
        await wait_until(pilot, lambda: screen.chat.active == bob.uid, "bob's chat")
        assert isinstance(app.focused, Composer)

        # Tab / Shift+Tab and arrows move between the panes.
        await pilot.press("escape")
        assert isinstance(app.focused, BuddyList)
        await pilot.press("tab")
        assert isinstance(app.focused, Tabs)  # the workspace's tab strip: Chat / Board
        await pilot.press("tab")
        assert isinstance(app.focused, ConversationView)
        await pilot.press("tab")
        assert isinstance(app.focused, Composer)
        await pilot.press("shift+tab")
        assert isinstance(app.focused, ConversationView)
        await pilot.press("left")
        assert isinstance(app.focused, BuddyList)
        await pilot.press("right")
        assert isinstance(app.focused, Composer)

        # "Search users" from the palette opens the user search.
        await pilot.press("ctrl+p")
        await pilot.press(*"search u")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, UserSearchDialog), "search")
        await pilot.press("escape")
        await pilot.pause()

        # Help lists the bindings; Esc closes it.
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        table = app.screen.query_one(DataTable)
        await wait_until(pilot, lambda: "Re-send failed" in screen_text(app), "the table")
        await wait_until(pilot, lambda: "Ctrl+N" in screen_text(app), "help table")
        # Rows below the fold (an 80x24 terminal) are in the table, one scroll away.
        keys = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert "Ctrl+J / Alt+Enter" in keys and "Space" in keys  # composer, board
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.screen is screen, "help closed")
