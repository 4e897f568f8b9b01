"""parley-relay's admin commands, help and configuration, run as real subprocesses."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from relay.config import RelayConfig, load_config
from tests.harness import RelayProcess
from tests.wire import WireClient


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [["--help"], ["cert", "--help"], ["user", "--help"]])
def test_help(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 0
    assert "usage: parley-relay" in result.stdout
    assert "--data-dir" in result.stdout


def test_main_help_explains_every_flag() -> None:
    out = run("--help").stdout
    for flag in ("--host", "--port", "--cert", "--key", "--plaintext", "--max-frame",
                 "--rate-limit", "--scrypt-n", "--log-level", "--config"):
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
    bad = run("user", "add", "bad name", "--password-stdin", *data, stdin="x\n")
    assert bad.returncode == 2 and "may not contain" in bad.stderr
    run("user", "add", "bob", "--password-stdin", *data, stdin="pw\n")
    assert run("user", "list", *data).stdout.split() == ["1", "alice", "2", "bob"]
    assert run("user", "passwd", "alice", "--password-stdin", *data,
               stdin="changed\n").returncode == 0
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
        result = run("--host", "127.0.0.1", "--port", str(relay.port), "--data-dir",
                     str(tmp_path / "b"))
        assert result.returncode == 2 and "--port" in result.stderr
