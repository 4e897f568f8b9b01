"""Slash commands and Tab completion in the composer against a real relay (issue 15):
``/msg``, ``//``, ``/me``, unknown commands, ``/clear``, ``/away`` and ``/back``, ``/ignore``
and ``/unignore``, ``/help``, ``/quit``; ``/join``, ``/invite`` and ``/leave`` in rooms."""

from __future__ import annotations

from pathlib import Path

from textual.app import App

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, wait_until
from tests.tui.test_app_chat import make_buddies
from tests.tui.test_app_rooms import device_peer, room_rows
from tui.app import ParleyApp
from tui.client.rooms import RoomInvited
from tui.client.session import ClientSession
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.widgets.composer import Composer


def toasts(app: App[None]) -> list[str]:
    return [str(n.message) for n in app._notifications]


def texts(session: ClientSession, peer: int) -> list[str]:
    """What ``session`` has stored with ``peer``, oldest first."""
    return [entry.text for entry in reversed(session.store.page(peer, limit=100))]


async def type_in(pilot: object, screen: MainScreen, text: str) -> None:
    screen.composer.focus()
    await pilot.press(*text)  # type: ignore[attr-defined]


async def test_commands_in_a_one_to_one_chat(relay: RelayProcess, tmp_path: Path) -> None:
    bob = await device_peer(relay, tmp_path, "bob")
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await log_in(pilot, app, "alice")
            alice, bob_uid = screen.session.uid, bob.uid
            assert alice is not None and bob_uid is not None
            await make_buddies(screen, bob)
            await wait_until(pilot, lambda: "bob" in set(screen.commands.names()), "bob known")

            # No chat open: the composer still takes commands; a plain text is not sent.
            await type_in(pilot, screen, "hello")
            await pilot.press("enter")
            await wait_until(pilot, lambda: any("Open a chat" in t for t in toasts(app)), "why")
            assert screen.composer.text == "hello"
            screen.composer.clear()

            # Unknown command: said, not sent, the text stays.
            await pilot.press(*"/frob x", "enter")
            await wait_until(pilot, lambda: any("/frob" in t for t in toasts(app)), "unknown")
            assert screen.composer.text == "/frob x"
            screen.composer.clear()

            # Tab completes the command, then the buddy's name; /msg opens the chat and sends.
            await pilot.press(*"/ms", "tab")
            assert screen.composer.text == "/msg "
            await pilot.press(*"bo", "tab")
            assert screen.composer.text == "/msg bob"
            await pilot.press(*" hello there", "enter")
            await wait_until(pilot, lambda: "hello there" in texts(bob, alice), "at bob's")
            assert screen.chat.active == bob.uid and screen.composer.text == ""
            assert isinstance(app.focused, Composer)

            # // sends a literal slash; /me sends "* alice action".
            await pilot.press(*"//etc/hosts", "enter")
            await pilot.press(*"/me waves", "enter")
            await wait_until(pilot, lambda: "* alice waves" in texts(bob, alice), "the action")
            assert "/etc/hosts" in texts(bob, alice)

            # /clear empties the view, not the history.
            assert len(screen.view.timeline) > 0
            await pilot.press(*"/clear", "enter")
            await wait_until(pilot, lambda: len(screen.view.timeline) == 0, "an empty view")
            assert "hello there" in texts(screen.session, bob_uid)

            # /away: one auto-reply per buddy until /back.
            await pilot.press(*"/away at lunch", "enter")
            bob.send_text(alice, "are you there?")
            bob.send_text(alice, "hello?")
            await wait_until(pilot, lambda: "hello?" in texts(screen.session, bob_uid), "bob's")
            await wait_until(
                pilot, lambda: "[auto-reply] at lunch" in texts(bob, alice), "the auto-reply"
            )
            await pilot.pause()
            assert texts(screen.session, bob_uid).count("[auto-reply] at lunch") == 1
            await pilot.press(*"/back", "enter")
            assert screen.commands.away is None

            # /ignore blocks bob on the relay; /unignore unblocks.
            await pilot.press(*"/ignore bob", "enter")
            await wait_until(pilot, lambda: screen.session.is_blocked(bob_uid), "blocked")
            await pilot.press(*"/unignore bob", "enter")
            await wait_until(pilot, lambda: not screen.session.is_blocked(bob_uid), "unblocked")

            # Tab in an empty composer still moves the focus (Shift+Tab comes back).
            await pilot.press("tab")
            assert not isinstance(app.focused, Composer)
            await pilot.press("shift+tab")
            assert isinstance(app.focused, Composer)

            # /help shows the keys and the commands; /quit quits.
            await pilot.press(*"/help", "enter")
            await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
            await pilot.press("escape")
            await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "help closed")
            await pilot.press(*"/quit", "enter")
            await wait_until(pilot, lambda: not app.is_running, "quit")
    finally:
        await bob.close()


async def test_room_commands(relay: RelayProcess, tmp_path: Path) -> None:
    bob = await device_peer(relay, tmp_path, "bob")
    bob_events = bob.events()
    app = ParleyApp(app_config(tmp_path, relay))
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await log_in(pilot, app, "alice")
            await make_buddies(screen, bob)

            # bob invites alice to "ops": /join ops joins it and opens it.
            ops = (await bob.create_room("ops")).room
            assert ops is not None and screen.session.uid is not None
            assert (await bob.invite(ops.id, screen.session.uid)).ok
            await wait_until(pilot, lambda: room_rows(screen).get("ops") == (True, 0), "invited")
            await type_in(pilot, screen, "/jo")
            await pilot.press("tab", *"op", "tab")
            assert screen.composer.text == "/join ops"
            await pilot.press("enter")
            await wait_until(pilot, lambda: room_rows(screen).get("ops") == (False, 0), "joined")
            await wait_until(pilot, lambda: screen.chat.active == -ops.id, "ops open")

            # /leave leaves the open room.
            await pilot.press(*"/leave", "enter")
            await wait_until(pilot, lambda: "ops" not in room_rows(screen), "left")

            # /invite NAME in an open room (and refused without one).
            await pilot.press(*"/invite bob", "enter")
            await wait_until(pilot, lambda: any("Open a room" in t for t in toasts(app)), "why")
            dev = (await screen.session.create_room("dev")).room
            assert dev is not None
            screen.open_conversation(dev.peer)
            await pilot.press(*"/invite bob", "enter")
            while True:
                event = await bob_events.next(20)
                if isinstance(event, RoomInvited) and event.room.id == dev.id:
                    break
            assert bob.rooms.get(dev.id) is not None
    finally:
        await bob.close()
