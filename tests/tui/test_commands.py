"""The composer's slash-command parser and Tab completion (tui/commands.py), without an app."""

from __future__ import annotations

from tui.commands import COMMANDS, Command, Refused, Send, complete, completions, parse


def test_plain_text_and_literal_slash_are_sent() -> None:
    assert parse("hello /there\n") == Send("hello /there")
    assert parse("//text") == Send("/text")
    assert parse("// two") == Send("/ two")


def test_commands_with_their_arguments() -> None:
    assert parse("/msg bob hi there  you") == Command("msg", ("bob", "hi there  you"))
    assert parse("/MSG Bob x") == Command("msg", ("Bob", "x"))
    assert parse("/me waves") == Command("me", ("waves",))
    assert parse("/join dev team") == Command("join", ("dev team",))
    assert parse("/away") == Command("away", ())
    assert parse("/away gone fishing") == Command("away", ("gone fishing",))
    assert parse("/leave") == Command("leave", ())
    assert parse("/quit\n") == Command("quit", ())


def test_unknown_commands_and_missing_arguments_are_refused() -> None:
    unknown = parse("/frobnicate now")
    assert isinstance(unknown, Refused) and "/frobnicate" in unknown.reason
    assert isinstance(parse("/he"), Refused)  # no prefix matching: Tab completes instead
    assert parse("/msg bob") == Refused("Usage: /msg NAME text")
    assert parse("/ignore  ") == Refused("Usage: /ignore NAME")
    assert isinstance(parse("/"), Refused)


def test_completion_of_commands_and_names() -> None:
    names = ["bob", "Bobby", "carol", "dev team"]
    assert completions("/in", names) == ("/in", ["/invite"])
    assert complete("/in", names) == "/invite "
    assert complete("/ig", names) == "/ignore "
    assert complete("/msg bo", names) == "/msg bob"
    assert complete("/msg bo", names, turn=1) == "/msg Bobby"
    assert complete("/msg bo", names, turn=2) == "/msg bob"  # cycles
    assert complete("hi CA", names) == "hi carol"
    assert complete("/zz", names) is None
    assert complete("", names) is None
    assert complete("bob", names) == "Bobby"  # an exact name is already complete
    assert set(COMMANDS) >= {"msg", "join", "invite", "leave", "me", "ignore", "unignore"}


def test_the_help_screen_lists_the_commands() -> None:
    from tui.app import ParleyApp
    from tui.keymap import key_rows

    rows = [(row.keys, row.action) for row in key_rows(ParleyApp.BINDINGS)]
    assert ("/msg NAME text", COMMANDS["msg"].help) in rows
    assert ("Tab", "Complete /command or name") in rows
