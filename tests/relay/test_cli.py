"""parley-relay's admin commands, help and configuration, run as real subprocesses."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from certs import CERT_FILE_NAME, KEY_FILE_NAME
from protocol import chat_pb2 as pb
from relay.config import RelayConfig, load_config
from tests.harness import RelayProcess
from tests.wire import WireClient


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m relay ARGS``, started with the common 022 umask whatever the test runner's
    (the relay must make its files private by itself)."""
    return subprocess.run(
        [sys.executable, "-m", "relay", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        preexec_fn=lambda: os.umask(0o022),
    )


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("args", [["--help"], ["cert", "--help"], ["user", "--help"]])
def test_help(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 0
    assert "usage: parley-relay" in result.stdout
    assert "--data-dir" in result.stdout


def test_main_help_explains_every_flag() -> None:
    out = run("--help").stdout
    for flag in (
        "--host",
        "--port",
        "--cert",
        "--key",
        "--plaintext",
        "--max-frame",
        "--rate-limit",
        "--scrypt-n",
        "--log-level",
        "--config",
    ):
        assert flag in out


def test_cert_show_and_generate(tmp_path: Path) -> None:
    shown = run("cert", "show", "--data-dir", str(tmp_path))
    assert shown.returncode == 0 and shown.stdout.startswith("SHA256:")
    again = run("cert", "generate", "--data-dir", str(tmp_path))
    assert again.returncode == 2 and "exists" in again.stderr
    assert run("cert", "show", "--data-dir", str(tmp_path)).stdout == shown.stdout


def test_user_admin_commands_work_on_the_relays_store(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path), "--scrypt-n", "1024"]
    assert run("user", "add", "alice", "--password-stdin", *data, stdin="s3cret\n").returncode == 0
    duplicate = run("user", "add", "ALICE", "--password-stdin", *data, stdin="x\n")
    assert duplicate.returncode == 2 and "exists" in duplicate.stderr
    look_alike = run("user", "add", "\u0430lice", "--password-stdin", *data, stdin="x\n")
    assert look_alike.returncode == 2 and "looks like" in look_alike.stderr  # Cyrillic a
    bad = run("user", "add", "bad name", "--password-stdin", *data, stdin="x\n")
    assert bad.returncode == 2 and "may not contain" in bad.stderr
    run("user", "add", "bob", "--password-stdin", *data, stdin="pw\n")
    assert run("user", "list", *data).stdout.split() == ["1", "alice", "2", "bob"]
    assert (
        run("user", "passwd", "alice", "--password-stdin", *data, stdin="changed\n").returncode == 0
    )
    assert run("user", "remove", "bob", *data).returncode == 0
    missing = run("user", "remove", "bob", *data)
    assert missing.returncode == 2 and "user list" in missing.stderr
    with RelayProcess(tmp_path) as relay:
        c = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        assert c.login("alice", "s3cret").code == pb.LoginResponse.PASSWORD_ERROR
        assert c.login("alice", "changed").code == pb.LoginResponse.SUCCESS
        other = WireClient(relay.host, relay.port, fingerprint=relay.fingerprint)
        assert other.login("bob", "pw").code == pb.LoginResponse.USER_NOT_FOUND


def test_bad_flag_values_say_what_to_do(tmp_path: Path) -> None:
    result = run("--scrypt-n", "1000", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "power of two" in result.stderr
    result = run("--cert", str(tmp_path / "c.pem"), "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "--cert and --key go together" in result.stderr


def test_config_precedence_and_unknown_keys(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text('[relay]\nport = 2000\nhost = "127.0.0.1"\nmax-frame = 65536\n')
    loaded = load_config(config, {"port": 3000, "host": None})
    assert (loaded.port, loaded.host, loaded.max_frame) == (3000, "127.0.0.1", 65536)
    assert load_config(None, {}) == RelayConfig()
    config.write_text("[relay]\nprot = 1\n")
    with pytest.raises(ValueError, match="unknown setting 'prot'"):
        load_config(config, {})


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with RelayProcess(tmp_path / "a") as relay:
        result = run(
            "--host", "127.0.0.1", "--port", str(relay.port), "--data-dir", str(tmp_path / "b")
        )
        assert result.returncode == 2 and "--port" in result.stderr


def test_version_is_the_package_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.split() == ["parley-relay", "0.1.0"]


def test_help_lists_every_limit() -> None:
    out = run("--help").stdout
    assert "limits:" in out
    for flag in (
        "--max-frame-before-login",
        "--read-budget",
        "--frames-per-pass",
        "--frame-timeout",
        "--input-budget",
        "--max-unauthenticated-per-address",
        "--max-unauthenticated",
        "--inbox-quota-bytes",
        "--registrations-per-minute",
        "--max-pending-hashes",
        "--version",
    ):
        assert flag in out


@pytest.mark.parametrize("side", ["before", "after"])
def test_options_work_on_either_side_of_the_subcommand(tmp_path: Path, side: str) -> None:
    data = tmp_path / "data"
    default_home = {"XDG_DATA_HOME": str(tmp_path / "default")}
    options = ["--data-dir", str(data), "--scrypt-n", "1024", "--log-level", "WARNING"]

    def around(*subcommand: str) -> list[str]:
        return [*options, *subcommand] if side == "before" else [*subcommand, *options]

    added = run(*around("user", "add", "carol", "--password-stdin"), stdin="pw\n", env=default_home)
    assert added.returncode == 0, added.stderr
    assert run(*around("user", "list"), env=default_home).stdout.split() == ["1", "carol"]
    with sqlite3.connect(data / "parley.db") as db:
        (stored_hash,) = db.execute("SELECT password_hash FROM users").fetchone()
    assert stored_hash.startswith("scrypt$1024$")
    shown = run(*around("cert", "show"), env=default_home)
    assert shown.returncode == 0 and shown.stdout.split()[1] == str(data / CERT_FILE_NAME)
    assert not (tmp_path / "default").exists()  # nothing went to the default data dir


@pytest.mark.parametrize("side", ["before", "after"])
def test_config_file_and_certificate_work_on_either_side_of_the_subcommand(
    tmp_path: Path, side: str
) -> None:
    other = tmp_path / "other"
    expected = run("cert", "show", "--data-dir", str(other)).stdout.split()[0]
    config = tmp_path / "relay.toml"
    config.write_text(f'[relay]\ndata_dir = "{tmp_path / "data"}"\n')
    given = [
        "--config",
        str(config),
        "--cert",
        str(other / CERT_FILE_NAME),
        "--key",
        str(other / KEY_FILE_NAME),
    ]
    args = [*given, "cert", "show"] if side == "before" else ["cert", "show", *given]
    shown = run(*args, env={"XDG_DATA_HOME": str(tmp_path / "default")})
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == [expected, str(other / CERT_FILE_NAME)]
    listed = ["--config", str(config), "user", "list"]
    if side == "after":
        listed = listed[2:] + listed[:2]
    assert run(*listed).returncode == 0
    assert (tmp_path / "data" / "parley.db").exists()
    assert not (tmp_path / "default").exists()


def test_admin_commands_create_a_private_data_dir_and_store(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    assert (
        run(
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--data-dir",
            str(data),
            "--scrypt-n",
            "1024",
            stdin="pw\n",
        ).returncode
        == 0
    )
    assert run("cert", "show", "--data-dir", str(data)).returncode == 0
    assert mode_of(tmp_path / "new") == 0o700 and mode_of(data) == 0o700
    for name in ("parley.db", KEY_FILE_NAME):
        assert mode_of(data / name) == 0o600, name


@pytest.mark.parametrize(
    "command", [[], ["user", "list"], ["cert", "show"]], ids=["relay", "user", "cert"]
)
def test_a_data_dir_other_users_can_enter_is_refused(tmp_path: Path, command: list[str]) -> None:
    data = tmp_path / "shared"
    data.mkdir()
    data.chmod(0o755)
    result = run("--host", "127.0.0.1", "--port", "0", "--data-dir", str(data), *command)
    assert result.returncode == 2
    assert f"chmod 700 {data}" in result.stderr and len(result.stderr.splitlines()) == 1
    assert list(data.iterdir()) == []  # nothing was written into it


def test_a_store_file_others_can_read_is_made_private_and_logged(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data"), "--scrypt-n", "1024"]
    assert run("user", "add", "carol", "--password-stdin", *data, stdin="pw\n").returncode == 0
    db = tmp_path / "data" / "parley.db"
    db.chmod(0o644)
    listed = run("user", "list", *data)
    assert listed.returncode == 0 and listed.stdout.split() == ["1", "carol"]
    assert mode_of(db) == 0o600
    assert "was open to other users (mode 0644)" in listed.stderr


def test_log_levels_are_case_insensitive_in_flags_and_config(tmp_path: Path) -> None:
    data = tmp_path / "data"
    flag = run("--log-level", "debug", "--data-dir", str(data), "cert", "show")
    assert flag.returncode == 0, flag.stderr
    config = tmp_path / "relay.toml"
    config.write_text('log_level = "warning"\n')
    from_file = run("--config", str(config), "--data-dir", str(data), "cert", "show")
    assert from_file.returncode == 0, from_file.stderr
