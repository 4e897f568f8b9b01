"""The TUI against a real relay, with a library client as the other person.

Covers: adding a buddy from a user search and the peer accepting, answering incoming
requests, messages both ways, unread counts, typing hints both ways (shown, then gone),
delivered ticks, removing a buddy, and a failed send re-sent after the relay came back
(with the reconnect indicator in between).
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from protocol import chat_pb2 as pb
from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, screen_text, start_peer, wait_until
from tui.app import ParleyApp
from tui.client.events import ConnectionState, MessageReceived
from tui.client.history import MessageState
from tui.client.session import ClientSession
from tui.dialogs.confirm import ChoiceDialog
from tui.dialogs.user_search import UserSearchDialog
from tui.screens.main import MainScreen
from tui.state.roster import RowKind
from tui.widgets.status_bar import StatusBar


def rows(screen: MainScreen) -> dict[str, RowKind]:
    return {row.name: row.kind for row in screen.buddy_list.rows if row.kind is not RowKind.HEADER}


async def make_buddies(screen: MainScreen, peer: ClientSession) -> None:
    """Both sides add each other through the sessions (the UI path has its own test)."""
    assert screen.session.uid is not None and peer.uid is not None
    await screen.session.add_buddy(peer.uid)
    await peer.add_buddy(screen.session.uid)


async def test_add_buddy_chat_both_ways_typing_and_ticks(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    bob_events = bob.events()
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await log_in(pilot, app, "alice")
        alice_uid = screen.session.uid
        assert alice_uid is not None

        # Add bob from the user search (Ctrl+N), as a person would.
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, UserSearchDialog), "search")
        await pilot.press(*"bo")
        dialog = app.screen
        assert isinstance(dialog, UserSearchDialog)
        await wait_until(
            pilot, lambda: [u.username for u in dialog.users] == ["bob"], "search results"
        )
        await pilot.press("enter")  # the single match: bob is chosen
        await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.OUTGOING, "pending")
        await wait_until(pilot, lambda: "bob" in screen_text(app), "screen text")

        # Bob accepts: bob becomes a buddy, online.
        await bob.add_buddy(alice_uid)
        await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.BUDDY, "buddy")
        assert screen.chat.buddies[bob.uid or 0].online

        # Open the chat and send: sending… → ✓ → ✓✓ (bob is online and acknowledges).
        screen.buddy_list.focus()
        screen.buddy_list.highlight_uid(bob.uid or 0)
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.chat.active == bob.uid, "the chat with bob")
        assert app.focused is screen.composer
        await pilot.press(*"hello bob")
        await pilot.press("enter")
        await wait_until(
            pilot,
            lambda: [e.state for e in screen.view.timeline.entries] == [MessageState.DELIVERED],
            "the delivered tick",
        )
        await wait_until(pilot, lambda: "✓✓ alice: hello bob" in screen_text(app), "screen text")
        assert screen.composer.text == ""

        # While alice typed, bob got INPUTING hints (at most one per second).
        hints = []
        while not bob_events._queue.empty():
            event = await bob_events.next(1)
            if isinstance(event, MessageReceived) and event.entry.type == pb.Message.INPUTING:
                hints.append(event)
        assert 1 <= len(hints) <= 2

        # Bob answers: shown in the open conversation, no unread count.
        bob.send_text(alice_uid, "hi alice")
        await wait_until(pilot, lambda: "bob: hi alice" in screen_text(app), "bob's answer")
        assert screen.chat.unread.get(bob.uid or 0) == 0

        # Bob types: "bob is typing…" shows, then goes by itself.
        bob.send_typing(alice_uid)
        await wait_until(pilot, lambda: "bob is typing…" in screen_text(app), "typing marker")
        assert "typing…" in str(screen.buddy_list.get_option_at_index(1).prompt)
        await wait_until(pilot, lambda: "is typing" not in screen_text(app), "marker gone")


async def test_unread_counts_and_incoming_requests(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    carol = await start_peer(relay, tmp_path, "carol")
    dave = await start_peer(relay, tmp_path, "dave")
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await log_in(pilot, app, "alice")
            alice_uid = screen.session.uid or 0
            await make_buddies(screen, bob)
            # Carol and dave ask alice: two incoming requests.
            await carol.add_buddy(alice_uid)
            await dave.add_buddy(alice_uid)
            await wait_until(
                pilot,
                lambda: (
                    rows(screen).get("carol") is RowKind.INCOMING
                    and rows(screen).get("dave") is RowKind.INCOMING
                ),
                "two requests",
            )
            await wait_until(
                pilot, lambda: "wants to be buddies" in screen_text(app), "screen text"
            )
            # Accept carol with "a", decline dave with "d".
            screen.buddy_list.focus()
            screen.buddy_list.highlight_uid(carol.uid or 0)
            await pilot.press("a")
            await wait_until(pilot, lambda: rows(screen).get("carol") is RowKind.BUDDY, "carol")
            screen.buddy_list.highlight_uid(dave.uid or 0)
            await pilot.press("d")
            await wait_until(pilot, lambda: "dave" not in rows(screen), "dave declined")
            await wait_until(
                pilot,
                lambda: (
                    carol.buddies.get(alice_uid) is not None
                    and carol.buddies[alice_uid].relation == pb.User.BUDDY
                ),
                "carol sees alice as a buddy",
            )

            # Alice reads bob; carol writes twice: carol's row counts 2 unread.
            screen.open_conversation(bob.uid or 0)
            carol.send_text(alice_uid, "one")
            carol.send_text(alice_uid, "two")
            await wait_until(pilot, lambda: screen.chat.unread.get(carol.uid or 0) == 2, "unread")
            await wait_until(pilot, lambda: "carol (2)" in screen_text(app), "screen text")
            # Opening carol's chat clears it (also in the store, for the next start).
            screen.buddy_list.focus()
            screen.buddy_list.highlight_uid(carol.uid or 0)
            await pilot.press("enter")
            await wait_until(pilot, lambda: screen.chat.unread.get(carol.uid or 0) == 0, "read")
            await wait_until(pilot, lambda: "carol (2)" not in screen_text(app), "text gone")
            await wait_until(pilot, lambda: "carol: two" in screen_text(app), "screen text")
            convs = {c.peer: c.unread for c in screen.session.store.conversations()}
            assert convs[carol.uid or 0] == 0
    finally:
        await carol.close()
        await dave.close()


async def test_remove_buddy_asks_first(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await log_in(pilot, app, "alice")
        await make_buddies(screen, bob)
        await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.BUDDY, "buddy")
        screen.buddy_list.focus()
        screen.buddy_list.highlight_uid(bob.uid or 0)
        await pilot.press("delete")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "confirmation")
        await pilot.press("n")  # keep
        await pilot.pause()
        assert rows(screen).get("bob") is RowKind.BUDDY
        await pilot.press("delete")
        await wait_until(pilot, lambda: isinstance(app.screen, ChoiceDialog), "confirmation")
        await pilot.press("y")
        await wait_until(pilot, lambda: "bob" not in rows(screen), "bob removed")
        await wait_until(pilot, lambda: not bob.buddies, "removed on bob's side too")


async def test_failed_send_resent_after_the_relay_comes_back(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await log_in(pilot, app, "alice")
        await make_buddies(screen, bob)
        await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.BUDDY, "buddy")
        screen.open_conversation(bob.uid or 0)
        status = screen.query_one("#status", StatusBar)

        # The relay freezes: messages are sent but never acknowledged → failed (!).
        os.kill(relay.pid, signal.SIGSTOP)
        await pilot.press(*"are you there?", "enter", *"hello?", "enter")
        await wait_until(
            pilot,
            lambda: [e.state for e in screen.view.timeline.entries] == [MessageState.FAILED] * 2,
            "the failed marks",
        )
        await wait_until(
            pilot, lambda: "!  alice: are you there?" in screen_text(app), "screen text"
        )

        # It dies (the frozen copy never processed them); the app shows it retrying.
        relay.kill()
        await wait_until(
            pilot, lambda: status.state is ConnectionState.RECONNECTING, "reconnecting"
        )
        await wait_until(pilot, lambda: "reconnecting" in screen_text(app), "screen text")

        # It comes back: connected again. A click on the first "!" re-sends that message,
        # Ctrl+R the remaining one; bob gets each exactly once.
        await asyncio.get_running_loop().run_in_executor(None, relay.start)
        await wait_until(pilot, lambda: status.state is ConnectionState.CONNECTED, "connected")
        await wait_until(pilot, lambda: bob.state is ConnectionState.CONNECTED, "bob back")
        first, _ = screen.view.timeline.entries
        row = (screen.view.timeline.head_line(first.local_id or 0) or 0) - screen.view.scroll_y
        await pilot.click("#conversation", offset=(1 + 7, 1 + int(row)))

        def states() -> list[MessageState]:
            return [e.state for e in screen.view.timeline.entries]

        await wait_until(pilot, lambda: states()[0] is MessageState.DELIVERED, "first re-sent")
        assert states()[1] is MessageState.FAILED
        screen.composer.focus()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: states() == [MessageState.DELIVERED] * 2, "both")
        texts = [e.text for e in bob.store.page(screen.session.uid or 0)]
        assert texts == ["are you there?", "hello?"]


async def test_two_apps_chat_with_typing_and_ticks(relay: RelayProcess, tmp_path: Path) -> None:
    alice_app = ParleyApp(app_config(tmp_path, relay, "alice"))
    bob_app = ParleyApp(app_config(tmp_path, relay, "bob"))
    async with (
        alice_app.run_test(size=(100, 30)) as alice_pilot,
        bob_app.run_test(size=(80, 24)) as bob_pilot,
    ):
        alice = await log_in(alice_pilot, alice_app, "alice")
        bob = await log_in(bob_pilot, bob_app, "bob")
        await make_buddies(alice, bob.session)
        bob_uid, alice_uid = bob.session.uid or 0, alice.session.uid or 0
        await wait_until(alice_pilot, lambda: rows(alice).get("bob") is RowKind.BUDDY, "buddy")
        await wait_until(bob_pilot, lambda: rows(bob).get("alice") is RowKind.BUDDY, "buddy")
        alice.open_conversation(bob_uid)
        bob.open_conversation(alice_uid)

        # Alice types: bob's app shows "alice is typing…", which goes away by itself.
        await alice_pilot.press(*"hi bob")
        await wait_until(
            bob_pilot, lambda: "alice is typing…" in screen_text(bob_app), "typing on bob's side"
        )
        await alice_pilot.press("enter")
        await wait_until(bob_pilot, lambda: "alice: hi bob" in screen_text(bob_app), "message")
        await wait_until(bob_pilot, lambda: "is typing" not in screen_text(bob_app), "no marker")
        await wait_until(
            alice_pilot, lambda: "✓✓ alice: hi bob" in screen_text(alice_app), "delivered"
        )

        # And back, with a multi-line message (Ctrl+J adds a line).
        await bob_pilot.press(*"hello", "ctrl+j", *"alice", "enter")
        await wait_until(
            alice_pilot, lambda: "bob: hello" in screen_text(alice_app), "bob's message"
        )
        lines = screen_text(alice_app).splitlines()
        at = next(i for i, line in enumerate(lines) if "bob: hello" in line)
        assert lines[at + 1].strip(" │") == "alice"
        assert [e.text for e in alice.session.store.page(bob_uid)] == ["hi bob", "hello\nalice"]
