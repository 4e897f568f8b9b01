"""``parley send`` / ``parley tail`` errors against a real relay (issue 15): a throttled
login is a login failure (exit 4) with the retry time, each error is printed once, and a
failed login leaves no empty history files behind."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_client_scripting import _accounts, _common
from tests.harness import RelayProcess
from tui.client.cli import EXIT_LOGIN, main

FREE_FAILURES = 5  # the relay's default login_failures_before_throttle


def _wrong_password(relay: RelayProcess, tmp_path: Path, user: str) -> list[str]:
    args = _common(relay, tmp_path, user)
    (tmp_path / "wrong.pw").write_text("not the password\n")
    args[args.index("--password-file") + 1] = str(tmp_path / "wrong.pw")
    return args


def test_wrong_password_then_throttled_is_a_login_failure(
    relay: RelayProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_accounts(relay, tmp_path, befriend=True))
    args = _wrong_password(relay, tmp_path, "alice")
    for _ in range(FREE_FAILURES):
        assert main(["send", *args, "bob", "hi"]) == EXIT_LOGIN
        err = capsys.readouterr().err
        assert err.count("parley:") == 1, err  # once, not twice
        assert "login failed" in err
    assert main(["send", *args, "bob", "hi"]) == EXIT_LOGIN
    err = capsys.readouterr().err
    assert err.count("parley:") == 1, err
    assert "cannot reach" not in err
    assert "too many failed logins" in err and "try again in" in err
    assert main(["tail", *args, "--once"]) == EXIT_LOGIN
    assert "try again in" in capsys.readouterr().err


def test_failed_login_leaves_no_history_files(
    relay: RelayProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_accounts(relay, tmp_path, befriend=True))
    args = _wrong_password(relay, tmp_path, "alice")
    data = tmp_path / "cli" / "alice"
    assert main(["send", *args, "bob", "hi"]) == EXIT_LOGIN
    assert main(["tail", *args, "--once"]) == EXIT_LOGIN
    left = sorted(p.name for p in data.rglob("*.sqlite3*"))
    assert left == [], left


def test_an_error_is_printed_once_by_the_real_command(relay: RelayProcess, tmp_path: Path) -> None:
    """As a shell runs it (no pytest logging handlers): the library's own warning about the
    wrong password must not reach stderr beside the command's error line."""
    asyncio.run(_accounts(relay, tmp_path, befriend=True))
    args = _wrong_password(relay, tmp_path, "alice")
    done = subprocess.run(
        [sys.executable, "-m", "tui.cli", "send", *args, "bob", "hi"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == EXIT_LOGIN
    assert done.stderr.splitlines() == ["parley: login failed: wrong password"], done.stderr
