"""The buddy list against a real relay (issue 15): the cursor stays on a person whose
request is accepted (the row moves to "Buddies") and Enter then opens their chat; a
32-character name stays on one line at 80×24."""

from __future__ import annotations

from pathlib import Path

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, screen_text, start_peer, wait_until
from tests.tui.test_app_chat import rows
from tui.app import ParleyApp
from tui.client.session import ClientSession
from tui.state.roster import RowKind

LONG = "abcdefghijklmnopqrstuvwxyz_01234"  # 32 characters


async def test_cursor_stays_on_an_accepted_request_and_enter_opens_the_chat(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    long = await start_peer(relay, tmp_path, LONG)
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await log_in(pilot, app, "alice")
            alice_uid, bob_uid = screen.session.uid or 0, bob.uid or 0
            await screen.session.add_buddy(long.uid or 0)
            await long.add_buddy(alice_uid)
            await screen.session.add_buddy(bob_uid)  # waiting for bob's answer
            await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.OUTGOING, "sent")
            await wait_until(pilot, lambda: rows(screen).get(LONG) is RowKind.BUDDY, "buddy")
            buddies = screen.buddy_list
            buddies.focus()
            buddies.highlight_uid(bob_uid)
            await pilot.pause()

            await bob.add_buddy(alice_uid)  # bob accepts: his row moves up to "Buddies"
            await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.BUDDY, "accepted")
            row = buddies.highlighted_row
            assert row is not None and (row.uid, row.kind) == (bob_uid, RowKind.BUDDY)
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.chat.active == bob_uid, "bob's chat open")

            # The long name: one line, cut with "…", the next row intact below it.
            lines = screen_text(app).splitlines()
            at = next(i for i, line in enumerate(lines) if LONG[:12] in line)
            assert "…" in lines[at] and LONG not in lines[at]
            assert LONG[12:20] not in lines[at + 1]
    finally:
        await long.close()
