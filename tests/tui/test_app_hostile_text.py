"""Hostile text reaches the TUI and is shown literally; the app survives it.

Messages come through the real relay from a library client, except the 1 MB text: the relay
refuses texts over 64 KiB (PROTOCOL.md section 7), so that one is stored and announced
locally exactly as the session does for a received message (``LocalStore.add_incoming`` then
a ``MessageReceived`` event). The hostile user name is injected the same way (the relay only
accepts letters, digits, ``_ - .`` in names, so it cannot come from there).
"""

from __future__ import annotations

import time
from pathlib import Path

from protocol import chat_pb2 as pb
from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, screen_text, wait_until
from tui.app import ParleyApp
from tui.client.events import Buddy, BuddyListChanged, MessageReceived
from tui.client.session import ClientSession
from tui.display import DISPLAY_LINES
from tui.messages import SessionEvent
from tui.screens.main import MainScreen

HOSTILE = [
    "[/]",
    "[@click=app.quit]click me[/]",
    '[link="x"]a link[/link]',
    "\x1b[31mred\x1b[0m \x1b]0;new title\x07 \x1b[2J\x9b6n end",
    "[b]not bold[/b] [$accent]x[/] $variable [red on blue]",
    "bidi \u202eesrever\u202c zero\u200bwidth",
]


def shown(screen: MainScreen) -> str:
    return "\n".join(line.plain for line in screen.view.timeline.lines)


async def test_hostile_messages_render_literally(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        screen = await log_in(pilot, app, "alice")
        alice = screen.session.uid or 0
        await screen.session.add_buddy(bob.uid or 0)
        await bob.add_buddy(alice)
        await wait_until(pilot, lambda: bob.uid in screen.chat.buddies, "bob as a buddy")

        # No conversation open: a message is also a toast (markup=False), shown literally;
        # the burst that follows is summed up in that same toast.
        click = "[@click=app.quit]click me[/]"
        bob.send_text(alice, click)
        await wait_until(pilot, lambda: click in screen_text(app), "the toast")
        for text in HOSTILE:
            if text != click:
                bob.send_text(alice, text)
        bob.send_text(alice, "x" * 65_000 + "[/]")  # as big as the relay allows
        bob.send_text(alice, "\n" * 30_000 + "last line")
        await wait_until(
            pilot, lambda: screen.chat.unread.get(bob.uid or 0) == len(HOSTILE) + 2, "unread"
        )
        assert app.is_running

        screen.open_conversation(bob.uid or 0)
        await pilot.pause()
        text = shown(screen)
        for literal in (
            "[/]",
            "[@click=app.quit]click me[/]",
            '[link="x"]a link[/link]',
            "[b]not bold[/b] [$accent]x[/] $variable [red on blue]",
        ):
            assert literal in text
        assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
        assert "[31mred[0m ]0;new title [2J6n end" in text
        assert "\u202e" not in text and "esrever" in text
        assert "… 61,003 more characters" in text
        assert "… 26,009 more characters" in text
        assert len(screen.view.timeline.lines) < len(HOSTILE) + 3 * DISPLAY_LINES

        # Clicking the would-be link does nothing but focus the view.
        screen.view.scroll_home(animate=False)  # the first messages, "click me" among them
        await pilot.pause()
        capture = screen_text(app)
        assert "click me" in capture
        await pilot.click("#conversation", offset=(20, 3))
        await pilot.pause()
        assert app.is_running and isinstance(app.screen, MainScreen)
        screen.view.scroll_end(animate=False)  # back to the newest (the view follows it)

        # 1 MB in one message (stored and announced locally, see the module docstring).
        huge = "y" * (1 << 20)
        message = pb.Message(
            uid=bob.uid or 0, type=pb.Message.MESSAGE, msg=huge, id=99, timestamp=int(time.time())
        )
        entry = screen.session.store.add_incoming(message)
        assert entry is not None
        screen.post_message(SessionEvent(MessageReceived(entry, backlog=False)))
        await wait_until(pilot, lambda: "1,044,576 more" in shown(screen), "the 1 MB message")
        app.clear_notifications()  # the toasts cover the bottom right of the view
        await pilot.pause()
        await wait_until(
            pilot, lambda: "… 1,044,576 more characters" in screen_text(app), "screen text"
        )
        assert screen.session.store.get(entry.local_id or 0).text == huge  # type: ignore[union-attr]


async def test_hostile_user_name_renders_literally(relay: RelayProcess, tmp_path: Path) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(100, 30), notifications=True) as pilot:
        screen = await log_in(pilot, app, "alice")
        evil = "[@click=app.quit]x[/]\x1b[2J"
        buddies = (
            Buddy(
                uid=4242,
                username=evil,
                online=True,
                relation=pb.User.REQUEST_RECEIVED,
                protocol_version=2,
            ),
        )
        screen.post_message(SessionEvent(BuddyListChanged(buddies)))
        await wait_until(pilot, lambda: 4242 in screen.chat.buddies, "the injected request")
        capture = screen_text(app)
        assert "[@click=app.quit]x[/]" in capture  # the roster row and the toast
        assert "\x1b" not in capture
        await pilot.click("#buddies", offset=(6, 2))
        await pilot.pause()
        assert app.is_running
