"""Shared validation: usernames, limits, safe file names, GRAPHICS commands."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.validation import (
    MAX_FILE_NAME_BYTES,
    MAX_TEXT_BYTES,
    ClearBoard,
    Segment,
    format_graphics,
    normalize_username,
    parse_graphics,
    printable_text,
    safe_basename,
    text_within_limit,
    username_key,
    username_skeleton,
)


@pytest.mark.parametrize("name", ["twd2", "alice", "Bob_1", "a.b-c", "ü", "李雷", "x" * 32])
def test_valid_usernames(name: str) -> None:
    assert normalize_username(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "x" * 33,
        "a b",
        "tab\t",
        "nul\x00",
        "emoji😀",
        "a/b",
        "[red]",
        "esc\x1b[31m",
        "rtl\u202e",
    ],
)
def test_invalid_usernames(name: str) -> None:
    with pytest.raises(ValueError):
        normalize_username(name)


def test_usernames_are_nfc_and_case_insensitive() -> None:
    decomposed = "u\u0308ber"
    assert normalize_username(decomposed) == "über"
    assert username_key("Alice") == username_key("aLICE")


@pytest.mark.parametrize(
    "name",
    # Hangul fillers (letters that render blank), zero-width space, word joiner, soft hyphen
    ["\u3164", "\u115f", "\u1160", "\uffa0", "\u3164\u3164", "a\u200b", "bob\u2060", "a\u00adb"],
)
def test_invisible_usernames_are_invalid(name: str) -> None:
    with pytest.raises(ValueError, match="invisible"):
        normalize_username(name)


@pytest.mark.parametrize(
    ("look_alike", "original"),
    [
        ("\u0430lice", "alice"),  # Cyrillic small a
        ("\uff41\uff4c\uff49\uff43\uff45", "alice"),  # fullwidth letters
        ("\U0001d41a\U0001d425ice", "alice"),  # mathematical bold a, l
        ("\u0391lice", "alice"),  # Greek capital alpha, and uniqueness ignores case
        ("\u0412\u041e\u0412", "BOB"),  # Cyrillic capitals VE, O, VE
        ("b0b", "bob"),
        ("Ilya", "llya"),
        ("rnike", "mike"),
        ("\u0451lka", "\u00eblka"),  # Cyrillic io (ie with diaeresis), Latin e-diaeresis
    ],
)
def test_look_alike_usernames_share_a_skeleton(look_alike: str, original: str) -> None:
    assert username_skeleton(normalize_username(look_alike)) == username_skeleton(
        normalize_username(original)
    )


@pytest.mark.parametrize(
    ("one", "other"),
    [("alice", "alicia"), ("\u0432\u043e\u0432", "bob"), ("\u00fc", "u"), ("li", "il")],
)
def test_different_looking_usernames_have_different_skeletons(one: str, other: str) -> None:
    # Cyrillic small ve looks like a small capital B, not like b
    assert username_skeleton(normalize_username(one)) != username_skeleton(
        normalize_username(other)
    )


def test_text_limit_counts_utf8_bytes() -> None:
    assert text_within_limit("x" * MAX_TEXT_BYTES)
    assert not text_within_limit("x" * (MAX_TEXT_BYTES + 1))
    assert not text_within_limit("é" * (MAX_TEXT_BYTES // 2 + 1))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../.bashrc", "bashrc"),
        ("/etc/passwd", "passwd"),
        ("C:\\Windows\\system32\\cmd.exe", "cmd.exe"),
        ("..", "received-file"),
        ("", "received-file"),
        ("a\x1b[31mred\x07.txt", "a[31mred.txt"),
        ("[bold]x[-].txt", "[bold]x[-].txt"),
        ("tab\tand\u00a0nbsp", "tab and nbsp"),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("  .hidden  ", "hidden"),
    ],
)
def test_safe_basename(raw: str, expected: str) -> None:
    assert safe_basename(raw) == expected


def test_safe_basename_truncates_long_names_keeping_the_extension() -> None:
    name = safe_basename("a" * 4000 + ".tar.gz")
    assert len(name.encode()) <= MAX_FILE_NAME_BYTES
    assert name.endswith(".gz")
    wide = safe_basename("é" * 4000)
    assert len(wide.encode()) <= MAX_FILE_NAME_BYTES


@given(st.text(max_size=5000))
def test_safe_basename_is_always_a_plain_base_name(raw: str) -> None:
    name = safe_basename(raw)
    assert name and name not in {".", ".."}
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith(".")
    assert len(name.encode("utf-8")) <= MAX_FILE_NAME_BYTES
    assert all(ch.isprintable() or ch == " " for ch in name)


def test_printable_text_strips_escapes_keeps_newlines() -> None:
    assert printable_text("a\x1b[2Jb\nc\x9bd\u202e") == "a[2Jb\ncd"
    assert printable_text("x\ny", keep_newlines=False) == "xy"


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("1,2,3,4", Segment(1, 2, 3, 4)),
        ("0,0,-5,7,#", Segment(0, 0, -5, 7, "#")),
        ("1,1,2,2,,", Segment(1, 1, 2, 2, ",")),
        ("3,3,3,3, ", Segment(3, 3, 3, 3, " ")),
        ("clear", ClearBoard()),
    ],
)
def test_parse_graphics(text: str, command: object) -> None:
    assert parse_graphics(text) == command
    assert format_graphics(parse_graphics(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1,2,3",
        "a,b,c,d",
        "1,2,3,4,##",
        "1,2,3,4,\x1b",
        "99999,0,0,0",
        "1.5,2,3,4",
        "CLEAR",
        "1,2,3,4,李",
        " 1,2,3,4",
        "1,2,3,4" + "0" * 100,
    ],
)
def test_malformed_graphics_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_graphics(text)


@given(st.text(max_size=100))
def test_parse_graphics_raises_only_value_error(text: str) -> None:
    with contextlib.suppress(ValueError):
        parse_graphics(text)
