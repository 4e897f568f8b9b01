"""A buddy removing you (issue 15: "the chat and its history vanish without notice"): a
notice says so, the open chat stays with its history, and Ctrl+O reopens it later; removing
a buddy yourself is no such news. Against a real relay, a real peer doing the removing."""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, screen_text, start_peer, wait_until
from tui.app import ParleyApp
from tui.client.session import ClientSession
from tui.dialogs.confirm import ChoiceDialog
from tui.dialogs.switch_conversation import SwitchConversationDialog
from tui.screens.main import MainScreen
from tui.state.roster import RowKind

REMOVED = "bob removed you from their buddies. Your chat history stays: Ctrl+O opens it."


def toasts(app: App[object]) -> list[str]:
    return [str(n.message) for n in app._notifications]


def buddy_names(screen: MainScreen) -> set[str]:
    return {row.name for row in screen.buddy_list.rows if row.kind is RowKind.BUDDY}


def conversation(screen: MainScreen) -> str:
    return "\n".join(line.plain for line in screen.view.timeline.lines)


async def befriend(screen: MainScreen, peer: ClientSession) -> None:
    await screen.session.add_buddy(peer.uid or 0)
    await peer.add_buddy(screen.session.uid or 0)


async def test_a_buddy_removing_you_keeps_the_chat_and_says_so(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await log_in(pilot, app, "alice")
        alice, bob_uid = screen.session.uid or 0, bob.uid or 0
        await befriend(screen, bob)
        await wait_until(pilot, lambda: "bob" in buddy_names(screen), "bob a buddy")
        screen.open_conversation(bob_uid)
        bob.send_text(alice, "hi alice")
        await pilot.press(*"hi bob", "enter")
        await wait_until(
            pilot, lambda: len(screen.view.timeline.entries) == 2, "both messages shown"
        )

        await bob.remove_buddy(alice)
        await wait_until(pilot, lambda: REMOVED in toasts(app), "the notice")
        await wait_until(pilot, lambda: "bob" not in buddy_names(screen), "off the list")
        assert screen.chat.active == bob_uid  # the chat stays open, with its history
        assert "hi alice" in conversation(screen) and "hi bob" in conversation(screen)

        # Closed, it is reachable again from Ctrl+O, marked as no buddy.
        screen.close_conversation()
        app.clear_notifications()
        screen.buddy_list.focus()
        await pilot.press("ctrl+o")
        await wait_until(pilot, lambda: isinstance(app.screen, SwitchConversationDialog), "o")
        await wait_until(pilot, lambda: "bob (not a buddy)" in screen_text(app), "listed")
        await pilot.press(*"bo", "enter")
        await wait_until(pilot, lambda: screen.chat.active == bob_uid, "reopened")
        assert "hi alice" in conversation(screen) and "hi bob" in conversation(screen)


async def test_removing_a_buddy_yourself_is_not_news(relay: RelayProcess, tmp_path: Path) -> None:
    carol = await start_peer(relay, tmp_path, "carol")
    try:
        app = ParleyApp(app_config(tmp_path, relay))
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await log_in(pilot, app, "alice")
            await befriend(screen, carol)
            await wait_until(pilot, lambda: "carol" in buddy_names(screen), "carol a buddy")
            screen.open_conversation(carol.uid or 0)
            screen.buddy_list.focus()
            screen.buddy_list.highlight_uid(carol.uid or 0)
            await pilot.press("delete")
            await wait_until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "confirm")
            await pilot.press("y")
            await wait_until(pilot, lambda: "carol" not in buddy_names(screen), "removed")
            await wait_until(pilot, lambda: screen.chat.active is None, "its chat closed")
            await wait_until(
                pilot, lambda: "carol removed from your buddies." in toasts(app), "own notice"
            )
            assert not any("removed you" in text for text in toasts(app))
    finally:
        await carol.close()
