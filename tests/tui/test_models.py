"""The TUI's pure models, without Textual: wrapping, display text, timers, roster, settings."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len

from protocol import chat_pb2 as pb
from tui.client.events import Buddy
from tui.client.history import MessageState
from tui.display import (
    DISPLAY_CHARS,
    day_separator,
    display_text,
    format_day,
    preview,
    safe_name,
    state_mark,
    wrap_cells,
)
from tui.keymap import format_keys, key_rows, markdown_table
from tui.settings import (
    RememberedServer,
    load_remembered,
    parse_server,
    save_remembered,
)
from tui.state.roster import RowKind, UnreadCounts, build_roster, chat_unread
from tui.state.typing import TYPING_SEND_INTERVAL, TYPING_VISIBLE_FOR, TypingThrottle, TypingTracker


def test_wrap_respects_widths_and_keeps_words() -> None:
    assert wrap_cells("hello world this is a test", 10) == ["hello", "world this", "is a test"]
    assert wrap_cells("a" * 25, 10, 4) == ["aaaa", "aaaaaaaaaa", "aaaaaaaaaa", "a"]
    # A narrow first line (long name) moves a word that fits a full line to the next one.
    assert wrap_cells("hello world", 10, 3) == ["", "hello", "world"]
    assert wrap_cells("x  \n\nyy zz", 3) == ["x", "", "yy", "zz"]
    assert wrap_cells("", 5) == [""]
    assert wrap_cells("字字字字字", 3) == ["字", "字", "字", "字", "字"]  # double width


@given(st.text(max_size=300), st.integers(1, 40), st.integers(0, 40))
def test_wrap_never_overflows_and_loses_only_spaces(text: str, width: int, first: int) -> None:
    lines = wrap_cells(text, width, first)
    assert cell_len(lines[0]) <= max(first, 0) or len(lines[0]) == 1
    for line in lines[1:]:
        assert cell_len(line) <= width or len(line) == 1  # one wide char in a 1-cell line
    squeeze = "".join(text.split())
    assert "".join("".join(lines).split()) == squeeze


def test_display_text_is_clean_and_bounded() -> None:
    shown = display_text("\x1b[31mred\x1b[0m\ttab\u202e")
    assert shown.text == "[31mred[0m    tab" and shown.notice is None
    big = display_text("é" * 600_000)
    assert len(big.text) == DISPLAY_CHARS
    assert big.notice == "… 596,000 more characters: click (or Enter) to read all"


def test_names_and_previews() -> None:
    assert safe_name("bob\x1b[2J") == "bob[2J"
    assert safe_name("", 7) == "#7"
    assert safe_name("x" * 500) == "x" * 40
    assert preview("first line\nsecond") == "first line…"
    assert preview("short") == "short"
    assert len(preview("y" * 10_000)) == 80


def test_day_labels_and_separator() -> None:
    today = datetime.date(2024, 6, 4)
    assert format_day(today, today) == "Today"
    assert format_day(datetime.date(2024, 6, 3), today) == "Yesterday"
    assert format_day(datetime.date(2024, 5, 1), today) == "Wed 1 May 2024"
    line = day_separator("Today", 21)
    assert line == "─────── Today ───────" and cell_len(line) == 21
    assert cell_len(day_separator("A very long label", 5)) <= 5


def test_state_glyphs() -> None:
    assert [state_mark(s).glyph for s in MessageState] == ["…", "✓", "✓✓", "!", ""]
    assert all(cell_len(state_mark(s).glyph) <= 2 for s in MessageState)


def test_unread_counts() -> None:
    unread = UnreadCounts([(1, 2), (2, 0)])
    assert unread.get(1) == 2 and unread.get(2) == 0 and unread.total == 2
    assert unread.bump(2) == 1 and unread.total == 3
    assert unread.clear(1) and not unread.clear(1)
    assert unread.total == 1


def test_typing_tracker_shows_for_a_while_after_each_hint() -> None:
    typing = TypingTracker()
    assert typing.hint(5, now=100.0)  # appeared
    assert not typing.hint(5, now=100.5)  # still shown, extended
    assert typing.is_typing(5, 100.5 + TYPING_VISIBLE_FOR - 0.01)
    assert typing.next_expiry() == 100.5 + TYPING_VISIBLE_FOR
    assert typing.expire(100.5 + TYPING_VISIBLE_FOR) == [5]
    assert not typing.is_typing(5, 100.5 + TYPING_VISIBLE_FOR)
    typing.hint(6, now=0.0)
    assert typing.stop(6) and not typing.stop(6)  # a message arrived: gone at once
    assert 0.9 <= TYPING_VISIBLE_FOR <= 2.0  # "about a second" (PROTOCOL.md section 8)


def test_typing_throttle_sends_at_most_once_per_interval() -> None:
    throttle = TypingThrottle()
    sent = [t / 10 for t in range(35) if throttle.should_send(1, t / 10)]
    assert sent == [0.0, 1.0, 2.0, 3.0]
    assert TYPING_SEND_INTERVAL == 1.0
    assert throttle.should_send(2, 0.05)  # per peer
    throttle.reset(1)
    assert throttle.should_send(1, 3.1)  # after a send, the next keystroke hints at once


def test_roster_sections_and_order() -> None:
    buddies = [
        Buddy(1, "zed", True, pb.User.BUDDY, 2),
        Buddy(2, "amy", False, pb.User.BUDDY, 2),
        Buddy(3, "Bob", True, pb.User.BUDDY, 2),
        Buddy(4, "req", True, pb.User.REQUEST_RECEIVED, 2),
        Buddy(5, "out", False, pb.User.REQUEST_SENT, 2),
    ]
    unread = UnreadCounts([(2, 3), (4, 9)])
    rows = build_roster(buddies, unread, frozenset({3, 4}))
    assert [(r.kind, r.name) for r in rows] == [
        (RowKind.HEADER, "Buddy requests"),
        (RowKind.INCOMING, "req"),
        (RowKind.HEADER, "Buddies"),
        (RowKind.BUDDY, "Bob"),
        (RowKind.BUDDY, "zed"),
        (RowKind.BUDDY, "amy"),
        (RowKind.HEADER, "Waiting for answer"),
        (RowKind.OUTGOING, "out"),
    ]
    by_name = {r.name: r for r in rows}
    assert by_name["amy"].unread == 3 and by_name["req"].unread == 0
    assert by_name["Bob"].typing and not by_name["req"].typing
    assert len({r.key for r in rows}) == len(rows)
    assert [r.kind for r in build_roster([], unread, frozenset())] == [RowKind.HEADER]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("chat.example.org", ("chat.example.org", 1025)),
        ("chat.example.org:2000", ("chat.example.org", 2000)),
        ("[::1]:2000", ("::1", 2000)),
        ("[::1]", ("::1", 1025)),
        ("::1", ("::1", 1025)),
    ],
)
def test_parse_server(text: str, expected: tuple[str, int]) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("text", ["", "host:0", "host:99999", "host:x", "[::1", "a b:1"])
def test_parse_server_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_server(text)


def test_remembered_server_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "tui.json"
    assert load_remembered(path) is None
    save_remembered(path, RememberedServer("h", 1, "alice"))
    assert load_remembered(path) == RememberedServer("h", 1, "alice")
    assert "password" not in path.read_text()
    save_remembered(path, None)
    assert not path.exists()
    path.write_text("{not json")
    assert load_remembered(path) is None


def test_keymap_lists_every_shown_binding() -> None:
    from tui.app import ParleyApp

    rows = key_rows(ParleyApp.BINDINGS)
    actions = {row.action.split(" (")[0] for row in rows}
    assert {
        "Quit",
        "Help",
        "Add buddy",
        "Switch chat",
        "Re-send failed",
        "Accept",
        "Decline",
        "Remove",
        "Send",
        "New line",
    } <= actions
    assert format_keys("ctrl+n,f1,escape,delete") == "Ctrl+N / F1 / Esc / Del"
    assert markdown_table(rows).startswith("| Where | Keys | Action |")


def test_chat_unread_counts_only_chat_among_the_unread() -> None:
    from tui.client.history import HistoryEntry

    def e(kind: int, outgoing: bool = False) -> HistoryEntry:
        return HistoryEntry(
            None,
            2,
            outgoing,
            0,
            None,
            kind,
            "",
            b"",
            None,
            0,
            MessageState.SENT if outgoing else MessageState.RECEIVED,
        )

    page = [
        e(pb.Message.MESSAGE),
        e(pb.Message.MESSAGE, True),
        e(pb.Message.GRAPHICS),
        e(pb.Message.MESSAGE),
        e(pb.Message.GRAPHICS),
    ]
    assert chat_unread(page, 3) == 1  # the newest 3 incoming: stroke, message, stroke
    assert chat_unread(page, 4) == 2
    assert chat_unread(page, 0) == 0
