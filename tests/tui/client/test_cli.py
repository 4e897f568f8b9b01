"""Command-line parsing of ``parley send`` / ``parley tail`` (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from tui.client.cli import (
    EXIT_USAGE,
    ScriptError,
    build_parser,
    format_line,
    main,
    read_password,
    trust_policy,
)
from tui.client.history import HistoryEntry, MessageState
from tui.client.trust import TrustMode


def test_password_cannot_be_given_on_the_command_line() -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["send", "--user", "a", "--password", "secret", "b", "t"])
    assert info.value.code == 2


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["send", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--host",
        "--port",
        "--user",
        "--password-file",
        "--password-env",
        "--fingerprint",
        "--plaintext",
        "--data-dir",
        "--ca-file",
        "--known-relays",
    ):
        assert option in text
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    assert "never taken from the command line" in capsys.readouterr().out


def test_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("s3cret\nignored\n")
    args = build_parser().parse_args(
        ["tail", "--user", "a", "--password-file", str(tmp_path / "pw")]
    )
    assert read_password(args) == "s3cret"
    monkeypatch.setenv("MY_PW", "from-env")
    args = build_parser().parse_args(["tail", "--user", "a", "--password-env", "MY_PW"])
    assert read_password(args) == "from-env"
    args = build_parser().parse_args(["tail", "--user", "a", "--password-env", "UNSET_PW_VAR"])
    with pytest.raises(ScriptError):
        read_password(args)


def test_trust_modes_from_flags(tmp_path: Path) -> None:
    parse = build_parser().parse_args
    assert trust_policy(parse(["tail", "--plaintext"])).mode is TrustMode.PLAINTEXT
    hex_pin = "ab" * 32
    pinned = trust_policy(parse(["tail", "--fingerprint", hex_pin]))
    assert pinned.mode is TrustMode.PINNED and pinned.pin is not None
    assert pinned.pin.startswith("SHA256:")
    tofu = trust_policy(parse(["tail", "--known-relays", str(tmp_path / "kr")]))
    assert tofu.mode is TrustMode.KNOWN_RELAYS and tofu.store is not None
    assert tofu.store.path == tmp_path / "kr"
    with pytest.raises(ScriptError):
        trust_policy(parse(["tail", "--fingerprint", "nonsense"]))
    with pytest.raises(SystemExit):
        parse(["tail", "--plaintext", "--fingerprint", hex_pin])  # mutually exclusive


def test_missing_user_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARLEY_USER", raising=False)
    assert main(["tail", "--plaintext", "--password-env", "X"]) == EXIT_USAGE


def test_format_line_strips_controls() -> None:
    entry = HistoryEntry(
        local_id=1,
        peer=2,
        outgoing=False,
        msg_id=3,
        seq=4,
        type=pb.Message.MESSAGE,
        text="a\x1b]0;title\x07b\nsecond",
        data=b"",
        file=None,
        timestamp=0,
        state=MessageState.RECEIVED,
    )
    line = format_line(entry, "ev\x1bil")
    assert line is not None and "\x1b" not in line and "\x07" not in line
    assert line.endswith("evil: a]0;titleb\n    second")
    graphics = HistoryEntry(
        local_id=1,
        peer=2,
        outgoing=False,
        msg_id=3,
        seq=4,
        type=pb.Message.GRAPHICS,
        text="1,1,2,2",
        data=b"",
        file=None,
        timestamp=0,
        state=MessageState.RECEIVED,
    )
    assert format_line(graphics, "x") is None
