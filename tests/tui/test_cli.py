"""``parley``: send/tail go to the scripting CLI; anything else configures the TUI."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from certs import format_fingerprint
from tui import cli
from tui.app import ParleyApp
from tui.client import cli as scripting


def test_send_and_tail_dispatch_to_scripting(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(scripting, "main", lambda argv: seen.append(list(argv)) or 7)
    assert cli.main(["send", "--user", "a", "bob", "hi"]) == 7
    assert cli.main(["tail", "--once"]) == 7
    assert seen == [["send", "--user", "a", "bob", "hi"], ["tail", "--once"]]


def test_tui_options_build_the_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    started: list[ParleyApp] = []
    monkeypatch.setattr(ParleyApp, "run", lambda self: started.append(self))
    logs: list[Path | None] = []
    monkeypatch.setattr(cli, "setup_logging", logs.append)
    pin = format_fingerprint(bytes(range(32)))
    argv = [
        "--host",
        "relay.example",
        "--port",
        "2000",
        "--user",
        "alice",
        "--fingerprint",
        pin,
        "--data-dir",
        str(tmp_path / "d"),
        "--known-relays",
        str(tmp_path / "k"),
    ]
    assert cli.main(argv) == 0
    config = started[0].config
    assert (config.host, config.port, config.user) == ("relay.example", 2000, "alice")
    assert config.fingerprint == pin and not config.plaintext
    assert config.data_dir == tmp_path / "d" and config.known_relays == tmp_path / "k"
    assert config.trust_policy(ask=None).pin == pin  # type: ignore[arg-type]
    assert cli.main(["--plaintext", "--log-file", str(tmp_path / "log")]) == 0
    assert started[1].config.port is None and started[1].config.plaintext
    assert logs == [None, tmp_path / "log"]


def test_log_file_gets_the_client_log(tmp_path: Path) -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level
    try:
        cli.setup_logging(tmp_path / "parley.log")
        logging.getLogger("tui.client.session").warning("connection lost")
        for handler in root.handlers:
            handler.flush()
        assert (
            "WARNING tui.client.session: connection lost" in (tmp_path / "parley.log").read_text()
        )
    finally:
        for handler in root.handlers[len(before[0]) :]:
            handler.close()
        root.handlers[:] = before[0]
        root.setLevel(before[1])


@pytest.mark.parametrize(
    "argv",
    [["--fingerprint", "nonsense"], ["--port", "70000"], ["--plaintext", "--fingerprint", "x"]],
)
def test_bad_options_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "usage: parley" in capsys.readouterr().err


def test_help_mentions_the_script_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "parley send --help" in out and "--data-dir" in out
