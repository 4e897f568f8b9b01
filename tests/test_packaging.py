"""Parley installs like real software: the wheel built from the source tree, installed into
a fresh virtual environment, gives working ``parley-relay`` and ``parley`` commands.

The editable install the suite runs from hides a package missing from the wheel (that is how
``relay.handlers`` once went missing and a plain ``pip install .`` got a relay that could not
start), so this test uses nothing of the checkout but the built wheel: the commands run
from an empty directory, with the fresh environment's own interpreter.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import chat_pb2 as pb
from tests.wire import WireClient

ROOT = Path(__file__).resolve().parents[1]
_NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "tests",
    "bench",
)


def _run(*args: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {
        key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel (and its dependencies) installed; yields its bin dir."""
    base = tmp_path_factory.mktemp("packaging")
    # Build from a copy of the sources: an in-tree build directory could carry modules
    # deleted since, and the wheel would ship them.
    source = base / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCE)
    built = _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        base / "wheels",
        source,
        cwd=base,
    )
    assert built.returncode == 0, built.stderr
    wheels = list((base / "wheels").glob("parley_chat-*.whl"))
    assert len(wheels) == 1
    venv = base / "venv"
    created = _run(sys.executable, "-m", "venv", venv, cwd=base)
    assert created.returncode == 0, created.stderr
    installed = _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheels[0], cwd=base)
    assert installed.returncode == 0, installed.stderr
    yield venv / "bin"


def test_the_commands_of_the_wheel_answer_help_and_version(installed: Path, tmp_path: Path) -> None:
    for command in ("parley-relay", "parley"):
        shown = _run(installed / command, "--help", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert f"usage: {command}" in shown.stdout
    for command in ("parley-relay", "parley"):
        version = _run(installed / command, "--version", cwd=tmp_path)
        assert version.returncode == 0 and re.fullmatch(
            rf"{command} \d+\.\d+\.\d+\s*", version.stdout
        ), version


def test_the_relay_of_the_wheel_serves_a_login_over_tls_and_the_unix_socket(
    installed: Path, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [
            str(installed / "parley-relay"),
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
            "--scrypt-n",
            "1024",
            "--unix-socket",
            str(tmp_path / "run" / "relay.sock"),
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        port = 0
        log: list[str] = []
        listening = threading.Event()

        def pump() -> None:
            nonlocal port
            assert process.stderr is not None
            for line in process.stderr:
                log.append(line)
                match = re.search(r"listening on \S+:(\d+)", line)
                if match and not port:
                    port = int(match.group(1))
                    listening.set()
            listening.set()

        threading.Thread(target=pump, daemon=True).start()
        assert listening.wait(60) and port, "".join(log)
        client = WireClient("127.0.0.1", port)
        assert client.register("wheel").code == pb.RegisterResponse.SUCCESS
        assert client.login("wheel", version=2).code == pb.LoginResponse.SUCCESS
        client.close()
        # And over the Unix socket, as the local account of whoever runs the test: no
        # password (PROTOCOL.md section 11).
        local = WireClient.over_unix(str(tmp_path / "run" / "relay.sock"))
        assert local.login("", password="", version=2).code == pb.LoginResponse.SUCCESS
        local.close()
    finally:
        process.terminate()
        assert process.wait(30) == 0, "".join(log)
