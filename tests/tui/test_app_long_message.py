"""A message longer than the view shows (issue 15: "truncated with no way to read the
rest"): the cut message says how much more there is, and a click on it or Enter in the
conversation opens the whole text, literally, in a dialog. Against a real relay, at 80×24."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import TextArea

from protocol.validation import MAX_TEXT_BYTES
from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, screen_text, wait_until
from tui.app import ParleyApp
from tui.client.session import ClientSession
from tui.dialogs.full_message import FullMessageDialog
from tui.display import DISPLAY_CHARS
from tui.screens.main import MainScreen

LENGTH = 20_000
BODY = "[b]not bold[/b] " + "".join(f"word{i:05d} " for i in range(2_000))
TAIL = " [/] THE-END"  # markup at the end too: shown as typed
LONG = BODY[: LENGTH - len(TAIL)] + TAIL


def notice_row(app: ParleyApp) -> int:
    """The screen row of the first line of the "… N more characters" notice."""
    rows = screen_text(app).splitlines()
    return next(i for i, row in enumerate(rows) if "more characters: click" in row)


async def test_a_20000_character_message_reads_whole(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    assert len(LONG) == LENGTH and len(LONG.encode()) <= MAX_TEXT_BYTES
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await log_in(pilot, app, "alice")
        alice = screen.session.uid or 0
        await screen.session.add_buddy(bob.uid or 0)
        await bob.add_buddy(alice)
        await wait_until(pilot, lambda: bob.uid in screen.chat.buddies, "bob a buddy")
        bob.send_text(alice, LONG)
        bob.send_text(alice, "short one after it")
        await wait_until(pilot, lambda: screen.chat.unread.get(bob.uid or 0) == 2, "unread")
        screen.open_conversation(bob.uid or 0)
        app.clear_notifications()
        await pilot.pause()

        # The view shows the first 4,000 characters and says how to read the rest.
        hidden = f"{LENGTH - DISPLAY_CHARS:,}"
        await wait_until(
            pilot, lambda: f"… {hidden} more characters: click" in screen_text(app), "notice"
        )
        assert "THE-END" not in screen_text(app)

        # A click on the notice opens the whole text; the end is there; markup stays text.
        row = notice_row(app)
        await pilot.click(offset=(40, row))
        await wait_until(pilot, lambda: isinstance(app.screen, FullMessageDialog), "dialog")
        area = app.screen.query_one("#full-text", TextArea)
        assert area.text == LONG and area.read_only
        assert "bob" in screen_text(app) and f"{LENGTH:,} characters" in screen_text(app)
        assert "[b]not bold[/b]" in screen_text(app)
        await pilot.press("ctrl+end")
        await wait_until(pilot, lambda: "THE-END" in screen_text(app), "the end of the text")
        assert " [/] " in screen_text(app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "closed")

        # Enter in the conversation does the same (the lowest cut message on screen).
        screen.view.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, FullMessageDialog), "again")
        assert app.screen.query_one("#full-text", TextArea).text == LONG
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "closed again")
        assert app.is_running


async def test_a_short_message_opens_nothing(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(60, 20)) as pilot:
        screen = await log_in(pilot, app, "alice")
        alice = screen.session.uid or 0
        await screen.session.add_buddy(bob.uid or 0)
        await bob.add_buddy(alice)
        await wait_until(pilot, lambda: bob.uid in screen.chat.buddies, "bob a buddy")
        bob.send_text(alice, "x" * (DISPLAY_CHARS + 1))
        bob.send_text(alice, "short")
        await wait_until(pilot, lambda: screen.chat.unread.get(bob.uid or 0) == 2, "unread")
        screen.open_conversation(bob.uid or 0)
        app.clear_notifications()
        # At 60 columns the notice wraps rather than being cut off.
        await wait_until(pilot, lambda: "… 1 more characters: click" in screen_text(app), "n")
        assert "to read all" in screen_text(app)
        rows = screen_text(app).splitlines()
        short = next(i for i, row in enumerate(rows) if "bob: short" in row)
        await pilot.click(offset=(30, short))  # the short message: nothing opens
        await pilot.click(offset=(30, notice_row(app)))  # the cut one: its dialog
        await wait_until(pilot, lambda: isinstance(app.screen, FullMessageDialog), "dialog")
        assert app.screen_stack[-2] is screen  # one dialog, not two
