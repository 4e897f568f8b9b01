"""Attention and presence against a real relay at 80×24 (issue 15, items 3 and 4).

- Alt+1…9 open the numbered chat from the composer (the bytes a terminal sends, through
  the app's key parser), with the composer focused and nothing typed into it.
- The bell (once per burst) and the window title (OSC 2) for a message in a chat not looked
  at and for a room mention; nothing for the open chat; a muted chat counts but is silent.
- Presence is unknown (◌) while the relay is down and real again after the relogin; when a
  buddy leaves, the chat title, the tooltip and the member pane say when they were last seen.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from textual import events
from textual.app import App

import tui.screens.attention as attention_screen
from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, screen_text, start_peer, wait_until
from tests.tui.test_app_chat import make_buddies, rows
from tests.tui.test_app_rooms import device_peer
from tui.app import ParleyApp
from tui.client.events import ConnectionState
from tui.client.rooms import RoomInvited
from tui.state.attention import BellThrottle
from tui.state.presence import seen_text
from tui.state.roster import RowKind
from tui.terminal_keys import ParleyXTermParser
from tui.widgets.member_pane import MemberPane
from tui.widgets.status_bar import StatusBar

SIZE = (80, 24)


def type_bytes(app: App[None], data: str) -> None:
    """What a terminal sends, read by the app's key parser and delivered like real keys."""
    driver = app._driver
    assert driver is not None
    for event in ParleyXTermParser().feed(data):
        event.set_sender(app)
        driver.send_message(event)


def toasts(app: App[None]) -> list[str]:
    return [str(n.message) for n in app._notifications]


class Terminal:
    """Captures the bell and the escape sequences written to the terminal."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, app: App[None]) -> None:
        self.bells = 0
        self.written: list[str] = []
        monkeypatch.setattr(app, "bell", self._bell)
        monkeypatch.setattr(
            attention_screen, "write_to_terminal", lambda app, data: self.written.append(data)
        )

    def _bell(self) -> None:
        self.bells += 1

    @property
    def titles(self) -> list[str]:
        return [w[4:-1] for w in self.written if w.startswith("\x1b]2;") and w.endswith("\x07")]


async def test_alt_number_opens_that_chat_from_the_composer(
    relay: RelayProcess, tmp_path: Path
) -> None:
    peers = [await start_peer(relay, tmp_path, name) for name in ("bob", "carol", "dave")]
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await log_in(pilot, app, "alice")
            for peer in peers:
                await make_buddies(screen, peer)
            names = ["bob", "carol", "dave"]
            await wait_until(
                pilot, lambda: all(rows(screen).get(n) is RowKind.BUDDY for n in names), "buddies"
            )
            await wait_until(
                pilot,
                lambda: all(f"{n} ● {name}" in screen_text(app) for n, name in enumerate(names, 1)),
                "the numbered rows",
            )
            bob, _, dave = peers
            screen.open_conversation(bob.uid or 0)
            await pilot.press(*"draft")
            assert screen.composer.has_focus

            type_bytes(app, "\x1b3")  # Alt+3 as xterm, tmux and screen send it
            await wait_until(pilot, lambda: screen.chat.active == dave.uid, "dave's chat")
            await wait_until(pilot, lambda: "Chat with dave" in screen_text(app), "its title")
            assert screen.composer.has_focus
            assert screen.composer.text == "draft"  # no "3" and no "£" typed into it

            type_bytes(app, "\x1b1")
            await wait_until(pilot, lambda: screen.chat.active == bob.uid, "bob's chat again")
            type_bytes(app, "\x1b9")  # there is no chat 9
            await wait_until(pilot, lambda: any("No chat 9" in t for t in toasts(app)), "why")
            assert screen.chat.active == bob.uid
    finally:
        for peer in peers:
            await peer.close()


async def test_bell_and_title_for_chats_not_looked_at_and_a_muted_chat_is_silent(
    relay: RelayProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = await start_peer(relay, tmp_path, "bob")
    carol = await start_peer(relay, tmp_path, "carol")
    app = ParleyApp(app_config(tmp_path, relay))
    terminal = Terminal(monkeypatch, app)
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await log_in(pilot, app, "alice")
            await make_buddies(screen, bob)
            await make_buddies(screen, carol)
            await wait_until(
                pilot, lambda: rows(screen).get("carol") is RowKind.BUDDY, "carol a buddy"
            )
            alice_uid, carol_uid = screen.session.uid or 0, carol.uid or 0
            screen.open_conversation(bob.uid or 0)
            await wait_until(pilot, lambda: terminal.titles[-1:] == ["Parley"], "the title")
            assert terminal.bells == 0

            # Carol writes three times while alice looks at bob's chat: one bell, the title
            # counts them, the status bar sums them up.
            for n in range(3):
                carol.send_text(alice_uid, f"ping {n}")
            await wait_until(pilot, lambda: screen.chat.unread.get(carol_uid) == 3, "3 unread")
            await wait_until(pilot, lambda: terminal.titles[-1] == "Parley (3)", "title (3)")
            assert terminal.bells == 1
            status = screen.query_one("#status", StatusBar)
            await wait_until(pilot, lambda: "3 unread" in screen_text(app), "the status bar")
            assert status.unread == 3

            # Bob writes in the chat alice looks at: no bell (a new burst would ring).
            screen.bell_throttle = BellThrottle()
            await bob.wait_outcome(bob.send_text(alice_uid, "in view").msg_id, timeout=20)
            await wait_until(pilot, lambda: "in view" in screen_text(app), "bob's message")
            assert terminal.bells == 1
            # ... unless the terminal said it went to the background (focus reports).
            app.post_message(events.AppBlur())
            await wait_until(pilot, lambda: not app.app_focus, "the terminal behind")
            await bob.wait_outcome(bob.send_text(alice_uid, "behind").msg_id, timeout=20)
            await wait_until(pilot, lambda: terminal.bells == 2, "a bell")
            app.post_message(events.AppFocus())
            await wait_until(pilot, lambda: app.app_focus, "the terminal in front")

            # Muted from the buddy list (m on carol's row): carol's unread still counts, but
            # no bell, no toast, and the title leaves her out.
            screen.buddy_list.focus()
            screen.buddy_list.highlight_uid(carol_uid)
            await pilot.press("m")
            await wait_until(pilot, lambda: screen.muted(carol_uid), "carol muted")
            await wait_until(pilot, lambda: terminal.titles[-1] == "Parley", "title without her")
            shown = len(toasts(app))
            screen.bell_throttle = BellThrottle()
            carol.send_text(alice_uid, "muted ping")
            await wait_until(pilot, lambda: screen.chat.unread.get(carol_uid) == 4, "4 unread")
            await wait_until(pilot, lambda: "4 unread" in screen_text(app), "still counted")
            assert terminal.bells == 2
            assert not any("muted ping" in t for t in toasts(app)[shown:])
            assert terminal.titles[-1] == "Parley"

            # /unmute in carol's chat; reading it leaves nothing unread.
            screen.open_conversation(carol_uid)
            await pilot.press(*"/unmute", "enter")
            await wait_until(pilot, lambda: not screen.muted(carol_uid), "carol unmuted")
            await wait_until(pilot, lambda: "unread" not in screen_text(app), "all read")
            assert terminal.titles[-1] == "Parley"
            assert screen.muted(carol_uid) is False
    finally:
        await bob.close()
        await carol.close()


async def test_a_room_mention_rings_and_the_mute_survives_a_restart(
    relay: RelayProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = await device_peer(relay, tmp_path, "bob")
    bob_events = bob.events()
    config = app_config(tmp_path, relay)
    app = ParleyApp(config)
    terminal = Terminal(monkeypatch, app)
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await log_in(pilot, app, "alice")
            await make_buddies(screen, bob)
            created = await screen.session.create_room("ops")
            assert created.room is not None
            room = created.room.id
            assert (await screen.session.invite(room, bob.uid or 0)).ok
            while not isinstance(await bob_events.next(20), RoomInvited):
                pass
            assert (await bob.join(room)).ok
            await wait_until(pilot, lambda: "2 # ops" in screen_text(app), "room number 2")
            screen.open_conversation(bob.uid or 0)  # not the room

            # A room message without a mention: counted, no bell.
            await bob.wait_outcome(bob.send_room_text(room, "hello").msg_id, timeout=20)
            await wait_until(pilot, lambda: screen.chat.unread.get(-room) == 1, "unread")
            assert terminal.bells == 0
            # A mention: the bell, and the status bar counts it.
            bob.send_room_text(room, "@alice can you look?")
            await wait_until(pilot, lambda: screen.mentions.get(-room) == 1, "the mention")
            assert terminal.bells == 1
            await wait_until(pilot, lambda: "2 unread, 1 mention" in screen_text(app), "totals")

            # Mute the room (m on its row), then quit.
            screen.room_list.focus()
            screen.room_list.highlighted = 0
            await pilot.press("m")
            await wait_until(pilot, lambda: screen.muted(-room), "room muted")
            await pilot.press("ctrl+q")

        app = ParleyApp(config)
        terminal = Terminal(monkeypatch, app)
        async with app.run_test(size=SIZE) as pilot:
            screen = await log_in(pilot, app, "alice", register=False)
            assert screen.muted(-room)  # kept in the account's store
            await wait_until(pilot, lambda: "2 # ops" in screen_text(app), "the room")
            bob.send_room_text(room, "@alice again")
            await wait_until(pilot, lambda: screen.mentions.get(-room) == 1, "the mention")
            assert terminal.bells == 0
            assert not any("mentioned you" in t for t in toasts(app))
    finally:
        await bob.close()


async def test_presence_unknown_while_the_relay_is_down_and_last_seen(
    relay: RelayProcess, tmp_path: Path
) -> None:
    bob = await device_peer(relay, tmp_path, "bob")
    bob_events = bob.events()
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=SIZE) as pilot:
            screen = await log_in(pilot, app, "alice")
            await make_buddies(screen, bob)
            bob_uid = bob.uid or 0
            await wait_until(pilot, lambda: "1 ● bob" in screen_text(app), "bob online")
            status = screen.query_one("#status", StatusBar)

            # The relay dies: nobody is shown online while alice is not logged in.
            relay.kill()
            await wait_until(
                pilot, lambda: status.state is not ConnectionState.CONNECTED, "disconnected"
            )
            await wait_until(pilot, lambda: "1 ◌ bob" in screen_text(app), "presence unknown")
            assert "presence unknown" in str(screen.buddy_list.tooltip)
            await pilot.press("ctrl+o")  # the switch dialog does not claim bob is online
            await wait_until(
                pilot, lambda: "Switch conversation" in screen_text(app), "the Ctrl+O dialog"
            )
            assert "● bob" not in screen_text(app)
            await pilot.press("escape")

            # It comes back: the buddy list of the new login shows the real state.
            await asyncio.get_running_loop().run_in_executor(None, relay.start)
            await wait_until(pilot, lambda: status.state is ConnectionState.CONNECTED, "back")
            await wait_until(pilot, lambda: bob.state is ConnectionState.CONNECTED, "bob back")
            await wait_until(pilot, lambda: "1 ● bob" in screen_text(app), "bob online again")

            # A room with bob, its member pane open.
            created = await screen.session.create_room("ops")
            assert created.room is not None
            room = created.room.id
            assert (await screen.session.invite(room, bob_uid)).ok
            while not isinstance(await bob_events.next(20), RoomInvited):
                pass
            assert (await bob.join(room)).ok
            screen.members_refresh = 0.2
            screen.open_conversation(-room)
            await pilot.press("f4")
            pane = screen.query_one("#members", MemberPane)
            await wait_until(pilot, lambda: "● bob" in str(pane.content), "bob in the room")

            # Bob leaves: the member pane, bob's chat title and his tooltip say when he was
            # last seen.
            await bob.close()
            await wait_until(pilot, lambda: "1 ○ bob" in screen_text(app), "bob offline")
            seen = screen.presence.last_seen(bob_uid)
            assert seen is not None
            when = seen_text(seen, time.time())
            assert when.startswith("last seen ")
            short = when.removeprefix("last seen ")
            await wait_until(pilot, lambda: f"○ bob · {short}" in str(pane.content), "pane")
            screen.open_conversation(bob_uid)
            await wait_until(
                pilot, lambda: f"Chat with bob · {when}" in screen_text(app), "the chat title"
            )
            screen.buddy_list.highlight_uid(bob_uid)
            await wait_until(pilot, lambda: when in str(screen.buddy_list.tooltip), "tooltip")
    finally:
        await bob.close()
