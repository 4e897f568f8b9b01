"""Alt+Enter as terminals really send it (tui/terminal_keys.py): the bytes through the
parser the app's driver uses, then the keys it makes into a composer against a real relay.

Textual's own parser reads ``ESC CR`` (Alt+Enter in tmux, screen and xterm) as a plain
Enter, and xterm's modifyOtherKeys form as a key named ``"\\r"``; both are asserted here too,
so a Textual that fixes them shows up as a failing expectation to revisit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events
from textual._xterm_parser import XTermParser
from textual.drivers import linux_driver

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, wait_until
from tui.app import ParleyApp
from tui.client.session import ClientSession
from tui.terminal_keys import ParleyXTermParser

ESC_CR = b"\x1b\r"  # Alt+Enter: tmux, screen, xterm (metaSendsEscape), most terminals
ESC_LF = b"\x1b\n"
KITTY_ALT_ENTER = b"\x1b[13;3u"  # the kitty keyboard protocol (Textual turns it on)
XTERM_ALT_ENTER = b"\x1b[27;3;13~"  # xterm modifyOtherKeys / tmux extended-keys


def keys(data: bytes, parser: XTermParser | None = None) -> list[str]:
    """The key names ``parser`` reads from ``data`` typed in one go (input ends there, as
    when the ESC delay has passed)."""
    reader = parser if parser is not None else ParleyXTermParser()
    tokens = [*reader.feed(data.decode()), *reader.feed("")]
    return [token.key for token in tokens if isinstance(token, events.Key)]


def test_textual_alone_reads_alt_enter_as_enter() -> None:
    assert keys(ESC_CR, XTermParser()) == ["enter"]  # the bug: the composer sends
    assert keys(XTERM_ALT_ENTER, XTermParser()) == ["\r"]


@pytest.mark.parametrize("data", [ESC_CR, KITTY_ALT_ENTER, XTERM_ALT_ENTER])
def test_every_form_of_alt_enter_is_alt_enter(data: bytes) -> None:
    assert keys(data) == ["alt+enter"]


def test_other_keys_read_as_textual_reads_them() -> None:
    for data in (b"\r", b"\n", ESC_LF, b"\x1bx", b"\x1b", b"a\rb", b"\x1b[13;2u", b"\x1b[A"):
        assert keys(data) == keys(data, XTermParser()), data
    assert keys(b"\x1b[27;2;13~") == ["shift+enter"]
    assert keys(b"\r") == ["enter"]


def test_the_app_makes_the_linux_driver_use_the_parser(tmp_path: Path) -> None:
    ParleyApp()
    assert linux_driver.XTermParser is ParleyXTermParser


@pytest.mark.parametrize("data", [ESC_CR, XTERM_ALT_ENTER])
async def test_alt_enter_from_tmux_starts_a_new_line_in_the_composer(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession, data: bytes
) -> None:
    app = ParleyApp(app_config(tmp_path, relay))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await log_in(pilot, app, "alice")
        assert screen.session.uid is not None and bob.uid is not None
        await screen.session.add_buddy(bob.uid)
        await bob.add_buddy(screen.session.uid)
        await wait_until(pilot, lambda: bob.uid in screen.chat.buddies, "bob a buddy")
        screen.open_conversation(bob.uid)
        await pilot.pause()
        assert app.focused is screen.composer

        await pilot.press(*"first")
        await pilot.press(*keys(data))  # what the terminal's bytes become
        assert screen.composer.text == "first\n"
        await pilot.press(*"second", "enter")
        # One message with both lines: Alt+Enter did not send "first" on its own.
        await wait_until(
            pilot,
            lambda: [e.text for e in bob.store.page(screen.session.uid or 0)] == ["first\nsecond"],
            "bob has the two-line message",
        )
        assert [e.text for e in screen.view.timeline.entries] == ["first\nsecond"]
