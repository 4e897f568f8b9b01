"""The add-buddy dialog by keyboard (issue 15): Enter on a single match adds it (even when
typed faster than the search debounce), Down moves into the results at the first press."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import OptionList

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, start_peer, wait_until
from tests.tui.test_app_chat import rows
from tui.app import ParleyApp
from tui.client.session import ClientSession
from tui.dialogs.user_search import UserSearchDialog
from tui.screens.main import MainScreen
from tui.state.roster import RowKind


async def test_enter_on_a_single_match_adds_it(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await log_in(pilot, app, "alice")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, UserSearchDialog), "search")
        # Typed and submitted at once: Enter acts on the results of "bob", not on the
        # results listed before (every user) while the debounce was pending.
        await pilot.press(*"bob", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "dialog closed")
        await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.OUTGOING, "request")


async def test_down_moves_into_the_results_at_once(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    bea = await start_peer(relay, tmp_path, "bea")
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await log_in(pilot, app, "alice")
            await pilot.press("ctrl+n")
            await wait_until(pilot, lambda: isinstance(app.screen, UserSearchDialog), "search")
            dialog = app.screen
            assert isinstance(dialog, UserSearchDialog)
            await pilot.press(*"b")
            await wait_until(
                pilot,
                lambda: sorted(u.username for u in dialog.users) == ["bea", "bob"],
                "two matches",
            )
            results = dialog.query_one("#results", OptionList)
            await pilot.press("down")  # one press: in the results, on the first one
            assert app.focused is results and results.highlighted == 0
            at = [u.username for u in dialog.users].index("bob")
            await pilot.press(*["down"] * at, "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "dialog closed")
            await wait_until(
                pilot, lambda: rows(screen).get("bob") is RowKind.OUTGOING, "bob requested"
            )

            # Enter with several matches goes to the results (first one highlighted).
            await pilot.press("ctrl+n")
            await wait_until(pilot, lambda: isinstance(app.screen, UserSearchDialog), "search")
            dialog = app.screen
            assert isinstance(dialog, UserSearchDialog)
            await pilot.press("b", "enter")
            results = dialog.query_one("#results", OptionList)
            await wait_until(pilot, lambda: app.focused is results, "the results focused")
            assert results.highlighted == 0 and app.screen is dialog
    finally:
        await bea.close()
