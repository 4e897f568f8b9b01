"""Terminals that are not UTF-8 truecolor ones (issue 15): detection from the locale and
the environment, the ASCII mode over every main screen (a real relay, a real peer), and the
16-colour palette (focus and your own name must not be red)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.color import Color as RichColor
from rich.color import ColorSystem
from textual.color import Color
from textual.widgets import TabbedContent

from tests.harness import RelayProcess
from tests.tui.conftest import app_config, log_in, screen_text, wait_until
from tests.tui.test_app_chat import make_buddies, rows
from tui.app import ParleyApp
from tui.client.session import ClientSession
from tui.dialogs.user_search import UserSearchDialog
from tui.screens.help import HelpScreen
from tui.state.roster import RowKind
from tui.terminal import ANSI_THEME, TRUECOLOR, TerminalProfile, ascii_for, to_ascii

RED = {1, 9}  # ANSI red and bright red


@pytest.mark.parametrize(
    ("environ", "encoding", "ascii_only"),
    [
        ({"LANG": "en_US.UTF-8"}, "utf-8", False),
        ({"LANG": "en_US.ISO-8859-1"}, "iso8859-1", True),
        ({"LANG": "en_US.ISO-8859-1"}, "utf-8", True),  # the terminal follows LANG
        ({"LC_ALL": "C", "LANG": "en_US.UTF-8"}, "utf-8", True),  # Python's UTF-8 mode
        ({"LC_ALL": "POSIX"}, "utf-8", True),
        ({"LC_CTYPE": "de_DE.utf8"}, "utf-8", False),
        ({"LC_ALL": "C.UTF-8"}, "utf-8", False),
        ({}, "utf-8", False),
        ({}, "ascii", True),
        ({"LANG": "en_US"}, "iso8859-1", True),
        ({"LC_ALL": "C", "PARLEY_ASCII": "0"}, "utf-8", False),
        ({"LANG": "en_US.UTF-8", "PARLEY_ASCII": "1"}, "utf-8", True),
    ],
)
def test_ascii_detection(environ: dict[str, str], encoding: str, ascii_only: bool) -> None:
    assert TerminalProfile.detect(environ, encoding).ascii_only is ascii_only


@pytest.mark.parametrize(
    ("environ", "colors"),
    [
        ({"TERM": "screen"}, 16),
        ({"TERM": "linux"}, 16),
        ({"TERM": "xterm"}, 16),
        ({"TERM": "screen-256color"}, 256),
        ({"TERM": "xterm-kitty"}, 256),
        ({"TERM": "screen", "COLORTERM": "truecolor"}, TRUECOLOR),
        ({"TERM": "xterm-256color", "PARLEY_COLORS": "16"}, 16),
        ({"TERM": "linux", "TEXTUAL_COLOR_SYSTEM": "truecolor"}, TRUECOLOR),
    ],
)
def test_colour_detection(environ: dict[str, str], colors: int) -> None:
    profile = TerminalProfile.detect(environ, "utf-8")
    assert profile.colors == colors
    assert (profile.theme is ANSI_THEME) is (colors == 16)


def test_ascii_keeps_cell_widths() -> None:
    assert to_ascii("╭─ Buddies ─╮") == "+- Buddies -+"
    assert to_ascii("✓✓ ● ○ … █ ▐X▌ │ ╱╲") == "vv * o . @ [X] | /\\"
    assert to_ascii("héllo") == "hello"
    assert ascii_for("日") == "??" and ascii_for("\u0301") == ""  # wide: 2 cells; combining
    sample = "".join(chr(c) for c in range(0xA0, 0x3000) if chr(c).isprintable())
    assert to_ascii(sample).isascii()


async def test_ascii_mode_draws_no_other_character(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    app = ParleyApp(app_config(tmp_path, relay), terminal=TerminalProfile(ascii_only=True))
    width, height = 80, 24

    def check(where: str) -> None:
        lines = screen_text(app).splitlines()
        bad = [line for line in lines if not line.isascii()]
        assert not bad, (where, bad)
        assert all(len(line) == width for line in lines), where  # widths kept

    async with app.run_test(size=(width, height), notifications=True) as pilot:
        check("login")
        screen = await log_in(pilot, app, "alice")
        await make_buddies(screen, bob)
        await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.BUDDY, "buddy")
        alice_uid = screen.session.uid or 0
        # A message from bob (non-ASCII text, a toast) and one to bob (the ticks).
        bob.send_text(alice_uid, "héllo ✓ 日本 ╭─╮")
        await wait_until(pilot, lambda: "hello v ???? +-+" in screen_text(app), "the toast")
        check("main screen with a toast")
        screen.open_conversation(bob.uid or 0)
        await pilot.press(*"hi", "enter")
        await wait_until(pilot, lambda: "vv alice: hi" in screen_text(app), "delivered ticks")
        check("conversation")
        await pilot.press("f2")  # the board: draw a few cells with a line brush
        await wait_until(
            pilot, lambda: screen.query_one("#workspace", TabbedContent).active == "board", "board"
        )
        await pilot.press("l", "space", "right", "right", "down", "space")
        await pilot.pause()
        check("board")
        await pilot.press("f3")
        await wait_until(pilot, lambda: "File transfers" in screen_text(app), "files")
        check("files")
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        check("help")
        await pilot.press("escape")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, UserSearchDialog), "search")
        await wait_until(pilot, lambda: "(you)" in screen_text(app), "search results")
        check("user search")


def is_red(color: Color) -> bool:
    """Would the terminal show ``color`` as red or bright red with 16 colours?"""
    if color.ansi is not None:
        return color.ansi in RED
    number = RichColor.from_rgb(color.r, color.g, color.b).downgrade(ColorSystem.STANDARD).number
    return number in RED


async def test_sixteen_colours_use_a_palette_without_red_focus_or_own_name(
    relay: RelayProcess, tmp_path: Path, bob: ClientSession
) -> None:
    # The problem: with 16 colours Textual's default accent (focus, own name) is red.
    default = ParleyApp(app_config(tmp_path, relay, "default"), terminal=TerminalProfile())
    async with default.run_test(size=(80, 24)):
        assert is_red(Color.parse(default.get_css_variables()["accent"]))

    app = ParleyApp(app_config(tmp_path, relay), terminal=TerminalProfile(colors=16))
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.theme == ANSI_THEME.name
        variables = app.get_css_variables()
        for name in ("accent", "text-accent", "primary", "border", "block-cursor-background"):
            assert not is_red(Color.parse(variables[name])), name
        # Pane borders stay visible (ansi-dark's panel colours are transparent).
        assert Color.parse(variables["panel-lighten-2"]).a > 0
        screen = await log_in(pilot, app, "alice")
        await make_buddies(screen, bob)
        await wait_until(pilot, lambda: rows(screen).get("bob") is RowKind.BUDDY, "buddy")
        screen.open_conversation(bob.uid or 0)
        await pilot.press(*"hi", "enter")
        await pilot.pause()
        own = screen.view.get_component_styles("conversation-view--own").color
        assert not is_red(own)
        for widget in (screen.buddy_list, screen.composer, screen.view):
            widget.focus()
            await pilot.pause()
            assert app.focused is widget
            assert not is_red(widget.styles.border_top[1]), widget
