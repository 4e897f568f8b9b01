"""Unread counts and toasts against a real relay (issue 15).

- Messages that arrived while the app was offline are counted once (5, not 10).
- A message from the buddy whose Board or Files tab is open is announced: a toast and a
  count on the Chat tab, gone when the chat is shown again.
- A burst of messages gives one summary toast, not one toast per message.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import App
from textual.widgets import TabbedContent

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, screen_text, start_peer, wait_until
from tests.tui.test_app_chat import make_buddies, rows
from tui.app import ParleyApp
from tui.client.session import ClientSession
from tui.screens.main import MainScreen
from tui.state.roster import RowKind


def toasts(app: App[None]) -> list[tuple[str, str]]:
    return [(str(n.title), str(n.message)) for n in app._notifications]


def chat_tab_label(screen: MainScreen) -> str:
    return str(screen.query_one("#workspace", TabbedContent).get_tab("chat").label)


async def test_offline_messages_are_counted_once(relay: RelayProcess, tmp_path: Path) -> None:
    config = app_config(tmp_path, relay)
    bob = await start_peer(relay, tmp_path, "bob")
    try:
        app = ParleyApp(config)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await log_in(pilot, app, "alice")
            await make_buddies(screen, bob)
            await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.BUDDY, "buddy")
            alice_uid = screen.session.uid or 0
            await pilot.press("ctrl+q")

        # Alice is offline: bob writes five times, each stored by the relay.
        entries = [bob.send_text(alice_uid, f"message {n}") for n in range(5)]
        for entry in entries:
            await bob.wait_outcome(entry.msg_id, timeout=20)

        app = ParleyApp(config)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await log_in(pilot, app, "alice", register=False)
            bob_uid = bob.uid or 0
            await wait_until(
                pilot,
                lambda: any("5 new messages" in text for _, text in toasts(app)),
                "the summary toast",
            )
            await wait_until(pilot, lambda: "bob (5)" in screen_text(app), "bob (5)")
            assert screen.chat.unread.get(bob_uid) == 5
            assert "(10)" not in screen_text(app)
            # Opening the chat reads them all.
            screen.open_conversation(bob_uid)
            await wait_until(pilot, lambda: "message 4" in screen_text(app), "the messages")
            assert screen.chat.unread.get(bob_uid) == 0
    finally:
        await bob.close()


async def test_a_message_while_the_board_or_files_tab_is_open_is_announced(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await log_in(pilot, app, "alice")
        await make_buddies(screen, bob)
        await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.BUDDY, "buddy")
        alice_uid, bob_uid = screen.session.uid or 0, bob.uid or 0
        screen.open_conversation(bob_uid)
        assert chat_tab_label(screen) == "Chat"
        for pane, key in (("board", "f2"), ("files", "f3")):
            await pilot.press(key)
            await wait_until(
                pilot,
                lambda pane=pane: screen.query_one("#workspace", TabbedContent).active == pane,
                f"the {pane} tab",
            )
            app.clear_notifications()
            bob.send_text(alice_uid, f"look at the {pane}")
            await wait_until(
                pilot,
                lambda pane=pane: ("bob", f"look at the {pane}") in toasts(app),
                "a toast",
            )
            await wait_until(pilot, lambda: chat_tab_label(screen) == "Chat (1)", "badge")
            assert screen.chat.unread.get(bob_uid) == 1
            # Back to the chat: the message is there, the count goes.
            await pilot.press(key)
            await wait_until(pilot, lambda: chat_tab_label(screen) == "Chat", "badge gone")
            assert screen.chat.unread.get(bob_uid) == 0
            await wait_until(
                pilot, lambda pane=pane: f"bob: look at the {pane}" in screen_text(app), "line"
            )
            # ... with the "new messages" line before it (it came while the chat was behind).
            timeline = screen.view.timeline
            marked = [e.text for e in timeline.entries if e.local_id == timeline.marker]
            assert marked == [f"look at the {pane}"]
            await wait_until(pilot, lambda: "new messages" in screen_text(app), "the line")
        convs = {c.peer: c.unread for c in screen.session.store.conversations()}
        assert convs[bob_uid] == 0


async def test_a_burst_gives_one_summary_toast(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    carol = await start_peer(relay, tmp_path, "carol")
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await log_in(pilot, app, "alice")
            await make_buddies(screen, bob)
            await make_buddies(screen, carol)
            await wait_until(
                pilot,
                lambda: (
                    rows(screen).get("carol") is RowKind.BUDDY
                    and rows(screen).get("bob") is RowKind.BUDDY
                ),
                "buddies",
            )
            alice_uid, bob_uid = screen.session.uid or 0, bob.uid or 0
            await wait_until(pilot, lambda: screen.session.connected, "connected")
            app.clear_notifications()
            for n in range(150):
                bob.send_text(alice_uid, f"spam {n}")
            carol.send_text(alice_uid, "hello")
            await wait_until(
                pilot,
                lambda: (
                    screen.chat.unread.get(bob_uid) == 150
                    and screen.chat.unread.get(carol.uid or 0) == 1
                ),
                "all counted",
            )
            await pilot.pause()
            shown = [t for t in toasts(app) if "spam" in t[1] or "new messages" in t[1]]
            assert len(shown) == 1, shown
            title, text = shown[0]
            assert title == "New messages"
            assert "151 new messages" in text and "bob (150)" in text and "carol (1)" in text
    finally:
        await carol.close()
